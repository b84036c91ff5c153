//! Where a request's API key is read from.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use percent_encoding::percent_decode_str;

use crate::context::{RequestHead, UsageIdentifierKey};

/// Where the API key layer finds a request's key.
///
/// API Gateway offers two sources (its `apiKeySource`): `HEADER`, the
/// `X-API-Key` header, and `AUTHORIZER`, a key a Lambda authorizer returns
/// as `usageIdentifierKey`. tollgate has both
/// ([`header`](Self::header), the default, and
/// [`authorizer`](Self::authorizer)) and, for APIs moved from elsewhere, any
/// header, a query parameter or a closure. Finding no key is answered like
/// a wrong key: 403 `INVALID_API_KEY`.
///
/// Cloning is cheap (names and the closure are reference-counted).
///
/// ```
/// use http::{Request, StatusCode};
/// use tollgate::Body;
/// use tollgate::clock::SystemClock;
/// use tollgate::keys::{ApiKeyLayer, KeyHasher, KeyManager, KeySource, NewKey};
/// use tollgate::secret::Secret;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (layer, store) = ApiKeyLayer::in_memory();
/// let keys = KeyManager::new(store, KeyHasher::sha256(), SystemClock);
/// keys.import(NewKey::named("alice").value(Secret::new("alice/key+0123456789"))).await?;
///
/// let svc = layer
///     .source(KeySource::query("api_key"))
///     .layer(service_fn(|_req: Request<Body>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
///     }));
/// // Percent-decoded: `%2F` is `/` and `%2B` is `+`.
/// let req = Request::get("/pets?type=dog&api_key=alice%2Fkey%2B0123456789").body(Body::empty())?;
/// assert_eq!(svc.oneshot(req).await?.status(), StatusCode::OK);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeySource {
    kind: Kind,
}

/// The sources, private so that more can be added.
#[derive(Clone)]
enum Kind {
    /// The first value of this header.
    Header(HeaderName),
    /// The first query parameter of this name (the name as written in the
    /// URI, not decoded).
    Query(Arc<str>),
    /// [`UsageIdentifierKey`] in the request extensions.
    Authorizer,
    /// A closure over the request head.
    Fn(Arc<dyn Fn(RequestHead<'_>) -> Option<String> + Send + Sync>),
}

/// The header API Gateway reads keys from (`X-API-Key`; header names are
/// case-insensitive, and [`HeaderName`]s are lower case).
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

impl Default for KeySource {
    fn default() -> Self {
        Self::header(API_KEY_HEADER)
    }
}

impl KeySource {
    /// A header (names are case-insensitive). Default: `x-api-key`. Only the
    /// first value counts; a value with bytes that are not visible ASCII
    /// counts as no key.
    pub fn header(name: HeaderName) -> Self {
        Self {
            kind: Kind::Header(name),
        }
    }

    /// A query parameter (percent-decoded).
    ///
    /// The first parameter with this name decides, even if later ones
    /// differ; a name alone (`?api_key`) presents an empty key. Only `%XX`
    /// escapes are decoded: a `+` stays a `+` (this is not form decoding),
    /// and a value that does not decode to UTF-8 counts as no key. Keys in
    /// URLs end up in access logs and browser histories: prefer a header
    /// where clients allow it.
    pub fn query(name: impl Into<Arc<str>>) -> Self {
        Self {
            kind: Kind::Query(name.into()),
        }
    }

    /// The [`UsageIdentifierKey`] an authorizer put in the request extensions
    /// (API Gateway's `AUTHORIZER` source). The authorizer layer must run
    /// before the key layer, as in a [`Gateway`](crate::Gateway).
    pub fn authorizer() -> Self {
        Self {
            kind: Kind::Authorizer,
        }
    }

    /// A closure over the request head; `None` is no key. Its `String`
    /// costs an allocation per request, where the other sources borrow.
    pub fn from_fn(f: impl Fn(RequestHead<'_>) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            kind: Kind::Fn(Arc::new(f)),
        }
    }

    /// The presented key, borrowed from the request where it can be. No
    /// validation: a value that is not a key simply finds no record.
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
