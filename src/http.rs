//! HTTP plumbing every API adapter shares: the request id, the cause a failed
//! response carries to the request log, `Retry-After`, the query string, the
//! client's address, and the one "dependency down → 503, our fault → 500"
//! split. A leaf: it imports no service (only `tls` for the peer address).

use std::convert::Infallible;
use std::fmt;
use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;

use crate::tls::Peer;

/// The header a request id arrives in and is returned in.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The request's id, as a request extension for handlers that report it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Rides on a response whose handler parsed its route, so the request log
/// labels it without parsing the path again.
#[derive(Debug, Clone, Copy)]
pub struct RouteKind(pub &'static str);

/// Seconds a client is told to wait (`Retry-After`) while a dependency (the
/// database, the blob store) does not answer; every API uses it.
pub const RETRY_AFTER_SECONDS: &str = "5";

/// Rides on a failed response so the request log can record the cause once;
/// the client never sees it.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// A failure that is not the client's, split the one way every API answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A dependency (database, blob store, container engine) does not answer
    /// now: 503 with `Retry-After`, which clients retry on their own.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours: 500.
    #[error("{0}")]
    Internal(String),
}

impl Fault {
    /// The split: `unavailable` is the failing dependency's own verdict
    /// (`is_unavailable()` of its error); `cause` is logged, never sent.
    pub fn classify(unavailable: bool, cause: impl fmt::Display) -> Fault {
        if unavailable {
            Fault::Unavailable(cause.to_string())
        } else {
            Fault::Internal(cause.to_string())
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Fault::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Fault::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: never the cause. (The OCI API says
    /// "storage temporarily unavailable", as its clients have always seen.)
    pub fn public_message(&self) -> &'static str {
        match self {
            Fault::Unavailable(_) => "temporarily unavailable; retry later",
            Fault::Internal(_) => "internal server error",
        }
    }

    pub fn cause(&self) -> &str {
        match self {
            Fault::Unavailable(cause) | Fault::Internal(cause) => cause,
        }
    }

    /// Marks a response built for this fault: `Retry-After` on a 503, and the
    /// cause for the request log.
    pub fn mark(self, response: &mut Response) {
        if let Fault::Unavailable(_) = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        let (Fault::Unavailable(cause) | Fault::Internal(cause)) = self;
        response.extensions_mut().insert(InternalCause(cause));
    }
}

/// Decoded query parameters, in order; repeated keys (such as `tag` or
/// `scope`) are kept. Extracting it never fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a query string (`a=1&b=2`, without the `?`).
    pub fn parse(query: &str) -> Self {
        Query(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn from_uri(uri: &Uri) -> Self {
        Query::parse(uri.query().unwrap_or(""))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Query::from_uri(&parts.uri))
    }
}

/// The TCP peer of a request (loopback when the server was not given connect
/// info, as in tests).
pub struct PeerAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|c| c.0.0.ip().to_canonical());
        Ok(PeerAddr(peer.unwrap_or(IpAddr::from([127, 0, 0, 1]))))
    }
}

/// Reverse proxies whose `X-Forwarded-*` headers are believed: addresses, or
/// networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let bad = || format!("{entry:?} is not an IP address or CIDR network");
                let (ip, bits) = match entry.split_once('/') {
                    Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| bad())?)),
                    None => (entry.as_str(), None),
                };
                let ip: IpAddr = ip.trim().parse().map_err(|_| bad())?;
                let ip = ip.to_canonical();
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = bits.unwrap_or(max);
                if bits > max {
                    return Err(bad());
                }
                Ok((ip, bits))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// The client's address: the peer, or behind trusted proxies the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy. Each
    /// proxy appends the address it was reached from, so everything left of
    /// that entry was written by the client and proves nothing.
    pub fn client(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.into_iter().rev() {
            // A hop we cannot read ends the chain: the last trusted address stands.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_right_most_hop_no_trusted_proxy_wrote() {
        let proxies =
            TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into(), "fd00::/8".into()])
                .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("127.0.0.1");
        let cases: &[(&[&str], IpAddr, &str)] = &[
            (&["203.0.113.9"], proxy, "203.0.113.9"),
            // The client wrote the first entry; nginx appended the real address.
            (&["198.51.100.7, 203.0.113.9"], proxy, "203.0.113.9"),
            // Two proxies: the inner one appended the outer one's address.
            (
                &["198.51.100.7, 203.0.113.9, 10.1.2.3"],
                proxy,
                "203.0.113.9",
            ),
            (&["198.51.100.7", "203.0.113.9"], proxy, "203.0.113.9"),
            (&["fd00::5, 2001:db8::1"], proxy, "2001:db8::1"),
            // Garbage appended after a real address: the proxy that forwarded it stands.
            (&["203.0.113.9, nonsense"], proxy, "127.0.0.1"),
            (&[], proxy, "127.0.0.1"),
            // Only proxies in the chain: the left-most one.
            (&["10.0.0.1, 10.0.0.2"], proxy, "10.0.0.1"),
            // An untrusted peer's header is ignored.
            (&["198.51.100.7"], ip("192.0.2.1"), "192.0.2.1"),
            // An IPv4 peer seen on an IPv6 socket is still that IPv4 address.
            (&["198.51.100.7"], ip("::ffff:127.0.0.1"), "198.51.100.7"),
        ];
        for (values, peer, want) in cases {
            assert_eq!(
                proxies.client(&forwarded(values), *peer),
                ip(want),
                "{values:?} from {peer}"
            );
        }
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
        assert!(
            TrustedProxies::parse(&["0.0.0.0/0".into()])
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
    }

    #[test]
    fn queries_keep_order_and_repeats() {
        let q = Query::parse("tag=a&n=2&tag=b%2Fc&empty=");
        assert_eq!(q.get("n"), Some("2"));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["a", "b/c"]);
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn faults_split_on_the_dependency_verdict() {
        assert_eq!(
            Fault::classify(true, "db down").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let fault = Fault::classify(false, "bug");
        assert_eq!(fault.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(fault.cause(), "bug");
    }
}
