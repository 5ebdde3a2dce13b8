//! The client's address for log-in throttling: the TCP peer, or, when the peer is a trusted reverse proxy
//! (`--trusted-proxies`), the address the proxies say they received the request from (`X-Forwarded-For`, else
//! RFC 7239 `Forwarded: for=`). Without trusted proxies, and from any other peer, those headers are ignored: a
//! client could write anything in them.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The networks of the reverse proxies whose forwarding headers are believed. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses a list separated by commas or whitespace of CIDR networks (`10.0.0.0/8`, `fd00::/8`) and single
    /// addresses (`192.0.2.1`, `::1`).
    ///
    /// # Errors
    /// A sentence naming the entry that is neither.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for raw in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()) {
            let bad = || {
                let shown: String = raw.chars().filter(|c| !c.is_control()).take(60).collect();
                format!("'{shown}' is not a network (10.0.0.0/8) or an address")
            };
            let (addr, prefix) = match raw.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
                None => (raw, None),
            };
            let addr = unmap(addr.trim_matches(['[', ']']).parse::<IpAddr>().map_err(|_| bad())?);
            let full = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(full);
            if prefix > full {
                return Err(bad());
            }
            networks.push((addr, prefix));
        }
        Ok(Self { networks })
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` lies in one of the trusted networks (an IPv4-mapped IPv6 address counts as its IPv4 one).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.networks.iter().any(|(net, prefix)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack listener reports IPv4 peers) as IPv4.
#[must_use]
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy; then, walking the forwarding chain from
/// the right (the hop nearest to latchkey), the first address that is not a trusted proxy. When every hop is
/// trusted, the leftmost; when the nearest untrusted hop cannot be read (`unknown`, an obfuscated name, garbage),
/// or no forwarding header is present, the peer (the proxy) itself, so that such requests share its bucket.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = unmap(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let Some(hops) = forwarded_hops(headers) else {
        return peer;
    };
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => {}
            Some(ip) => return *ip,
            None => return peer,
        }
    }
    hops.first().copied().flatten().unwrap_or(peer)
}

/// The hops of `X-Forwarded-For` (all its lines, in order) or, when there is none, of `Forwarded`'s `for=`
/// parameters; `None` for a hop that is not an address.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let joined = |name: &str| {
        let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    if let Some(list) = joined("x-forwarded-for") {
        return Some(list.split(',').map(|hop| parse_node(hop.trim())).collect());
    }
    let forwarded = joined("forwarded")?;
    let hops: Vec<Option<IpAddr>> = forwarded
        .split(',')
        .map(|element| {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
            });
            node.and_then(|n| parse_node(n.trim_matches('"')))
        })
        .collect();
    (!hops.is_empty()).then_some(hops)
}

/// One node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(unmap(ip));
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        return inside.parse::<IpAddr>().ok().filter(IpAddr::is_ipv6).map(unmap);
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn proxies_are_parsed_as_networks_and_addresses() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7 [fd00::]/8,::1").expect("list");
        for inside in ["10.200.3.4", "192.0.2.7", "::ffff:10.0.0.1", "fd12::5", "::1"] {
            assert!(proxies.contains(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "fe80::1", "::2"] {
            assert!(!proxies.contains(ip(outside)), "{outside}");
        }
        for bad in ["10.0.0.0/33", "::/129", "proxy.internal", "10.0.0.0/x", "10.0.0"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        for full in ["192.0.2.7/32", "::1/128", "0.0.0.0/0"] {
            assert!(!TrustedProxies::parse(full).expect(full).is_empty(), "{full}");
        }
        let err = TrustedProxies::parse("10.0.0.0/8, proxy\u{7}.internal").expect_err("a name");
        assert_eq!(err, "'proxy.internal' is not a network (10.0.0.0/8) or an address");
        assert!(TrustedProxies::parse(" , ").expect("empty").is_empty());
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn forwarding_headers_are_ignored_from_an_untrusted_peer() {
        let forged = headers(&[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.2")]);
        assert_eq!(client_ip(ip("203.0.113.9"), &forged, &TrustedProxies::default()), ip("203.0.113.9"));
        let proxies = TrustedProxies::parse("10.0.0.0/8").expect("list");
        assert_eq!(client_ip(ip("203.0.113.9"), &forged, &proxies), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("::ffff:203.0.113.9"), &forged, &proxies), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_of_x_forwarded_for_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 2001:db8:ffff::/48").expect("list");
        let peer = ip("10.0.0.2");
        // The client wrote a fake first hop; the proxies appended the real one and themselves.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7"), ("x-forwarded-for", "10.0.0.9")]);
        assert_eq!(client_ip(peer, &chain, &proxies), ip("198.51.100.7"));
        let v6 = headers(&[("x-forwarded-for", "2001:db8:1::5, 2001:db8:ffff::1")]);
        assert_eq!(client_ip(peer, &v6, &proxies), ip("2001:db8:1::5"));
        let all_trusted = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.9")]);
        assert_eq!(client_ip(peer, &all_trusted, &proxies), ip("10.1.1.1"));
        let unreadable = headers(&[("x-forwarded-for", "198.51.100.7, unknown")]);
        assert_eq!(client_ip(peer, &unreadable, &proxies), peer, "an unreadable nearest hop: the proxy itself");
        assert_eq!(client_ip(peer, &HeaderMap::new(), &proxies), peer);
        let with_port = headers(&[("x-forwarded-for", "198.51.100.7:5555")]);
        assert_eq!(client_ip(peer, &with_port, &proxies), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_for_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").expect("list");
        let peer = ip("10.0.0.2");
        let forwarded = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http, For="[2001:db8:cafe::17]:4711";by=10.0.0.3, for=10.0.0.8"#,
        )]);
        assert_eq!(client_ip(peer, &forwarded, &proxies), ip("2001:db8:cafe::17"));
        let hidden = headers(&[("forwarded", "for=192.0.2.60, for=_hidden")]);
        assert_eq!(client_ip(peer, &hidden, &proxies), peer);
        let both = headers(&[("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(client_ip(peer, &both, &proxies), ip("198.51.100.7"), "X-Forwarded-For wins");
    }

    #[test]
    fn nodes_in_every_spelling() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        for bad in ["unknown", "_hidden", "[192.0.2.1]", "[2001:db8::1]:x", "192.0.2.1:99999", ""] {
            assert_eq!(parse_node(bad), None, "{bad}");
        }
    }
}
