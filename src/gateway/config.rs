//! The configuration model, as read from YAML or JSON.
//!
//! Field names and shapes follow DESIGN.md; the README's "Configuration
//! reference" lists every field with its default and bounds. Everything here is
//! plain data: [`Config::from_yaml_str`] and friends parse *and* validate, and
//! the [`Gateway`](crate::Gateway) resolves it into per-route tables.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::response::ResponseOverride;
use crate::store::FailMode;

/// A whole gateway configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Config {
    /// The API's name, used in metrics and logs. Default `tollgate`.
    #[serde(default)]
    pub name: Option<String>,
    /// The gateway-wide limit: one bucket shared by every request (API
    /// Gateway's account-level throttle). Absent: no gateway-wide limit.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Resource path templates and the methods each accepts.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Stages by name; requests are addressed as `/{stage}/{resource}`.
    #[serde(default)]
    pub stages: BTreeMap<String, StageConfig>,
    /// Usage plans by name.
    #[serde(default)]
    pub plans: BTreeMap<String, PlanConfig>,
    /// API keys loaded into the in-memory key store.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// SigV4 credentials loaded into the in-memory credential store.
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
    /// SigV4 verification settings; required when a method uses `authorization: sigv4`.
    #[serde(default)]
    pub sigv4: Option<SigV4Config>,
    /// Gateway response overrides by kind (`RESOURCE_NOT_FOUND`, `DEFAULT_4XX`, ...).
    #[serde(default)]
    pub responses: BTreeMap<String, ResponseOverride>,
    /// How the throttle layer behaves (headers, store failures, per-client limit).
    #[serde(default)]
    pub throttle_options: ThrottleOptions,
    /// Where API keys are read from and how they are hashed.
    #[serde(default)]
    pub api_key_options: ApiKeyOptions,
    /// Custom authorizers by name; implementations are registered with
    /// `GatewayBuilder::authorizer`.
    #[serde(default)]
    pub authorizers: BTreeMap<String, AuthorizerConfig>,
    /// Bounds on mapping templates.
    #[serde(default)]
    pub mapping_limits: MappingLimitsConfig,
    /// Bounds on what one client may hold: how long a body read whole may take.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Bounds on what one client may make the gateway hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Milliseconds a request body that the gateway reads whole (to hash it
    /// for SigV4, or to render a mapping template) may take to arrive,
    /// `1 ..= 600000`; past it the request gets 408 `REQUEST_TIMEOUT`.
    /// Default 10000. Bodies that stream through unread are not timed.
    #[serde(default)]
    pub body_timeout_ms: Option<u64>,
}

/// A custom authorizer: where its identity comes from and how long its
/// verdicts are cached.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AuthorizerConfig {
    /// `header.NAME`, `querystring.NAME` or `stageVariables.NAME`; every one
    /// must be present, or the request gets 401 without a call.
    pub identity_sources: Vec<String>,
    /// Seconds a verdict is cached per identity, `0 ..= 3600`; 0 turns
    /// caching off. Default 300.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// What an authorizer error does. Default `closed` (503).
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
}

/// Where the API key layer reads keys, and how it hashes them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ApiKeyOptions {
    /// `header` (default) or `authorizer` (the key an authorizer returns, API
    /// Gateway's `usageIdentifierKey`).
    #[serde(default)]
    pub source: Option<ApiKeySource>,
    /// The header carrying the key. Default `x-api-key`.
    #[serde(default)]
    pub header: Option<String>,
    /// A query parameter to read the key from instead of the header.
    #[serde(default)]
    pub query: Option<String>,
    /// A secret pepper: keys are hashed with HMAC-SHA-256 under it (and
    /// `value_sha256` must then hold that HMAC).
    #[serde(default)]
    pub pepper: Option<Secret>,
    /// What a key store failure does. Default `closed` (503).
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
}

/// Where API keys come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ApiKeySource {
    /// A header (or a query parameter when `query` is set).
    #[default]
    Header,
    /// The key an authorizer found.
    Authorizer,
}

/// Options of the throttle layer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ThrottleOptions {
    /// Whether admitted responses carry `RateLimit-Policy` and `RateLimit`
    /// (429s always do). Default true.
    #[serde(default)]
    pub headers: Option<bool>,
    /// What to do when the rate store fails. Default `open`.
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
    /// Most buckets the in-memory store tracks, at least 1. Default 1,000,000.
    #[serde(default)]
    pub max_tracked_keys: Option<usize>,
    /// What a request with a new key (client address, API key) gets when
    /// the in-memory store already tracks `max_tracked_keys`: `reject`
    /// (default: 429 `THROTTLED`, `Retry-After: 1`) or `admit` (untracked).
    /// Either way it is counted (`InMemoryRateStore::untracked`).
    #[serde(default)]
    pub on_capacity: Option<crate::throttle::OnCapacity>,
    /// One bucket per client IP, across the gateway. Both fields required.
    #[serde(default)]
    pub per_client: Option<ThrottleConfig>,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// A token-bucket limit: a steady `rate` in requests per second and a `burst`.
///
/// In a method override either field may be left out to keep the stage's
/// value; everywhere else both are required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Requests per second, `0 ..= 1e9`, fractions allowed (`0.5` is one request every two seconds).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Bucket size: how many requests may arrive at once.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// Response cache settings of a stage or method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Whether responses are cached. Default false.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Seconds an entry lives, `0 ..= 3600`; 0 turns caching off. Default 300.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// Request parameters that make up the cache key besides stage, method,
    /// resource and path: `querystring.NAME`, `header.NAME`, `path.NAME`.
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// Adds the caller's identity (API key id or principal) to the cache key.
    #[serde(default)]
    pub per_key: Option<bool>,
    /// Statuses stored, each `100 ..= 599`. Default: every 2xx.
    #[serde(default)]
    pub statuses: Option<Vec<u16>>,
    /// Whether an upstream `Cache-Control: max-age` (or `s-maxage`) below the
    /// TTL shortens the entry. Default true.
    #[serde(default)]
    pub honor_max_age: Option<bool>,
    /// Seconds past expiry, `0 ..= 3600`, during which an expired entry
    /// answers instead of a failing backend (an error or a 5xx), marked
    /// `x-cache: Stale`. Default 0 (off).
    #[serde(default)]
    pub stale_if_error: Option<u32>,
    /// Whether a client's `Cache-Control: max-age=0` refreshes the entry only
    /// when the caller may invalidate (an API key or SigV4 credential with
    /// `can_invalidate_cache`). Default true, as API Gateway's.
    #[serde(default)]
    pub require_authorization: Option<bool>,
    /// What an unauthorized `Cache-Control: max-age=0` gets. Default
    /// `SUCCEED_WITH_RESPONSE_HEADER`, as API Gateway's.
    #[serde(default)]
    pub unauthorized: Option<UnauthorizedStrategy>,
    /// Whether responses carry `x-cache` and, when served from the cache,
    /// `Age`. Default true.
    #[serde(default)]
    pub headers: Option<bool>,
}

use crate::cache::UnauthorizedStrategy;

/// How callers of a method are authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Authorization {
    /// Anyone may call (an API key may still be required).
    #[default]
    None,
    /// The request must carry a valid AWS Signature Version 4.
    Sigv4,
    /// A custom authorizer decides.
    Authorizer,
}

/// Settings of a method: the stage's `settings` (every method's default) or a
/// `RESOURCE/METHOD` override, which replaces only the fields it names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MethodSettingsConfig {
    /// This method's own bucket (each method of a stage gets one).
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Response caching.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Whether callers must present an API key. Default false.
    #[serde(default)]
    pub api_key_required: Option<bool>,
    /// How callers are authorized. Default `none`.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// The custom authorizer, with `authorization: authorizer`.
    #[serde(default)]
    pub authorizer: Option<String>,
    /// Where requests go. Default: the inner service.
    #[serde(default)]
    pub integration: Option<IntegrationConfig>,
    /// Parameter mappings, body templates and integration responses.
    #[serde(default)]
    pub mapping: Option<MappingConfig>,
}

use crate::mapping::MappingConfig;

/// Where a method's requests go.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntegrationConfig {
    /// The inner service given to `Gateway::service` (the default).
    #[default]
    Service,
    /// An upstream HTTP server.
    Http {
        /// A URL template: `http://{stageVariables.host}/pets/{petId}`;
        /// the request's query is appended. Give this or `base`.
        #[serde(default)]
        url: Option<String>,
        /// A base URL the request path (after the stage) and query are
        /// appended to. Give this or `url`.
        #[serde(default)]
        base: Option<String>,
        /// Milliseconds to wait for the response head, `50 ..= 300000`. Default 29000.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// A fixed answer.
    Mock {
        /// The status. Default 200.
        #[serde(default)]
        status: Option<u16>,
        /// Response headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The body. Default empty.
        #[serde(default)]
        body: String,
    },
}

/// Bounds on mapping templates, for every method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MappingLimitsConfig {
    /// The largest body a template reads. Default 10 MiB.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// The largest output a template writes. Default 10 MiB.
    #[serde(default)]
    pub max_output: Option<ByteSize>,
    /// Instructions one render may run. Default 1,000,000.
    #[serde(default)]
    pub fuel: Option<u64>,
}

/// One stage: `/{stage}/...`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct StageConfig {
    /// Stage variables, available to mappings and the inner service.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Defaults for every method of the stage (API Gateway's `*/*`).
    #[serde(default)]
    pub settings: MethodSettingsConfig,
    /// Size of the stage's response cache. Default 64 MiB.
    #[serde(default)]
    pub cache_capacity: Option<ByteSize>,
    /// Overrides keyed `RESOURCE/METHOD` (`/pets/GET`), `RESOURCE/*` or `*/*`.
    #[serde(default)]
    pub methods: BTreeMap<String, MethodSettingsConfig>,
}

/// A usage plan: which stages its keys may call, how fast and how much.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PlanConfig {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Stages the plan's keys may call.
    #[serde(default)]
    pub stages: Vec<String>,
    /// One bucket per key across the plan's stages.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Requests per key per period.
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
    /// Per-method throttles inside the plan, keyed `RESOURCE/METHOD`.
    #[serde(default)]
    pub methods: BTreeMap<String, PlanMethodConfig>,
}

/// A plan's settings for one method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PlanMethodConfig {
    /// One bucket per key for this method.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
}

impl ThrottleConfig {
    /// A complete limit.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: Some(rate),
            burst: Some(burst),
        }
    }
}

impl QuotaConfig {
    /// `limit` requests per `period`, no offset.
    pub fn new(limit: u64, period: Period) -> Self {
        Self {
            limit,
            period,
            offset: 0,
        }
    }
}

/// A quota: at most `limit` requests per key per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Requests per period, at least 1.
    pub limit: u64,
    /// The calendar period (UTC).
    pub period: Period,
    /// Requests subtracted from the limit in the first period, below `limit`. Default 0.
    #[serde(default)]
    pub offset: u64,
}

/// A quota period, calendar-aligned in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Period {
    /// A calendar minute.
    Minute,
    /// A calendar hour.
    Hour,
    /// A UTC day.
    Day,
    /// A week starting Monday 00:00 UTC.
    Week,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
    /// Never resets.
    Eternity,
}

/// An API key loaded from the config. Its value is hashed at load and never kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct KeyConfig {
    /// A unique name.
    pub name: String,
    /// The key itself, 20 to 128 printable ASCII characters. Give this or `value_sha256`.
    #[serde(default)]
    pub value: Option<Secret>,
    /// The SHA-256 of the key, 64 hex digits, for configs that must not hold keys.
    #[serde(default)]
    pub value_sha256: Option<String>,
    /// Plans the key belongs to (at most one per stage).
    #[serde(default)]
    pub plans: Vec<String>,
    /// Disabled keys are rejected. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// RFC 3339 time after which the key is rejected.
    #[serde(default)]
    pub expires: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether requests with this key may invalidate a cache entry with
    /// `Cache-Control: max-age=0`. Default false.
    #[serde(default)]
    pub can_invalidate_cache: bool,
}

fn yes() -> bool {
    true
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            value: None,
            value_sha256: None,
            plans: Vec::new(),
            enabled: true,
            description: None,
            expires: None,
            tags: BTreeMap::new(),
            can_invalidate_cache: false,
        }
    }
}

/// SigV4 credentials loaded from the config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CredentialConfig {
    /// The access key id, 1 to 128 upper-case letters and digits (`AKIDEXAMPLE`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// Who the caller is, for logs, usage and cache keys. Default: the access key id.
    #[serde(default)]
    pub principal: Option<String>,
    /// Whether requests signed with these credentials may invalidate a cache
    /// entry with `Cache-Control: max-age=0`. Default false.
    #[serde(default)]
    pub can_invalidate_cache: bool,
}

/// SigV4 verification settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SigV4Config {
    /// The region in the credential scope (`us-east-1`).
    pub region: String,
    /// The service in the credential scope. Default `execute-api`.
    #[serde(default = "execute_api")]
    pub service: String,
    /// Allowed clock skew in seconds, `1 ..= 3600`. Default 300.
    #[serde(default = "five_minutes")]
    pub max_skew: u64,
    /// Whether `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted. Default false.
    #[serde(default)]
    pub unsigned_payload: bool,
    /// Largest body hashed for verification. Default 10 MiB.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Answer a signature mismatch with the canonical request and string to
    /// sign, as AWS does. Default false.
    #[serde(default)]
    pub explain_signature_errors: bool,
}

fn execute_api() -> String {
    "execute-api".to_owned()
}

fn five_minutes() -> u64 {
    300
}

/// A secret string (an API key, a secret access key): never shown by `Debug`
/// or `Display`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself. Call sites are easy to audit with a search.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// A size in bytes: an integer, or a string with a unit (`64MiB`, `512 KB`, `1GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `N`, `N B`, `N KB|MB|GB` (powers of 1000) or `N KiB|MiB|GiB` (powers of 1024).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, such as 1048576 or \"64MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                // The value is not quoted: error messages never echo the document.
                ByteSize::parse(v).ok_or_else(|| {
                    E::custom("not a size (use a number with B, KB, MB, GB, KiB, MiB or GiB)")
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("64MiB"), Some(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("512 KB"), Some(ByteSize(512_000)));
        assert_eq!(ByteSize::parse("10"), Some(ByteSize(10)));
        assert_eq!(ByteSize::parse("1 TiB"), None);
        assert_eq!(ByteSize::parse("MiB"), None);
        assert_eq!(ByteSize::parse("99999999999999999999GiB"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let k = KeyConfig {
            name: "demo".into(),
            value: Some(Secret::new("super-secret-value-123")),
            ..KeyConfig::default()
        };
        let shown = format!("{k:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("demo"));
    }
}
