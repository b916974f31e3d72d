//! Who the client is on the network: the TCP peer, or, when the peer is a configured reverse
//! proxy, the address that proxy says it forwarded for, in the one header the configuration
//! names (`forwarded_header`: `X-Forwarded-For`, as nginx and most load balancers write it, or
//! RFC 7239's `Forwarded`). Only that header is read, because a proxy passes the other through as
//! the client wrote it; it is read right to left, skipping trusted proxies, so what a client
//! writes stands left of what the proxy appended and is never taken. Per-address limits key on
//! [`ClientAddr::limit_key`]: an IPv6 client by its /64, which one subscriber usually holds whole.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, request::Parts};
use healthcode_store::Store;
use ipnet::IpNet;

use crate::App;
use crate::problem::ApiError;

/// The client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// What a per-address limit counts under: an IPv4 address itself, an IPv6 address's /64.
    pub fn limit_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let net = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(net.into())
            }
        }
    }
}

/// Which header a trusted proxy writes the client into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    #[serde(rename = "forwarded")]
    Forwarded,
}

impl<S: Store> FromRequestParts<Arc<App<S>>> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::fault("no peer address on the connection"))?;
        let trusted = &app.settings.trusted_proxies;
        if forwarded_by_untrusted(peer, &parts.headers, trusted)
            && !WARNED_UNTRUSTED_FORWARDING.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                peer = %peer.to_canonical(),
                "a request carries X-Forwarded-For or Forwarded from a peer that is not in \
                 trusted_proxies; the header is ignored and the peer is taken as the client. Behind a \
                 reverse proxy, set trusted_proxies, or every client shares the proxy's address (one \
                 set of sign-in delays and code limits for all). Said once."
            );
        }
        Ok(ClientAddr(client_of(
            peer,
            &parts.headers,
            trusted,
            app.settings.forwarded_header,
        )))
    }
}

/// Whether the warning about forwarding headers from an untrusted peer was given (once a
/// process).
static WARNED_UNTRUSTED_FORWARDING: AtomicBool = AtomicBool::new(false);

/// Whether a request from `peer` carries a forwarding header that is ignored because `peer` is
/// not a trusted proxy: the sign of a proxy in front that `trusted_proxies` does not name.
pub fn forwarded_by_untrusted(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    let peer = peer.to_canonical();
    !trusted.iter().any(|n| n.contains(&peer))
        && (headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded"))
}

/// The client behind `peer`, by the forwarding header when `peer` is trusted. Addresses are
/// compared in their canonical form: a server listening on `[::]` sees an IPv4 proxy as
/// `::ffff:10.0.0.2`, which is `10.0.0.2`.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], header: ForwardedHeader) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(headers, header);
    // The rightmost address no trusted proxy holds; when every hop is a proxy, the leftmost.
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The addresses the forwarding header names, client first: every `header` line's values in
/// order. A hop that is not an address (`unknown`, an obfuscated name) ends the list there:
/// nothing left of it can be trusted.
fn forwarded_for(headers: &HeaderMap, header: ForwardedHeader) -> Vec<IpAddr> {
    let lines = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect()
    };
    let hops: Vec<String> = match header {
        ForwardedHeader::XForwardedFor => lines("x-forwarded-for"),
        ForwardedHeader::Forwarded => lines("forwarded")
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().to_owned())
                    })
                    // An element without `for=` names no one: it stops the walk like `unknown`.
                    .unwrap_or_default()
            })
            .collect(),
    };
    let mut out = Vec::new();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => out.push(ip.to_canonical()),
            None => break,
        }
    }
    out.reverse();
    out
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_noticed() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert!(forwarded_by_untrusted(ip("192.0.2.7"), &h, &trusted));
        assert!(forwarded_by_untrusted(
            ip("192.0.2.7"),
            &headers(&[("forwarded", "for=1.2.3.4")]),
            &[]
        ));
        assert!(!forwarded_by_untrusted(ip("10.0.0.2"), &h, &trusted));
        assert!(!forwarded_by_untrusted(ip("192.0.2.7"), &HeaderMap::new(), &[]));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        for kind in [XFF, FWD] {
            assert_eq!(client_of(ip("192.0.2.7"), &h, &[], kind), ip("192.0.2.7"));
            let trusted = ["10.0.0.0/8".parse().unwrap()];
            assert_eq!(client_of(ip("192.0.2.7"), &h, &trusted, kind), ip("192.0.2.7"));
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client wrote a made-up address; the proxy appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, XFF), ip("203.0.113.9"));
        // Two proxies.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, XFF), ip("203.0.113.9"));
        // RFC 7239, with ports and IPv6.
        let h = headers(&[(
            "forwarded",
            "for=\"[2001:db8::7]:4711\";proto=https, for=10.1.1.1",
        )]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, FWD), ip("2001:db8::7"));
        // No header: the proxy itself.
        assert_eq!(
            client_of(ip("10.0.0.2"), &HeaderMap::new(), &trusted, XFF),
            ip("10.0.0.2")
        );
        // An unknown hop stops the walk: what stands left of it is the client's own word.
        let h = headers(&[("forwarded", "for=198.51.100.1, for=unknown")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, FWD), ip("10.0.0.2"));
    }

    #[test]
    fn only_the_header_the_proxy_writes_is_read() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The proxy appends X-Forwarded-For and passes the client's own Forwarded through.
        let h = headers(&[
            ("forwarded", "for=198.51.100.77"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, XFF), ip("203.0.113.9"));
        // And the other way round.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.77"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, FWD), ip("203.0.113.9"));
    }

    #[test]
    fn an_ipv4_proxy_seen_through_an_ipv6_socket_is_still_trusted() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
        assert_eq!(
            client_of(ip("::ffff:10.0.0.2"), &h, &trusted, XFF),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64() {
        let a = ClientAddr(ip("2001:db8:1:2:aaaa::1")).limit_key();
        let b = ClientAddr(ip("2001:db8:1:2:bbbb::9")).limit_key();
        let c = ClientAddr(ip("2001:db8:1:3::1")).limit_key();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(ClientAddr(ip("192.0.2.7")).limit_key(), ip("192.0.2.7"));
    }
}
