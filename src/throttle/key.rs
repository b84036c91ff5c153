//! Choosing a standalone throttle's bucket: [`KeyExtractor`].
//!
//! Behind a gateway the buckets follow the configuration (per method, per
//! key, per client, ...) and no extractor is used. Alone, a
//! [`ThrottleLayer`](super::ThrottleLayer) has one rate, and the extractor
//! decides what shares a bucket: every request, each value of a header,
//! each client IP, or whatever a closure returns.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;

use crate::context::RequestHead;

use super::client::{ClientAddr, client_ip};

/// How a standalone [`ThrottleLayer`](super::ThrottleLayer) picks a request's bucket.
///
/// Requests for which the extractor finds no key (a missing header, no
/// [`ClientAddr`]) share one bucket.
#[derive(Clone)]
pub struct KeyExtractor {
    kind: Kind,
}

/// The extractor's strategy; private so strategies can be added freely.
#[derive(Clone)]
enum Kind {
    /// No key: one bucket.
    Global,
    /// The header's first value, bytes that are not UTF-8 replaced.
    Header(HeaderName),
    /// The client IP, with these trusted proxies.
    ClientIp(Arc<[ipnet::IpNet]>),
    /// A closure; `Arc` so the extractor stays cheap to clone.
    Fn(Arc<dyn Fn(RequestHead<'_>) -> Option<String> + Send + Sync>),
}

impl KeyExtractor {
    /// One bucket for every request.
    pub fn global() -> Self {
        Self { kind: Kind::Global }
    }

    /// One bucket per value of a header.
    pub fn header(name: HeaderName) -> Self {
        Self {
            kind: Kind::Header(name),
        }
    }

    /// One bucket per client IP, from the request's [`ClientAddr`]; when the
    /// peer is in `trusted_proxies`, from `X-Forwarded-For`.
    pub fn client_ip(trusted_proxies: impl IntoIterator<Item = ipnet::IpNet>) -> Self {
        Self {
            kind: Kind::ClientIp(trusted_proxies.into_iter().collect()),
        }
    }

    /// One bucket per value the closure returns.
    pub fn from_fn(f: impl Fn(RequestHead<'_>) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            kind: Kind::Fn(Arc::new(f)),
        }
    }

    /// The bucket name for a request (empty: the shared bucket).
    pub(crate) fn extract(&self, head: RequestHead<'_>) -> Option<String> {
        match &self.kind {
            Kind::Global => None,
            Kind::Header(name) => head
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            Kind::ClientIp(trusted) => {
                let peer = head.extensions.get::<ClientAddr>().map(|a| a.0.ip());
                client_ip(peer, head.headers, trusted).map(|ip| ip.to_string())
            }
            Kind::Fn(f) => f(head),
        }
    }
}

impl fmt::Debug for KeyExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Global => f.write_str("KeyExtractor::Global"),
            Kind::Header(h) => write!(f, "KeyExtractor::Header({h})"),
            Kind::ClientIp(t) => write!(f, "KeyExtractor::ClientIp({} trusted)", t.len()),
            Kind::Fn(_) => f.write_str("KeyExtractor::Fn"),
        }
    }
}
