//! Who is calling, and over what, when reverse proxies stand in between.
//!
//! Rate limits, the sign-in throttle and the audit log key on the client's
//! address. Behind a TLS-terminating proxy every request would arrive from
//! the proxy, so that one caller's mistakes would lock out everyone. On the
//! plain listener, the proxies named in `--trusted-proxy` are believed about
//! the hops they add to `X-Forwarded-For` and about `X-Forwarded-Proto`;
//! nobody else is, so a client cannot pick its own address by sending the
//! header itself. On the HTTPS listener no header is believed: a proxy there
//! passes TLS through, and names the client with the PROXY protocol.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::http::error::ApiError;

/// The networks whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`192.0.2.10`, `2001:db8::1`) and networks (`10.0.0.0/8`).
    pub(crate) fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client: the peer itself unless it is a trusted proxy; then the
    /// nearest hop of `X-Forwarded-For`, walking from the right, that is not
    /// itself a trusted proxy. Hops further left were written by whoever
    /// sent them and prove nothing.
    pub(crate) fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// Whether the client reached us over TLS: this listener's own TLS, or
    /// a trusted proxy's, as its `X-Forwarded-Proto` says.
    fn over_tls(&self, listener_tls: bool, peer: IpAddr, headers: &HeaderMap) -> bool {
        listener_tls
            || (self.trusts(peer)
                && headers
                    .get_all("x-forwarded-proto")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .next_back()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
    }
}

/// A hop as proxies write it: an address, possibly with a port (`[v6]:p`, `v4:p`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(|ip| ip.to_canonical())
}

/// The caller as far as it can be told: its address, and whether its
/// request travelled over TLS all the way to us or to our proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    pub(crate) addr: IpAddr,
    pub tls: bool,
}

/// What the [`identify`] layer of one listener needs.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) proxies: Arc<TrustedProxies>,
    pub tls: bool,
}

/// Puts the [`Client`] into the request, for handlers, limits and the log.
pub(crate) async fn identify(State(listener): State<Listener>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let peer = peer.ip().to_canonical();
        // On the TLS listener the headers are inside TLS, written by the
        // client itself, whoever relayed the bytes: a proxy that passes TLS
        // through names the client in its PROXY header instead, which is
        // already the peer here (`net::proxy`).
        let client = if listener.tls {
            Client { addr: peer, tls: true }
        } else {
            Client {
                addr: listener.proxies.client_of(peer, req.headers()),
                tls: listener.proxies.over_tls(false, peer, req.headers()),
            }
        };
        req.extensions_mut().insert(client);
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Every router is wrapped in `identify`; a route outside it is a bug.
        parts
            .extensions
            .get::<Client>()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("a request reached a handler without the client layer").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        let net = |s: &&str| s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).expect("valid");
        TrustedProxies::new(list.iter().map(net).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.1"), ("x-forwarded-proto", "https")]);
        assert_eq!(p.client_of(ip("192.0.2.9"), &h), ip("192.0.2.9"));
        assert!(!p.over_tls(false, ip("192.0.2.9"), &h));
    }

    #[test]
    fn the_nearest_untrusted_hop_behind_trusted_proxies_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "2001:db8:ffff::1"]);
        // The client forged the first hop; our two proxies added the rest.
        let h = headers(&[("x-forwarded-for", "203.0.113.66, 198.51.100.7"), ("x-forwarded-for", "10.1.2.3")]);
        assert_eq!(p.client_of(ip("10.9.9.9"), &h), ip("198.51.100.7"));
        assert_eq!(p.client_of(ip("::ffff:10.9.9.9"), &h), ip("198.51.100.7"));
        assert_eq!(
            p.client_of(ip("2001:db8:ffff::1"), &headers(&[("x-forwarded-for", "[2001:db8::5]:4711")])),
            ip("2001:db8::5")
        );
        // Nothing forwarded, or garbage: the proxy (or the last good hop) is all we know.
        assert_eq!(p.client_of(ip("10.9.9.9"), &HeaderMap::new()), ip("10.9.9.9"));
        assert_eq!(
            p.client_of(ip("10.9.9.9"), &headers(&[("x-forwarded-for", "198.51.100.7, bogus")])),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn forwarded_proto_counts_only_from_a_trusted_proxy() {
        let p = proxies(&["127.0.0.1"]);
        assert!(p.over_tls(false, ip("127.0.0.1"), &headers(&[("x-forwarded-proto", "https")])));
        assert!(!p.over_tls(false, ip("127.0.0.1"), &headers(&[("x-forwarded-proto", "http")])));
        assert!(!p.over_tls(false, ip("127.0.0.1"), &HeaderMap::new()));
        assert!(p.over_tls(true, ip("192.0.2.1"), &HeaderMap::new()));
    }
}
