//! Where webhooks may go: never inside the network awx-onboard runs in (loopback, private
//! ranges, link-local such as `169.254.169.254`, IPv6 unique-local, and names resolving
//! there), unless the deployment says so (`WEBHOOK_ALLOW_PRIVATE_TARGETS`). `https` only;
//! `http` and loopback only while `PUBLIC_URL` itself is loopback (a developer's machine).
//!
//! Checked at registration and again at each delivery: the deliverer's HTTP client resolves
//! names through [`CheckedResolver`], which refuses a name if any of its addresses is not
//! allowed and hands the client exactly the addresses it checked (no second lookup, so no
//! rebinding between the check and the connection).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Whether an address is on the public internet (not loopback, private, link-local,
/// unique-local, shared, documentation, multicast, broadcast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, third, ..] = v6.segments();
            // Only global unicast (2000::/3) is public, and not every part of it: not
            // documentation (2001:db8::/32), not Teredo (2001::/32, it tunnels to IPv4
            // anywhere); 6to4 (2002::/16) only as public as the IPv4 address inside it.
            if first & 0xe000 != 0x2000 {
                return false;
            }
            if first == 0x2001 && (second == 0x0db8 || second == 0) {
                return false;
            }
            if first == 0x2002 {
                let embedded =
                    std::net::Ipv4Addr::new((second >> 8) as u8, second as u8, (third >> 8) as u8, third as u8);
                return is_public(IpAddr::V4(embedded));
            }
            true
        }
    }
}

/// The rule for this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: deliver inside the own network too (and over http).
    pub allow_private: bool,
    /// `PUBLIC_URL` is loopback: a developer's machine, where receivers are local.
    pub public_url_is_loopback: bool,
}

/// Why a target is refused (shown to the operator as it is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("webhooks go over https (http only to this machine while PUBLIC_URL is on it too)")]
    NotHttps,
    #[error(
        "{0} is inside a private network (loopback, private, link-local or unique-local): webhooks go to \
         public addresses unless WEBHOOK_ALLOW_PRIVATE_TARGETS=true"
    )]
    Private(IpAddr),
}

impl TargetPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip) || (self.public_url_is_loopback && ip.is_loopback())
    }

    fn check_all(&self, addrs: &[IpAddr]) -> Result<(), TargetRefused> {
        match addrs.iter().find(|ip| !self.allows(**ip)) {
            Some(ip) => Err(TargetRefused::Private(*ip)),
            None => Ok(()),
        }
    }

    /// Checks a URL: its scheme, and every address its host is (or resolves to). A name
    /// that does not resolve now is let through (each delivery checks again).
    pub async fn check(&self, url: &url::Url) -> Result<(), TargetRefused> {
        let addrs: Vec<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => {
                let port = url.port_or_known_default().unwrap_or(443);
                match tokio::net::lookup_host((name, port)).await {
                    Ok(found) => found.map(|a| a.ip()).collect(),
                    Err(_) => Vec::new(),
                }
            }
            None => Vec::new(),
        };
        self.check_all(&addrs)?;
        let https = url.scheme() == "https";
        let local = !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback);
        if !(https || self.allow_private || (self.public_url_is_loopback && local)) {
            return Err(TargetRefused::NotHttps);
        }
        Ok(())
    }

    /// Checks, at delivery, the scheme and the literal address of a URL (names go through
    /// [`CheckedResolver`]): an endpoint stored before a rule tightened is held to it.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), TargetRefused> {
        if url.scheme() != "https" && !self.allow_private && !self.public_url_is_loopback {
            return Err(TargetRefused::NotHttps);
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_all(&[IpAddr::V4(ip)]),
            Some(url::Host::Ipv6(ip)) => self.check_all(&[IpAddr::V6(ip)]),
            _ => Ok(()),
        }
    }
}

/// The deliverer's DNS: one lookup, every address checked, the checked addresses used.
#[derive(Debug, Clone)]
pub struct CheckedResolver(pub TargetPolicy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
            policy.check_all(&ips)?;
            if found.is_empty() {
                return Err("the name has no address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

impl CheckedResolver {
    pub fn shared(policy: TargetPolicy) -> Arc<CheckedResolver> {
        Arc::new(CheckedResolver(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_not_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::169.254.169.254",
            "fec0::1",
            "2002:a00:1::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "192.0.0.8",
        ] {
            assert!(!is_public(inside.parse().unwrap()), "{inside}");
        }
        for outside in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "192.0.78.9",
            "2002:5db8:d822::1",
        ] {
            assert!(is_public(outside.parse().unwrap()), "{outside}");
        }
    }

    #[tokio::test]
    async fn the_rule_follows_the_deployment() {
        let strict = TargetPolicy::default();
        let dev = TargetPolicy {
            public_url_is_loopback: true,
            ..TargetPolicy::default()
        };
        let inside = TargetPolicy {
            allow_private: true,
            ..TargetPolicy::default()
        };
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(strict.check(&url("https://127.0.0.1/h")).await.is_err());
        assert!(
            strict.check(&url("https://localhost/h")).await.is_err(),
            "names are resolved"
        );
        assert!(strict.check(&url("https://[fd00::1]/h")).await.is_err());
        assert!(strict.check(&url("https://169.254.169.254/latest")).await.is_err());
        assert_eq!(
            strict.check(&url("http://93.184.216.34/h")).await,
            Err(TargetRefused::NotHttps)
        );
        assert!(strict.check(&url("https://93.184.216.34/h")).await.is_ok());
        assert!(dev.check(&url("http://127.0.0.1:9/h")).await.is_ok());
        assert!(dev.check(&url("https://10.0.0.1/h")).await.is_err(), "loopback only");
        assert!(inside.check(&url("http://10.0.0.1/h")).await.is_ok());
    }
}
