//! Property tests of the outbound guard's decision: no input makes it panic, every address of a refused range is
//! refused in each of its spellings (IPv4, IPv4-mapped, IPv4-compatible, NAT64), private networks open only when
//! allowed, and the cloud metadata addresses stay closed whatever is allowed short of naming them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use latchkey_oauth::{AllowList, OutboundPolicy, check_browser_url, check_url, decide, is_metadata_ip};
use proptest::prelude::*;
use url::Url;

fn policy(allow_private_networks: bool, list: &str) -> OutboundPolicy {
    OutboundPolicy {
        allow_private_networks,
        allow_list: AllowList::parse(list).expect("allow-list"),
        ..OutboundPolicy::default()
    }
}

/// A network of a refused IPv4 range, as (first address, prefix length).
fn refused_v4_ranges() -> impl Strategy<Value = (u32, u32)> {
    prop::sample::select(vec![
        (u32::from(Ipv4Addr::new(0, 0, 0, 0)), 8),
        (u32::from(Ipv4Addr::new(10, 0, 0, 0)), 8),
        (u32::from(Ipv4Addr::new(100, 64, 0, 0)), 10),
        (u32::from(Ipv4Addr::new(127, 0, 0, 0)), 8),
        (u32::from(Ipv4Addr::new(169, 254, 0, 0)), 16),
        (u32::from(Ipv4Addr::new(172, 16, 0, 0)), 12),
        (u32::from(Ipv4Addr::new(192, 168, 0, 0)), 16),
        (u32::from(Ipv4Addr::new(224, 0, 0, 0)), 4),
        (u32::from(Ipv4Addr::new(240, 0, 0, 0)), 4),
    ])
}

/// An address inside one of the refused IPv4 ranges.
fn refused_v4() -> impl Strategy<Value = Ipv4Addr> {
    (refused_v4_ranges(), any::<u32>()).prop_map(|((net, prefix), host)| {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        Ipv4Addr::from((net & mask) | (host & !mask))
    })
}

/// An address inside one of the refused IPv6 ranges (unique local, link-local, multicast, documentation).
fn refused_v6() -> impl Strategy<Value = Ipv6Addr> {
    let ranges = prop::sample::select(vec![(0xfc00_u16, 7_u32), (0xfe80, 10), (0xff00, 8), (0x2001, 32)]);
    (ranges, any::<u128>()).prop_map(|((first, prefix), host)| {
        let net = if first == 0x2001 { 0x2001_0db8_u128 << 96 } else { u128::from(first) << 112 };
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        Ipv6Addr::from((net & mask) | (host & !mask))
    })
}

/// The IPv6 spellings that carry an IPv4 address.
fn v6_forms(v4: Ipv4Addr) -> [Ipv6Addr; 3] {
    let bits = u128::from(u32::from(v4));
    [v4.to_ipv6_mapped(), Ipv6Addr::from(bits), Ipv6Addr::from((0x0064_ff9b_u128 << 96) | bits)]
}

fn verdict(ip: IpAddr, policy: &OutboundPolicy) -> bool {
    decide(ip, None, policy).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_decision_never_panics_and_carries_a_reason(
        ip in any::<IpAddr>(),
        host in proptest::option::of("[a-z0-9.-]{1,30}"),
        allow_private in any::<bool>(),
    ) {
        for policy in [policy(allow_private, ""), policy(allow_private, "10.0.0.0/8, 127.0.0.1, idp.internal")] {
            if let Err(reason) = decide(ip, host.as_deref(), &policy) {
                prop_assert!(!reason.is_empty());
                prop_assert!(reason.contains(&ip.to_string()), "{}", reason);
            }
        }
    }

    #[test]
    fn every_ipv4_spelling_of_an_address_gets_the_same_decision(v4 in any::<Ipv4Addr>(), allow_private in any::<bool>()) {
        for policy in [policy(allow_private, ""), policy(false, "127.0.0.0/8"), policy(true, "169.254.169.254")] {
            let expected = verdict(IpAddr::V4(v4), &policy);
            for v6 in v6_forms(v4) {
                prop_assert_eq!(verdict(IpAddr::V6(v6), &policy), expected, "{} as {}", v4, v6);
            }
        }
    }

    #[test]
    fn refused_ranges_are_refused_in_every_spelling_and_opened_only_when_allowed(
        v4 in refused_v4(),
        v6 in refused_v6(),
    ) {
        let guarded = policy(false, "");
        let open = policy(true, "");
        for ip in [IpAddr::V4(v4), IpAddr::V6(v6)] {
            prop_assert!(!verdict(ip, &guarded), "{} passed the guard", ip);
            prop_assert_eq!(verdict(ip, &open), !is_metadata_ip(ip), "{}", ip);
            let literal = match ip {
                IpAddr::V4(a) => format!("https://{a}/token"),
                IpAddr::V6(a) => format!("https://[{a}]/token"),
            };
            let url = Url::parse(&literal).expect("an IP-literal URL");
            prop_assert!(check_url(&url, &guarded).is_err(), "{}", literal);
        }
        for v6 in v6_forms(v4) {
            prop_assert!(!verdict(IpAddr::V6(v6), &guarded), "{} passed the guard", v6);
        }
    }

    #[test]
    fn metadata_addresses_need_their_own_name(allow_private in any::<bool>()) {
        for text in ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "168.63.129.16", "192.0.0.192"] {
            let ip: IpAddr = text.parse().expect("address");
            prop_assert!(!verdict(ip, &policy(allow_private, "0.0.0.0/0, ::/0")), "{}", text);
            prop_assert!(verdict(ip, &policy(allow_private, text)), "{}", text);
        }
    }

    #[test]
    fn checking_any_url_never_panics(text in any::<String>(), allow_private in any::<bool>()) {
        let guarded = policy(allow_private, "127.0.0.1, idp.internal");
        for candidate in [text.clone(), format!("https://{text}/t"), format!("http://{text}"), format!("https://[{text}]/")] {
            if let Ok(url) = Url::parse(&candidate) {
                let checked = check_url(&url, &guarded);
                let _ = check_browser_url(&url, &guarded);
                if !allow_private && url.scheme() != "https" && url.scheme() != "http" {
                    prop_assert!(checked.is_err(), "{}", candidate);
                }
            }
        }
    }

    #[test]
    fn plain_http_needs_an_opened_host(host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,20}){1,3}") {
        // Some generated names are not valid host names (an `xn--` label that is not punycode): not this test's
        // subject.
        let parsed = Url::parse(&format!("http://{host}/token"));
        prop_assume!(parsed.is_ok());
        let url = parsed.expect("checked above");
        prop_assert!(check_url(&url, &policy(false, "")).is_err());
        prop_assert!(check_browser_url(&url, &policy(false, "")).is_err());
        prop_assert!(check_url(&url, &policy(false, &host)).is_ok());
        prop_assert!(check_browser_url(&url, &policy(true, "")).is_ok());
    }
}
