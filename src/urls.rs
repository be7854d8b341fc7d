//! Rules about URLs that more than one part of the app applies.

use url::Url;

/// Whether `url` is `http` on this machine only (`127.0.0.0/8`, `::1`, `localhost`): where
/// the simulator may be assumed, and where plain `http` is acceptable for a platform's
/// return origin.
pub fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}
