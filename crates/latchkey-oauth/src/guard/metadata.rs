//! The closed list of cloud metadata endpoints: addresses and host names that hand out a machine's cloud
//! credentials or configuration. Neither `--allow-private-networks` nor an allow-listed network opens them,
//! since several of them are not private addresses at all (Azure's `168.63.129.16`, Oracle's `192.0.0.192`,
//! Alibaba's `100.100.100.200`): only an allow-list entry naming the exact address does.

use std::net::IpAddr;

use super::canonical;

/// The IPv4 metadata endpoints, each with whose it is.
pub const METADATA_V4: &[([u8; 4], &str)] = &[
    ([169, 254, 169, 254], "instance metadata of AWS, Azure, GCP, Oracle, DigitalOcean, Hetzner, OpenStack, Akamai"),
    ([169, 254, 169, 253], "AWS DNS resolver"),
    ([169, 254, 170, 2], "AWS ECS task metadata and credentials"),
    ([169, 254, 170, 23], "AWS EKS Pod Identity agent"),
    ([168, 63, 129, 16], "Azure WireServer"),
    ([100, 100, 100, 200], "Alibaba Cloud metadata"),
    ([192, 0, 0, 192], "Oracle Cloud metadata (legacy endpoint)"),
    ([169, 254, 0, 23], "Tencent Cloud metadata"),
    ([169, 254, 42, 42], "Scaleway metadata"),
];

/// The IPv6 metadata endpoints, each with whose it is.
pub const METADATA_V6: &[([u16; 8], &str)] = &[
    ([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254], "AWS instance metadata"),
    ([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0253], "AWS DNS resolver"),
    ([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023], "AWS EKS Pod Identity agent"),
    ([0xfd00, 0xa9fe, 0xa9fe, 0, 0, 0, 0, 1], "Akamai (Linode) metadata"),
    ([0xfd00, 0x0042, 0, 0, 0, 0, 0, 0x0042], "Scaleway metadata"),
    ([0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe], "OpenStack metadata"),
];

/// The host names of metadata endpoints (compared without case and without a trailing dot).
pub const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.tencentyun.com"];

/// Whether `ip` is a cloud metadata endpoint ([`METADATA_V4`], [`METADATA_V6`]), in any IPv6 spelling that
/// carries the IPv4 address (mapped, compatible, NAT64, 6to4).
#[must_use]
pub fn is_metadata_ip(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => METADATA_V4.iter().any(|(octets, _)| *octets == v4.octets()),
        IpAddr::V6(v6) => METADATA_V6.iter().any(|(segments, _)| *segments == v6.segments()),
    }
}

/// Whether `host` names a cloud metadata endpoint ([`METADATA_HOSTS`]).
#[must_use]
pub fn is_metadata_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    METADATA_HOSTS.iter().any(|name| name.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;
    use std::sync::Arc;

    use reqwest::dns::{Name, Resolve};
    use url::Url;

    use super::super::{AllowList, ForbiddenAddress, GuardedResolver, Lookup, LookupFuture, check_url};
    use super::*;
    use crate::{OAuthError, OutboundPolicy};

    #[test]
    fn every_listed_cloud_endpoint_is_recognised_in_every_spelling() {
        for addr in [
            "169.254.169.254",
            "169.254.169.253",
            "169.254.170.2",
            "169.254.170.23",
            "168.63.129.16",
            "100.100.100.200",
            "192.0.0.192",
            "169.254.0.23",
            "169.254.42.42",
            "::ffff:168.63.129.16",
            "64:ff9b::c000:c0",
            "fd00:ec2::254",
            "fd00:ec2::253",
            "fd00:ec2::23",
            "fd00:a9fe:a9fe::1",
            "fd00:42::42",
            "fe80::a9fe:a9fe",
        ] {
            assert!(is_metadata_ip(addr.parse().expect(addr)), "{addr}");
        }
        for addr in ["168.63.129.17", "100.100.100.201", "192.0.0.193", "169.254.169.252", "fd00:ec2::255", "8.8.8.8"] {
            assert!(!is_metadata_ip(addr.parse().expect(addr)), "{addr}");
        }
        for host in ["metadata.google.internal", "METADATA.google.internal.", "metadata.tencentyun.com"] {
            assert!(is_metadata_host(host), "{host}");
        }
        assert!(!is_metadata_host("metadata.example.com"));
    }

    /// A lookup that answers every name with fixed addresses, without any network.
    struct Fixed(Vec<IpAddr>);

    impl Lookup for Fixed {
        fn lookup(&self, _host: String) -> LookupFuture {
            let ips = self.0.clone();
            Box::pin(async move { Ok(ips) })
        }
    }

    async fn resolved(policy: OutboundPolicy, ips: Vec<IpAddr>, name: &str) -> Result<(), String> {
        let resolver = GuardedResolver { policy: Arc::new(policy), lookup: Arc::new(Fixed(ips)) };
        match resolver.resolve(Name::from_str(name).expect("name")).await {
            Ok(_) => Ok(()),
            Err(err) => {
                Err(err.downcast_ref::<ForbiddenAddress>().map_or_else(|| err.to_string(), |f| f.message.clone()))
            }
        }
    }

    /// The resolver only answers with addresses; nothing here connects anywhere.
    #[tokio::test]
    async fn names_of_metadata_endpoints_are_refused_even_with_private_networks_allowed() {
        let open = || OutboundPolicy {
            allow_private_networks: true,
            allow_list: AllowList::parse("0.0.0.0/0, ::/0, idp.example").expect("list"),
            ..OutboundPolicy::default()
        };
        let v4 = METADATA_V4.iter().map(|(a, _)| IpAddr::from(*a));
        let v6 = METADATA_V6.iter().map(|(a, _)| IpAddr::from(*a));
        for ip in v4.chain(v6) {
            let err = resolved(open(), vec![ip], "idp.example").await.expect_err("metadata address");
            assert!(err.contains("metadata") && err.contains(&ip.to_string()), "{err}");
        }
        for name in METADATA_HOSTS {
            let err = resolved(open(), vec!["8.8.8.8".parse().expect("ip")], name).await.expect_err("metadata name");
            assert!(err.contains("metadata host name"), "{err}");
            let url = Url::parse(&format!("https://{name}/token")).expect("url");
            assert!(matches!(check_url(&url, &open()), Err(OAuthError::Refused { .. })), "{name}");
        }
        assert!(resolved(open(), vec!["8.8.8.8".parse().expect("ip")], "idp.example").await.is_ok());
        for (addr, _) in METADATA_V4 {
            let named = OutboundPolicy {
                allow_list: AllowList::parse(&Ipv4Addr::from(*addr).to_string()).expect("list"),
                ..open()
            };
            assert!(resolved(named, vec![IpAddr::from(*addr)], "idp.example").await.is_ok(), "named exactly: opened");
        }
    }
}
