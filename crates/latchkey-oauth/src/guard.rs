//! The outbound request guard: keeps latchkey from being used to reach addresses that a provider URL has no
//! business pointing at (server-side request forgery).
//!
//! Three layers:
//! - [`check_url`] refuses any scheme but `https` (plain `http` only towards what the policy opens) and any
//!   IP-literal host that [`decide`] refuses, before a request is built;
//! - a guarded DNS resolver, installed in every [`crate::HttpClient`], resolves host names itself and refuses when
//!   any address is refused by [`decide`]; reqwest then connects to exactly the addresses checked, so there is no
//!   DNS-rebinding gap;
//! - the client never follows redirects, so a provider cannot bounce a request elsewhere.
//!
//! What is refused: every address that is not globally reachable unicast ([`is_forbidden_ip`]), unless
//! `--allow-private-networks` is on or the allow-list opens it; and the cloud metadata addresses
//! ([`is_metadata_ip`], [`is_metadata_host`]) always, unless the allow-list names that very address.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::{OAuthError, OutboundPolicy};

mod metadata;

pub use metadata::{METADATA_HOSTS, METADATA_V4, METADATA_V6, is_metadata_host, is_metadata_ip};

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
    // The unspecified `::` and loopback `::1` need no rule of their own: they lie in the IPv4-compatible `::/96`,
    // whose embedded addresses 0.0.0.0 and 0.0.0.1 are in the refused "this network" 0.0.0.0/8.
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

/// An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => embedded_v4(v6).map_or(ip, IpAddr::V4),
        other => other,
    }
}

/// One entry of the outbound allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// A network in CIDR form, or a single address (prefix 32 or 128).
    Net { addr: IpAddr, prefix: u8 },
    /// A host name, compared without case and without a trailing dot.
    Host(String),
}

impl AllowEntry {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self, canonical(ip)) {
            (Self::Net { addr: IpAddr::V4(net), prefix }, IpAddr::V4(v4)) => {
                in_v4_net(v4, net.octets(), (*prefix).into())
            }
            (Self::Net { addr: IpAddr::V6(net), prefix }, IpAddr::V6(v6)) => {
                in_v6_net(v6, net.segments(), (*prefix).into())
            }
            _ => false,
        }
    }

    fn names_exactly(&self, ip: IpAddr) -> bool {
        match self {
            Self::Net { addr, prefix } => {
                let full = if addr.is_ipv4() { 32 } else { 128 };
                *prefix == full && canonical(*addr) == canonical(ip)
            }
            Self::Host(_) => false,
        }
    }
}

/// The hosts and networks a self-hoster opens for outbound OAuth requests (`--outbound-allow`), beside or instead
/// of `--allow-private-networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

impl AllowList {
    /// Parses a list separated by commas or whitespace: CIDR networks (`10.1.0.0/16`, `fd00::/8`), single
    /// addresses (`10.1.2.3`, `::1`) and host names (`keycloak.internal`).
    ///
    /// # Errors
    /// A message naming the entry that is none of these.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for raw in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()) {
            entries.push(parse_entry(raw)?);
        }
        Ok(Self { entries })
    }

    /// The entries, in the order given.
    #[must_use]
    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    fn opens_ip(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|e| e.contains(ip))
    }

    fn names_ip(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|e| e.names_exactly(ip))
    }

    fn opens_host(&self, host: &str) -> bool {
        let host = normalise_host(host);
        self.entries.iter().any(|e| matches!(e, AllowEntry::Host(h) if *h == host))
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_entry(raw: &str) -> Result<AllowEntry, String> {
    let bad =
        || format!("'{}' is not a network (10.0.0.0/8), an address or a host name", crate::error::sanitize(raw, 80));
    if let Some((addr, prefix)) = raw.split_once('/') {
        let addr: IpAddr = addr.trim_matches(['[', ']']).parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        return Ok(AllowEntry::Net { addr, prefix });
    }
    if let Ok(addr) = raw.trim_matches(['[', ']']).parse::<IpAddr>() {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(AllowEntry::Net { addr, prefix });
    }
    let host = normalise_host(raw);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid { Ok(AllowEntry::Host(host)) } else { Err(bad()) }
}

/// Whether latchkey may connect to `ip`, reached through the host name `host` when there is one.
///
/// # Errors
/// A sentence saying why not and what opens it.
pub fn decide(ip: IpAddr, host: Option<&str>, policy: &OutboundPolicy) -> Result<(), String> {
    let target = match host {
        Some(host) => format!("the host {host} resolves to {ip}, which is"),
        None => format!("{ip} is"),
    };
    if let Some(host) = host.filter(|h| is_metadata_host(h)) {
        return Err(format!(
            "the host {host} (resolving to {ip}) is a cloud metadata host name; latchkey never contacts it"
        ));
    }
    if is_metadata_ip(ip) {
        if policy.allow_list.names_ip(ip) {
            return Ok(());
        }
        return Err(format!(
            "{target} a cloud metadata address; latchkey never contacts it unless --outbound-allow names this exact address"
        ));
    }
    if !is_forbidden_ip(ip) {
        return Ok(());
    }
    let opened = policy.allow_private_networks
        || policy.allow_list.opens_ip(ip)
        || host.is_some_and(|h| policy.allow_list.opens_host(h));
    if opened {
        return Ok(());
    }
    Err(format!(
        "{target} a loopback, private, link-local or reserved address; start latchkey with \
         --allow-private-networks, or list the host or network in --outbound-allow, to reach such providers"
    ))
}

/// Checks a provider URL before latchkey sends anything to it: `https` only, plain `http` only when
/// `--allow-private-networks` is on or the allow-list opens the host; an IP-literal host must pass [`decide`].
/// Host names are checked again, address by address, when the client resolves them.
///
/// # Errors
/// [`OAuthError::Refused`] saying which rule the URL breaks.
pub fn check_url(url: &Url, policy: &OutboundPolicy) -> Result<(), OAuthError> {
    let refuse = |message: String| Err(OAuthError::Refused { message });
    let ip = match url.host() {
        None => return refuse("the URL has no host".to_owned()),
        Some(Host::Domain(host)) if is_metadata_host(host) => {
            return refuse(format!("{host} is a cloud metadata host name; latchkey never contacts it"));
        }
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            let opened = policy.allow_private_networks
                || match (ip, url.host_str()) {
                    (Some(ip), _) => policy.allow_list.opens_ip(ip),
                    (None, Some(host)) => policy.allow_list.opens_host(host),
                    (None, None) => false,
                };
            if !opened {
                return refuse(
                    "plain http is only allowed towards hosts that --allow-private-networks or --outbound-allow \
                     opens; use an https URL"
                        .to_owned(),
                );
            }
        }
        other => {
            return refuse(format!(
                "the URL scheme '{}' is not supported; use https",
                crate::error::sanitize(other, 20)
            ));
        }
    }
    if let Some(ip) = ip {
        decide(ip, None, policy).map_err(|message| OAuthError::Refused { message })?;
    }
    Ok(())
}

/// Checks a URL that the person's browser visits, not latchkey (the authorization URL, a verification URI):
/// `https`, or plain `http` only towards hosts that the policy opens. Its addresses are not judged: a browser
/// inside the network may well reach an identity provider there.
///
/// # Errors
/// [`OAuthError::Refused`] saying which rule the URL breaks.
pub fn check_browser_url(url: &Url, policy: &OutboundPolicy) -> Result<(), OAuthError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if policy.allow_private_networks => Ok(()),
        "http" => {
            let opened = match url.host() {
                Some(Host::Ipv4(v4)) => policy.allow_list.opens_ip(IpAddr::V4(v4)),
                Some(Host::Ipv6(v6)) => policy.allow_list.opens_ip(IpAddr::V6(v6)),
                Some(Host::Domain(host)) => policy.allow_list.opens_host(host),
                None => false,
            };
            if opened {
                Ok(())
            } else {
                Err(OAuthError::Refused {
                    message: "plain http is only allowed towards hosts that --allow-private-networks or \
                              --outbound-allow opens; use an https URL"
                        .to_owned(),
                })
            }
        }
        other => Err(OAuthError::Refused {
            message: format!("the URL scheme '{}' is not supported; use https", crate::error::sanitize(other, 20)),
        }),
    }
}

/// The error [`GuardedResolver`] gives for a name with a refused address; found again in reqwest's error chain
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

/// The answer of a name lookup.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Turns a host name into addresses. The system resolver in production; tests inject their own to map names to
/// addresses without any network.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host`.
    fn lookup(&self, host: String) -> LookupFuture;
}

/// The operating system's resolver (through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> LookupFuture {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A DNS resolver for reqwest that resolves with a [`Lookup`] and fails when any address of the name is refused
/// by [`decide`], so that a name cannot lead latchkey to a private or metadata address.
#[derive(Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<OutboundPolicy>,
    pub(crate) lookup: Arc<dyn Lookup>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = Arc::clone(&self.policy);
        let lookup = Arc::clone(&self.lookup);
        Box::pin(async move {
            let ips = lookup.lookup(host.clone()).await?;
            if ips.is_empty() {
                return Err(format!("the host {host} has no addresses").into());
            }
            for ip in &ips {
                if let Err(message) = decide(*ip, Some(&host), &policy) {
                    tracing::debug!(host = %host, address = %ip, "refused a host name that resolves to a refused address");
                    return Err(ForbiddenAddress { message }.into());
                }
            }
            let addrs: Vec<SocketAddr> = ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests;
