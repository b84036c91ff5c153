use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use super::Rate;
use crate::context::Endpoint;
use crate::store::StoreError;

/// Which kind of limit a check is for. It names the limit in the
/// `RateLimit-Policy` header and in the rejection extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitScope {
    /// The gateway-wide bucket (top-level `throttle`).
    Gateway,
    /// One method of one stage (stage `settings.throttle` and overrides).
    Method,
    /// One API key across its plan's stages (plan `throttle`).
    ApiKey,
    /// One API key on one method (plan `methods`).
    ApiKeyMethod,
    /// One client address (`throttle_options.per_client`).
    Client,
    /// A standalone [`ThrottleLayer`](super::ThrottleLayer)'s own key.
    Custom,
}

impl LimitScope {
    /// The name used in headers: `gateway`, `method`, `plan`, `plan-method`, `client`, `default`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Method => "method",
            Self::ApiKey => "plan",
            Self::ApiKeyMethod => "plan-method",
            Self::Client => "client",
            Self::Custom => "default",
        }
    }
}

/// The bucket a check counts against.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RateKey<'a> {
    /// The one gateway-wide bucket.
    Gateway,
    /// One endpoint's bucket.
    Method(&'a Endpoint),
    /// One API key's bucket (the key id, never the key).
    ApiKey(&'a str),
    /// One API key's bucket on one endpoint.
    ApiKeyMethod(&'a str, &'a Endpoint),
    /// One client address's bucket.
    Client(IpAddr),
    /// A key chosen by a standalone layer's extractor.
    Custom(&'a str),
}

impl RateKey<'_> {
    /// The kind of limit.
    pub fn scope(&self) -> LimitScope {
        match self {
            Self::Gateway => LimitScope::Gateway,
            Self::Method(_) => LimitScope::Method,
            Self::ApiKey(_) => LimitScope::ApiKey,
            Self::ApiKeyMethod(..) => LimitScope::ApiKeyMethod,
            Self::Client(_) => LimitScope::Client,
            Self::Custom(_) => LimitScope::Custom,
        }
    }
}

/// A stable textual name, for stores that keep keys by name (Redis):
/// `gateway`, `method:API:prod:GET:/pets`, `key:ID`, `key-method:ID:API:prod:GET:/pets`,
/// `client:IP`, `custom:VALUE`.
impl fmt::Display for RateKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gateway => f.write_str("gateway"),
            Self::Method(e) => write!(
                f,
                "method:{}:{}:{}:{}",
                e.api(),
                e.stage(),
                e.method_name(),
                e.resource()
            ),
            Self::ApiKey(id) => write!(f, "key:{id}"),
            Self::ApiKeyMethod(id, e) => {
                write!(
                    f,
                    "key-method:{id}:{}:{}:{}:{}",
                    e.api(),
                    e.stage(),
                    e.method_name(),
                    e.resource()
                )
            }
            Self::Client(ip) => write!(f, "client:{ip}"),
            Self::Custom(v) => write!(f, "custom:{v}"),
        }
    }
}

/// One limit to check: a bucket and its rate.
#[derive(Debug, Clone, Copy)]
pub struct Limit<'a> {
    /// The bucket.
    pub key: RateKey<'a>,
    /// Its rate and burst.
    pub rate: Rate,
}

/// What a store decided about a set of limits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Admission {
    /// Whether every limit admitted the request. When one rejects, none of
    /// the others is charged.
    pub admitted: bool,
    /// Index (in the checked slice) of the limit that speaks for the
    /// response: the one that rejected, or else the one with the fewest
    /// tokens left (ties: the longest reset).
    pub binding: usize,
    /// Tokens left in the binding bucket after this request.
    pub remaining: u32,
    /// Time until the binding bucket is full again.
    pub reset: Duration,
    /// On rejection: time until the rejecting bucket has a token.
    pub retry_after: Option<Duration>,
}

impl Admission {
    /// An admission that no limit constrains.
    pub(crate) fn unlimited() -> Self {
        Self {
            admitted: true,
            binding: 0,
            remaining: u32::MAX,
            reset: Duration::ZERO,
            retry_after: None,
        }
    }

    /// An outcome with every field given.
    pub fn new(
        admitted: bool,
        binding: usize,
        remaining: u32,
        reset: Duration,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            admitted,
            binding,
            remaining,
            reset,
            retry_after,
        }
    }
}

/// Keeps token buckets: an atomic check-and-update of several limits at once.
///
/// Implementations must admit a request only if every limit admits it, and
/// must not charge any bucket when one rejects. The in-memory store is
/// [`InMemoryRateStore`](super::InMemoryRateStore); the `redis` feature adds
/// one that many processes share.
#[async_trait]
pub trait RateStore: Send + Sync + fmt::Debug + 'static {
    /// Checks and, if all admit, charges every limit.
    async fn check(&self, limits: &[Limit<'_>]) -> Result<Admission, StoreError>;

    /// The same check without waiting, for stores that never wait (in
    /// memory). `None` (the default) sends the layer to [`check`](Self::check).
    fn check_now(&self, limits: &[Limit<'_>]) -> Option<Result<Admission, StoreError>> {
        let _ = limits;
        None
    }
}
