//! Who the client is on the network: the TCP peer, or, when the peer is a configured reverse
//! proxy, the address that proxy says it forwarded for (`Forwarded: for=…`, RFC 7239, else
//! `X-Forwarded-For`). Read right to left, skipping trusted proxies, so a client behind the proxy
//! cannot name an address of its choice: what it writes in the header stands left of what the
//! proxy appends. Per-address limits key on this.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, request::Parts};
use healthcode_store::Store;
use ipnet::IpNet;

use crate::App;
use crate::problem::ApiError;

/// The client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Store> FromRequestParts<Arc<App<S>>> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::fault("no peer address on the connection"))?;
        Ok(ClientAddr(client_of(
            peer,
            &parts.headers,
            &app.settings.trusted_proxies,
        )))
    }
}

/// The client behind `peer`, by the forwarding headers when `peer` is trusted.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for(headers);
    // The rightmost address no trusted proxy holds; when every hop is a proxy, the leftmost.
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The addresses the forwarding headers name, client first: every `Forwarded` header's `for=`
/// values, or when there is none, every `X-Forwarded-For` header's. A hop that is not an address
/// (`unknown`, an obfuscated name) ends the list there: nothing left of it can be trusted.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
            })
        })
        .collect();
    let hops: Vec<&str> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    } else {
        forwarded
    };
    let mut out = Vec::new();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => out.push(ip),
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

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        assert_eq!(client_of(ip("192.0.2.7"), &h, &[]), ip("192.0.2.7"));
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_of(ip("192.0.2.7"), &h, &trusted), ip("192.0.2.7"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client wrote a made-up address; the proxy appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("203.0.113.9"));
        // Two proxies.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("203.0.113.9"));
        // RFC 7239, with ports and IPv6, preferred to X-Forwarded-For.
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=10.1.1.1",
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("2001:db8::7"));
        // No header: the proxy itself.
        assert_eq!(
            client_of(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // An unknown hop stops the walk: what stands left of it is the client's own word.
        let h = headers(&[("forwarded", "for=198.51.100.1, for=unknown")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.2"));
    }
}
