//! Tests of the parent module: pure decisions and an injected resolver; nothing here connects anywhere.

use std::str::FromStr;

use super::*;

fn forbidden(text: &str) -> bool {
    is_forbidden_ip(IpAddr::from_str(text).expect(text))
}

#[test]
fn forbids_every_non_global_ipv4_range() {
    for ip in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "169.254.0.1",
        "169.254.169.254",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "192.88.99.1",
        "198.18.0.1",
        "198.19.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
    ] {
        assert!(forbidden(ip), "{ip} should be forbidden");
    }
}

#[test]
fn allows_global_ipv4() {
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "192.0.3.1",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "11.0.0.1",
    ] {
        assert!(!forbidden(ip), "{ip} should be allowed");
    }
}

#[test]
fn forbids_every_non_global_ipv6_range() {
    for ip in [
        "::",
        "::1",
        "fc00::1",
        "fd12:3456:789a::1",
        "fe80::1",
        "febf:ffff::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "64:ff9b:1::a00:1",
    ] {
        assert!(forbidden(ip), "{ip} should be forbidden");
    }
}

#[test]
fn judges_ipv6_forms_of_ipv4_by_the_ipv4_address() {
    for ip in [
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::127.0.0.1",
        "::192.168.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "2002:c0a8:101::",
    ] {
        assert!(forbidden(ip), "{ip} should be forbidden");
    }
    for ip in ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
        assert!(!forbidden(ip), "{ip} should be allowed");
    }
}

#[test]
fn allows_global_ipv6() {
    for ip in ["2606:4700:4700::1111", "2a00:1450:4001::200e", "2001:4860::8888"] {
        assert!(!forbidden(ip), "{ip} should be allowed");
    }
}

fn policy(allow_private_networks: bool) -> OutboundPolicy {
    OutboundPolicy { allow_private_networks, ..OutboundPolicy::default() }
}

fn check(url: &str, allow: bool) -> Result<(), OAuthError> {
    check_url(&Url::parse(url).expect(url), &policy(allow))
}

#[test]
fn check_url_enforces_scheme_and_ip_literals() {
    assert!(check("https://provider.example/token", false).is_ok());
    assert!(check("https://8.8.8.8/token", false).is_ok());
    for bad in [
        "http://provider.example/token",
        "https://127.0.0.1/token",
        "https://[::1]/token",
        "https://[::ffff:169.254.169.254]/token",
        "https://0x7f.1/token",
        "https://169.254.169.254/latest/meta-data",
        "ftp://provider.example/token",
        "file:///etc/passwd",
    ] {
        assert!(matches!(check(bad, false), Err(OAuthError::Refused { .. })), "{bad}");
    }
    assert!(check("http://127.0.0.1:8080/token", true).is_ok());
    assert!(check("https://[::1]/token", true).is_ok());
    assert!(matches!(check("ftp://127.0.0.1/token", true), Err(OAuthError::Refused { .. })));
    assert!(matches!(check("data:text/plain,x", true), Err(OAuthError::Refused { .. })));
}

fn ip(text: &str) -> IpAddr {
    IpAddr::from_str(text).expect(text)
}

fn with_list(allow_private_networks: bool, list: &str) -> OutboundPolicy {
    OutboundPolicy {
        allow_private_networks,
        allow_list: AllowList::parse(list).expect("list"),
        ..OutboundPolicy::default()
    }
}

#[test]
fn metadata_addresses_stay_closed_unless_named_exactly() {
    for addr in [
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "fd00:ec2::254",
        "168.63.129.16",
        "192.0.0.192",
    ] {
        assert!(is_metadata_ip(ip(addr)), "{addr}");
        assert!(decide(ip(addr), None, &with_list(true, "")).is_err(), "{addr} with private networks allowed");
        assert!(
            decide(ip(addr), None, &with_list(true, "169.254.0.0/16, 100.64.0.0/10, fd00::/8")).is_err(),
            "{addr} by network"
        );
    }
    let named = with_list(false, "169.254.169.254");
    assert!(decide(ip("169.254.169.254"), None, &named).is_ok());
    assert!(decide(ip("::ffff:169.254.169.254"), None, &named).is_ok(), "the mapped form is the same address");
    assert!(decide(ip("169.254.170.2"), None, &named).is_err());
    let message = decide(ip("169.254.169.254"), None, &with_list(true, "")).expect_err("closed");
    assert!(message.contains("metadata"), "{message}");
}

#[test]
fn the_allow_list_opens_networks_addresses_and_hosts() {
    let policy = with_list(false, "10.1.0.0/16 127.0.0.1,keycloak.internal., fd00:1::/32");
    assert!(decide(ip("10.1.2.3"), None, &policy).is_ok());
    assert!(decide(ip("10.2.0.1"), None, &policy).is_err());
    assert!(decide(ip("127.0.0.1"), None, &policy).is_ok());
    assert!(decide(ip("::ffff:127.0.0.1"), None, &policy).is_ok());
    assert!(decide(ip("127.0.0.2"), None, &policy).is_err());
    assert!(decide(ip("fd00:1::5"), None, &policy).is_ok());
    assert!(decide(ip("192.168.1.1"), Some("KEYCLOAK.internal"), &policy).is_ok());
    assert!(decide(ip("192.168.1.1"), Some("other.internal"), &policy).is_err());
    assert!(decide(ip("169.254.169.254"), Some("keycloak.internal"), &policy).is_err(), "metadata needs its address");
    assert!(decide(ip("8.8.8.8"), None, &OutboundPolicy::default()).is_ok());
}

#[test]
fn allow_list_entries_are_checked() {
    for bad in ["10.0.0.0/33", "::/129", "bad_host", "a..b", "x/y", "http://x"] {
        assert!(AllowList::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(AllowList::parse(" , ").expect("empty").entries().len(), 0);
}

#[test]
fn plain_http_only_towards_opened_hosts() {
    let url = |u: &str| Url::parse(u).expect(u);
    let list = with_list(false, "127.0.0.1, idp.internal");
    assert!(check_url(&url("http://127.0.0.1:8080/token"), &list).is_ok());
    assert!(check_url(&url("http://idp.internal/token"), &list).is_ok());
    assert!(check_url(&url("http://provider.example/token"), &list).is_err());
    assert!(check_url(&url("http://[::1]/token"), &list).is_err());
}

#[test]
fn loopback_in_every_spelling_is_refused_when_the_guard_is_on() {
    for spelling in [
        "https://127.0.0.1/t",
        "https://[::1]/t",
        "https://2130706433/t",
        "https://0x7f.1/t",
        "https://127.1/t",
        "https://0177.0.0.1/t",
        "https://[::ffff:7f00:1]/t",
        "https://0.0.0.0/t",
    ] {
        let err = check(spelling, false).expect_err(spelling);
        assert!(matches!(err, OAuthError::Refused { .. }), "{spelling}: {err:?}");
    }
}

struct Fixed(Vec<IpAddr>);

impl Lookup for Fixed {
    fn lookup(&self, _host: String) -> LookupFuture {
        let ips = self.0.clone();
        Box::pin(async move { Ok(ips) })
    }
}

async fn resolve(policy: OutboundPolicy, ips: &[&str], name: &str) -> Result<Vec<SocketAddr>, String> {
    let resolver =
        GuardedResolver { policy: Arc::new(policy), lookup: Arc::new(Fixed(ips.iter().map(|a| ip(a)).collect())) };
    match resolver.resolve(Name::from_str(name).expect("name")).await {
        Ok(addrs) => Ok(addrs.collect()),
        Err(err) => {
            Err(err.downcast_ref::<ForbiddenAddress>().map(|f| f.message.clone()).unwrap_or_else(|| err.to_string()))
        }
    }
}

#[tokio::test]
async fn the_resolver_refuses_names_of_refused_addresses() {
    let err = resolve(OutboundPolicy::default(), &["8.8.8.8", "10.0.0.5"], "mixed.example").await.expect_err("one bad");
    assert!(err.contains("mixed.example") && err.contains("10.0.0.5"), "{err}");
    let err = resolve(with_list(true, ""), &["169.254.169.254"], "metadata.example").await.expect_err("metadata");
    assert!(err.contains("metadata"), "{err}");
    let ok = resolve(OutboundPolicy::default(), &["8.8.8.8"], "public.example").await.expect("public");
    assert_eq!(ok, [SocketAddr::new(ip("8.8.8.8"), 0)]);
    assert!(resolve(with_list(false, "idp.internal"), &["10.0.0.5"], "idp.internal").await.is_ok());
    assert!(resolve(OutboundPolicy::default(), &[], "empty.example").await.is_err());
}

#[tokio::test]
async fn the_system_lookup_finds_localhost_and_the_guard_refuses_it() {
    let resolver = GuardedResolver { policy: Arc::new(OutboundPolicy::default()), lookup: Arc::new(SystemLookup) };
    let err = resolver.resolve(Name::from_str("localhost").expect("name")).await.err().expect("loopback");
    let refusal = err.downcast_ref::<ForbiddenAddress>().expect("a refusal, not a lookup failure");
    assert!(refusal.message.contains("localhost"), "{}", refusal.message);
}

#[test]
fn ipv6_loopback_and_unspecified_are_judged_as_themselves_by_the_allow_list() {
    // They are refused like their IPv4-compatible readings 0.0.0.1 and 0.0.0.0, but only an IPv6 entry opens them.
    for (addr, entry) in [("::1", "::1"), ("::", "::")] {
        assert!(decide(ip(addr), None, &OutboundPolicy::default()).is_err(), "{addr}");
        assert!(decide(ip(addr), None, &with_list(false, entry)).is_ok(), "{addr} named by {entry}");
        assert!(decide(ip(addr), None, &with_list(false, "0.0.0.0/8")).is_err(), "{addr} is not in 0.0.0.0/8");
    }
    // Other IPv4-compatible and IPv4-mapped addresses are their IPv4 address.
    let this_network = with_list(false, "0.0.0.0/8");
    assert!(decide(ip("::0.0.0.2"), None, &this_network).is_ok());
    assert!(decide(ip("::ffff:0.0.0.1"), None, &this_network).is_ok());
    assert!(decide(ip("::ffff:0.0.0.1"), None, &with_list(false, "::1")).is_err());
}

#[test]
fn the_allow_list_keeps_its_entries_in_order() {
    let list = AllowList::parse("10.1.0.0/16 ::1,Keycloak.Internal., 10.1.2.3/32 [fd00::]/8").expect("list");
    assert_eq!(
        list.entries(),
        [
            AllowEntry::Net { addr: ip("10.1.0.0"), prefix: 16 },
            AllowEntry::Net { addr: ip("::1"), prefix: 128 },
            AllowEntry::Host("keycloak.internal".to_owned()),
            AllowEntry::Net { addr: ip("10.1.2.3"), prefix: 32 },
            AllowEntry::Net { addr: ip("fd00::"), prefix: 8 },
        ]
    );
    assert!(AllowList::parse("::1/128, 0.0.0.0/0, ::/0").is_ok(), "the longest and shortest prefixes");
}

#[test]
fn host_names_in_the_allow_list_keep_to_dns_lengths() {
    let label = "a".repeat(63);
    assert!(AllowList::parse(&format!("{label}.internal")).is_ok(), "a label of 63 characters");
    assert!(AllowList::parse(&format!("{label}b.internal")).is_err(), "a label of 64 characters");
    let name_of = |len: usize| {
        let mut name = vec![label.as_str(); len / 64].join(".");
        name.push('.');
        name.push_str(&"c".repeat(len - name.len()));
        name
    };
    assert_eq!(name_of(253).len(), 253);
    assert!(AllowList::parse(&name_of(253)).is_ok(), "a name of 253 characters");
    assert!(AllowList::parse(&name_of(254)).is_err(), "a name of 254 characters");
}

#[test]
fn browser_urls_are_judged_by_scheme_and_allow_list_only() {
    let url = |u: &str| Url::parse(u).expect(u);
    let closed = OutboundPolicy::default();
    assert!(check_browser_url(&url("https://10.0.0.5/authorize"), &closed).is_ok(), "a browser may reach it");
    assert!(check_browser_url(&url("http://idp.example/authorize"), &closed).is_err());
    assert!(check_browser_url(&url("http://idp.example/authorize"), &policy(true)).is_ok());
    assert!(check_browser_url(&url("javascript:alert(1)"), &policy(true)).is_err());
    let list = with_list(false, "idp.internal, 10.0.0.0/8, fd00::/8");
    for opened in ["http://idp.internal/a", "http://10.1.2.3/a", "http://[fd00::1]/a"] {
        assert!(check_browser_url(&url(opened), &list).is_ok(), "{opened}");
    }
    for closed in ["http://other.internal/a", "http://11.1.2.3/a", "http://[fe80::1]/a"] {
        assert!(check_browser_url(&url(closed), &list).is_err(), "{closed}");
    }
}

#[test]
fn a_refusal_displays_as_its_message() {
    let refusal = ForbiddenAddress { message: "the host x resolves to 10.0.0.1, which is refused".to_owned() };
    assert_eq!(refusal.to_string(), refusal.message);
}
