//! Addresses: ranges, the reverse proxies that are trusted, and who the client is behind
//! them. Only when the connection comes from one of
//! `TRUSTED_PROXIES` are `X-Forwarded-For` and `X-Forwarded-Proto` believed: the client is
//! then the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (entries
//! further left were written by the client and can be forged). Throttling, request logs
//! and the `/metrics` gate use this address, so a proxy on the same host does not make
//! every visitor "loopback".

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

/// An address range, `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0–{max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address and whether it came over https.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        if !self.trusts(peer) {
            return ClientAddr { ip: peer, https: None };
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| parse_forwarded_ip(entry.trim()))
            .collect();
        // Rightmost untrusted; if every hop is a trusted proxy, the leftmost of them.
        let ip = forwarded
            .iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer);
        let https = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .map(|proto| proto.trim().eq_ignore_ascii_case("https"));
        ClientAddr { ip, https }
    }
}

/// An `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|v6| v6.parse().ok())
}

/// The client of this request, as far as this app can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// What the trusted proxy said about the scheme (`None`: no proxy said).
    pub https: Option<bool>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    /// The address the `client_addr` middleware found, else the connection's peer.
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let found = parts.extensions.get::<ClientAddr>().copied().or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| ClientAddr {
                    ip: info.0.ip(),
                    https: None,
                })
        });
        Ok(found.unwrap_or(ClientAddr {
            ip: IpAddr::from([0, 0, 0, 0]),
            https: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|c| c.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn ranges_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()), "v4-mapped v6");
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "nonsense", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_are_ignored_from_untrusted_peers() {
        let trusted = proxies(&["127.0.0.1"]);
        let client = trusted.client(
            "203.0.113.9".parse().unwrap(),
            &headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]),
        );
        assert_eq!(client.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(client.https, None);
        // Without any trusted proxy configured, nothing is believed.
        let none = TrustedProxies::default();
        let client = none.client(
            "127.0.0.1".parse().unwrap(),
            &headers(&[("x-forwarded-for", "1.2.3.4")]),
        );
        assert_eq!(client.ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        // The client forged the first entry; our proxies appended the rest.
        let client = trusted.client(
            peer,
            &headers(&[
                ("x-forwarded-for", "9.9.9.9, 198.51.100.7"),
                ("x-forwarded-for", "10.1.2.3"),
                ("x-forwarded-proto", "https"),
            ]),
        );
        assert_eq!(client.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client.https, Some(true));
        let same_host = trusted.client(peer, &headers(&[("x-forwarded-for", "127.0.0.1")]));
        assert_eq!(same_host.ip, peer, "every hop trusted: the first hop");
        let ported = trusted.client(peer, &headers(&[("x-forwarded-for", "[2001:db8::5]:4711")]));
        assert_eq!(ported.ip, "2001:db8::5".parse::<IpAddr>().unwrap());
        let garbage = trusted.client(peer, &headers(&[("x-forwarded-for", "unknown, <script>")]));
        assert_eq!(garbage.ip, peer, "no usable entry: the peer");
    }
}
