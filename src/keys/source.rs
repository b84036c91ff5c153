use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use percent_encoding::percent_decode_str;

use crate::context::{RequestHead, UsageIdentifierKey};

/// Where the API key layer finds a request's key.
#[derive(Clone)]
pub struct KeySource {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Header(HeaderName),
    Query(Arc<str>),
    Authorizer,
    Fn(Arc<dyn Fn(RequestHead<'_>) -> Option<String> + Send + Sync>),
}

/// The header API Gateway reads keys from.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

impl Default for KeySource {
    fn default() -> Self {
        Self::header(API_KEY_HEADER)
    }
}

impl KeySource {
    /// A header (names are case-insensitive). Default: `x-api-key`.
    pub fn header(name: HeaderName) -> Self {
        Self {
            kind: Kind::Header(name),
        }
    }

    /// A query parameter (percent-decoded).
    pub fn query(name: impl Into<Arc<str>>) -> Self {
        Self {
            kind: Kind::Query(name.into()),
        }
    }

    /// The [`UsageIdentifierKey`] an authorizer put in the request extensions.
    pub fn authorizer() -> Self {
        Self {
            kind: Kind::Authorizer,
        }
    }

    /// A closure.
    pub fn from_fn(f: impl Fn(RequestHead<'_>) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            kind: Kind::Fn(Arc::new(f)),
        }
    }

    /// The presented key, borrowed from the request where it can be.
    pub(crate) fn extract<'a>(&self, head: RequestHead<'a>) -> Option<Cow<'a, str>> {
        match &self.kind {
            Kind::Header(name) => head
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(Cow::Borrowed),
            Kind::Query(name) => head.uri.query().and_then(|q| {
                q.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == &**name).then(|| percent_decode_str(v).decode_utf8().ok())
                })
            })?,
            Kind::Authorizer => head
                .extensions
                .get::<UsageIdentifierKey>()
                .map(|k| Cow::Borrowed(k.0.expose())),
            Kind::Fn(f) => f(head).map(Cow::Owned),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Header(h) => write!(f, "KeySource::Header({h})"),
            Kind::Query(q) => write!(f, "KeySource::Query({q})"),
            Kind::Authorizer => f.write_str("KeySource::Authorizer"),
            Kind::Fn(_) => f.write_str("KeySource::Fn"),
        }
    }
}
