//! The outbound request guard: keeps latchkey from being used to reach addresses that a provider URL has no
//! business pointing at (server-side request forgery).
//!
//! Two layers, both skipped when [`OutboundPolicy::allow_private_networks`] is on:
//! - [`check_url`] refuses any scheme but `https` and any IP-literal host in a forbidden range, before a request
//!   is built;
//! - a guarded DNS resolver, installed in [`crate::HttpClient`], resolves host names and refuses when any address
//!   is forbidden, so the addresses checked are exactly the addresses connected to (no DNS-rebinding gap).
//!
//! A third holds whatever the policy: the client never follows redirects, so a provider cannot bounce a request
//! elsewhere.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::{OAuthError, OutboundPolicy};

/// Whether `ip` is an address latchkey must not contact unless private networks are allowed: anything that is
/// not a globally reachable unicast address.
///
/// IPv4: "this network" `0.0.0.0/8` (with the unspecified address), loopback `127.0.0.0/8`, private
/// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918), shared `100.64.0.0/10` (RFC 6598, carrier-grade
/// NAT), link-local `169.254.0.0/16` (with the cloud metadata address `169.254.169.254`), IETF protocol
/// assignments `192.0.0.0/24`, the documentation ranges `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`
/// (RFC 5737), the 6to4 relay anycast `192.88.99.0/24`, benchmarking `198.18.0.0/15` (RFC 2544), multicast
/// `224.0.0.0/4` and reserved `240.0.0.0/4` (with broadcast `255.255.255.255`).
///
/// IPv6: unspecified `::`, loopback `::1`, unique local `fc00::/7` (RFC 4193), link-local `fe80::/10`,
/// deprecated site-local `fec0::/10`, multicast `ff00::/8`, documentation `2001:db8::/32` and `3fff::/20`
/// (RFC 9637), discard-only `100::/64` (RFC 6666), local-use NAT64 `64:ff9b:1::/48` (RFC 8215); and the IPv6
/// forms that carry an IPv4 address, judged by that address: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
/// `::/96`, NAT64 `64:ff9b::/96` (RFC 6052) and 6to4 `2002::/16` (RFC 3056).
#[must_use]
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn in_v4_net(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6_net(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    let [a, b, c, d, e, f, g, h] = net;
    u128::from(ip) & mask == u128::from(Ipv6Addr::new(a, b, c, d, e, f, g, h)) & mask
}

const FORBIDDEN_V4: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 88, 99, 0], 24),
    ([192, 168, 0, 0], 16),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 4),
    ([240, 0, 0, 0], 4),
];

const FORBIDDEN_V6: &[([u16; 8], u32)] = &[
    ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64),
    ([0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0], 48),
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
];

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    FORBIDDEN_V4.iter().any(|&(net, prefix)| in_v4_net(ip, net, prefix))
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if let Some(embedded) = embedded_v4(ip) {
        return is_forbidden_v4(embedded);
    }
    FORBIDDEN_V6.iter().any(|&(net, prefix)| in_v6_net(ip, net, prefix))
}

/// The IPv4 address carried by an IPv4-mapped, IPv4-compatible, NAT64 well-known-prefix or 6to4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6_net(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6_net(ip, [0; 8], 96)
        || in_v6_net(ip, [0x0064, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        return Some(low32);
    }
    if in_v6_net(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// Checks a provider URL before latchkey sends anything to it.
///
/// Without `allow_private_networks`: only `https`, and an IP-literal host must not be forbidden
/// ([`is_forbidden_ip`]); host names are checked when the client resolves them. With it: `http` and
/// `https`, any host. A URL without a host is refused either way.
///
/// # Errors
/// [`OAuthError::Refused`] saying which rule the URL breaks.
pub fn check_url(url: &Url, policy: &OutboundPolicy) -> Result<(), OAuthError> {
    let refuse = |message: String| Err(OAuthError::Refused { message });
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private_networks => {}
        "http" => {
            return refuse(
                "plain http is only allowed when private networks are allowed (--allow-private-networks); \
                 use an https URL"
                    .to_owned(),
            );
        }
        other => {
            return refuse(format!(
                "the URL scheme '{}' is not supported; use https",
                crate::error::sanitize(other, 20)
            ));
        }
    }
    let ip = match url.host() {
        None => return refuse("the URL has no host".to_owned()),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    if !policy.allow_private_networks && is_forbidden_ip(ip) {
        return refuse(forbidden_message(None, ip));
    }
    Ok(())
}

fn forbidden_message(host: Option<&str>, ip: IpAddr) -> String {
    let target = match host {
        Some(host) => format!("the host {host} resolves to {ip}, which is"),
        None => format!("{ip} is"),
    };
    format!(
        "{target} a loopback, private, link-local or reserved address; \
         start latchkey with --allow-private-networks to reach such providers"
    )
}

/// The error [`GuardedResolver`] gives for a name with a forbidden address; found again in reqwest's error chain
/// to tell a refusal from a failed lookup.
#[derive(Debug)]
pub(crate) struct ForbiddenAddress {
    pub(crate) message: String,
}

impl fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ForbiddenAddress {}

/// A DNS resolver for reqwest that resolves with the system resolver (tokio's `lookup_host`) and fails when any
/// address of the name is forbidden, so that a name cannot lead latchkey to a private address.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("the host {host} has no addresses").into());
            }
            if let Some(bad) = addrs.iter().find(|addr| is_forbidden_ip(addr.ip())) {
                tracing::debug!(host = %host, address = %bad.ip(), "refused a host name that resolves to a forbidden address");
                let message = forbidden_message(Some(&host), bad.ip());
                return Err(ForbiddenAddress { message }.into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn resolver_refuses_names_of_forbidden_addresses() {
        let name = Name::from_str("localhost").expect("a valid name");
        let err = GuardedResolver.resolve(name).await.err().expect("localhost is loopback");
        let refusal = err.downcast_ref::<ForbiddenAddress>().expect("a refusal, not a lookup failure");
        assert!(refusal.message.contains("localhost"), "{}", refusal.message);
    }
}
