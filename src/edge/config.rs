//! The front door's slice of the method settings: `policy` and `cors`,
//! their checks (reported with paths) and how each resolves into what the
//! gateway reads ([`ResourcePolicy`], [`Cors`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{ORIGIN, VARY};
use http::{HeaderName, HeaderValue, Method, Request, Response};
use ipnet::IpNet;
use serde::Deserialize;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use super::cors::Cors;
use super::policy::ResourcePolicy;
use crate::body::Body;
use crate::config::{Issues, PathBuf};

/// A method's `policy` setting: who may call it, by source address.
///
/// ```yaml
/// policy:
///   allow: ["203.0.113.0/24", "2001:db8::/32"]   # empty or absent: anyone
///   deny: ["203.0.113.7"]                       # deny wins
/// ```
///
/// Each entry is a CIDR block or a single address (IPv4 or IPv6). The
/// client is the connection's peer ([`ClientAddr`](crate::throttle::ClientAddr)),
/// or, when the peer is one of `throttle_options.trusted_proxies`, the
/// address it forwarded for (`X-Forwarded-For`, walked as the throttle
/// does). See [`ResourcePolicy`] for how it is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Addresses allowed to call; empty: anyone not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses refused, whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl crate::config::Overlay for PolicyConfig {}

/// `s` as a block: `203.0.113.0/24`, or one address (`/32`, `/128`). An
/// IPv4-mapped IPv6 block (`::ffff:203.0.113.0/120`) is its IPv4 block
/// (`203.0.113.0/24`): clients are compared in that form too (found by the
/// hostile review: such an entry never matched).
fn block(s: &str) -> Option<IpNet> {
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))?;
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok()?,
            None => net,
        },
        _ => net,
    })
}

impl PolicyConfig {
    /// Reports each entry that is not an address or CIDR block.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) {
        for (field, list) in [("allow", &self.allow), ("deny", &self.deny)] {
            for (i, entry) in list.iter().enumerate() {
                if block(entry).is_none() {
                    issues.push(
                        &path.field(field).index(i),
                        format!("`{entry}` is not an IP address or CIDR block"),
                    );
                }
            }
        }
    }

    /// The policy a checked config describes (entries that do not parse,
    /// refused at validation, are left out).
    pub(crate) fn resolve(&self) -> ResourcePolicy {
        let list = |l: &[String]| {
            l.iter()
                .filter_map(|s| block(s))
                .map(|n| n.trunc())
                .collect()
        };
        ResourcePolicy {
            allow: list(&self.allow),
            deny: list(&self.deny),
        }
    }
}

/// The longest `max_age` taken: a day (browsers cap it lower still).
const MAX_AGE_LIMIT: u64 = 86_400;

/// A method's `cors` setting: which browser origins may call it.
///
/// ```yaml
/// cors:
///   allow_origins: ["https://app.example.test"]   # or ["*"]; [] turns CORS off
///   allow_methods: [GET, POST]       # default: the resource's declared methods
///   allow_headers: [content-type, x-api-key, authorization, x-amz-date, x-amz-security-token]
///   expose_headers: []
///   allow_credentials: false
///   max_age: 600                     # seconds, 0 to 86400; absent: not sent
/// ```
///
/// What the gateway does with it is [`Cors`]'s docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsConfig {
    /// Origins allowed (`scheme://host[:port]`, compared exactly), or
    /// `["*"]` for any. Empty: no CORS for this method (how a method turns
    /// off what its stage or API sets).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for; default the resource's declared
    /// methods (`ANY`: every method).
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for (`["*"]` for any); default
    /// the ones API Gateway's "Enable CORS" allows: `content-type`,
    /// `x-amz-date`, `authorization`, `x-api-key`, `x-amz-security-token`.
    #[serde(default)]
    pub allow_headers: Option<Vec<String>>,
    /// Response headers the browser may read besides the safe ones.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`; not with any `*`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may keep a preflight's answer.
    #[serde(default)]
    pub max_age: Option<u64>,
}

impl crate::config::Overlay for CorsConfig {}

/// Whether `o` is an origin as a browser serializes it (RFC 6454): `http`
/// or `https`, a lower-case host, a port only when it is not the scheme's
/// default, and nothing after (no path, not even `/`, no query). Anything
/// else could never equal a browser's `Origin` (found by the new-user
/// trial: `https://a.test/x` and `HTTPS://B.TEST` were taken).
fn is_origin(o: &str) -> bool {
    let Ok(uri) = o.parse::<http::Uri>() else {
        return false;
    };
    let scheme = uri.scheme_str();
    let default_port = match scheme {
        Some("http") => 80,
        Some("https") => 443,
        _ => return false,
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    let port_ok = match authority.port() {
        None => true,
        Some(p) => p.as_u16() != default_port,
    };
    // `http::Uri` reads `https://a.test` with the path `/`: what was
    // written must be exactly scheme, `://` and authority.
    o == format!("{}://{}", scheme.unwrap_or_default(), authority.as_str())
        && o == o.to_ascii_lowercase()
        && !authority.as_str().contains('@')
        && port_ok
        && HeaderValue::from_str(o).is_ok()
}

/// API Gateway's "Enable CORS" default for `Access-Control-Allow-Headers`.
const DEFAULT_HEADERS: [&str; 5] = [
    "content-type",
    "x-amz-date",
    "authorization",
    "x-api-key",
    "x-amz-security-token",
];

impl CorsConfig {
    /// Whether an origin or header list is `*` (which credentials forbid).
    fn has_wildcard(&self) -> bool {
        self.allow_origins.iter().any(|o| o == "*")
            || self.allow_headers.iter().flatten().any(|h| h == "*")
            || self.expose_headers.iter().any(|h| h == "*")
    }

    /// Reports what tower-http's layer would refuse or a browser could not
    /// use: no origin, an origin or header that is not a header value, a
    /// method that is not one, a `*` with credentials, a `max_age` over a
    /// day.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) {
        for (i, o) in self.allow_origins.iter().enumerate() {
            let valid = o == "*" || is_origin(o);
            if !valid {
                issues.push(
                    &path.field("allow_origins").index(i),
                    format!(
                        "`{o}` is not an origin (http or https://host[:port] in lower case, no default port, no path) or \"*\""
                    ),
                );
            }
        }
        for (i, m) in self.allow_methods.iter().flatten().enumerate() {
            if Method::from_bytes(m.as_bytes()).is_err() {
                issues.push(
                    &path.field("allow_methods").index(i),
                    format!("`{m}` is not a method"),
                );
            }
        }
        for (field, list) in [
            (
                "allow_headers",
                self.allow_headers.as_deref().unwrap_or(&[]),
            ),
            ("expose_headers", &self.expose_headers[..]),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h != "*" && HeaderName::from_bytes(h.as_bytes()).is_err() {
                    issues.push(
                        &path.field(field).index(i),
                        format!("`{h}` is not a header name"),
                    );
                }
            }
        }
        let wildcard = self.has_wildcard();
        if self.allow_credentials && wildcard {
            issues.push(
                &path.field("allow_credentials"),
                "cannot be true with a \"*\" origin or header (browsers refuse it)",
            );
        }
        if let Some(age) = self.max_age
            && age > MAX_AGE_LIMIT
        {
            issues.push(
                &path.field("max_age"),
                format!("must be 0 to {MAX_AGE_LIMIT} seconds (got {age})"),
            );
        }
    }

    /// The checked setting of a method of a resource that declares
    /// `methods` (`None` in it: `ANY`); `None` with no origin (CORS off).
    pub(crate) fn resolve(&self, methods: &[Option<Method>]) -> Option<Cors> {
        let wildcard = self.has_wildcard();
        // Empty: CORS off. With credentials and a `*` the config check has
        // refused it already (and tower-http's layer would panic).
        if self.allow_origins.is_empty() || (self.allow_credentials && wildcard) {
            return None;
        }
        let headers = |list: &[String]| -> Vec<HeaderName> {
            list.iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect()
        };
        let any_origin = self.allow_origins.iter().any(|o| o == "*");
        let origins: Vec<HeaderValue> = self
            .allow_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let mut layer = CorsLayer::new()
            .allow_origin(if any_origin {
                AllowOrigin::any()
            } else {
                AllowOrigin::list(origins.clone())
            })
            .allow_credentials(self.allow_credentials);
        layer = match &self.allow_methods {
            Some(list) => layer.allow_methods(AllowMethods::list(
                list.iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok()),
            )),
            None if methods.iter().any(Option::is_none) => {
                layer.allow_methods(AllowMethods::mirror_request())
            }
            None => layer.allow_methods(AllowMethods::list(methods.iter().flatten().cloned())),
        };
        layer = match &self.allow_headers {
            Some(list) if list.iter().any(|h| h == "*") => layer.allow_headers(AllowHeaders::any()),
            Some(list) => layer.allow_headers(AllowHeaders::list(headers(list))),
            None => layer.allow_headers(AllowHeaders::list(
                DEFAULT_HEADERS.map(HeaderName::from_static),
            )),
        };
        layer = if self.expose_headers.iter().any(|h| h == "*") {
            layer.expose_headers(ExposeHeaders::any())
        } else {
            layer.expose_headers(ExposeHeaders::list(headers(&self.expose_headers)))
        };
        if let Some(age) = self.max_age {
            layer = layer.max_age(Duration::from_secs(age.min(MAX_AGE_LIMIT)));
        }
        let mut cors = Cors {
            layer,
            origins: (!any_origin).then(|| Arc::from(origins.clone())),
            source: (self.clone(), methods.to_vec()),
            actual: Arc::from(Vec::new()),
        };
        // The headers of a non-preflight answer depend only on the origin:
        // tower-http's, computed once per allowed origin (one for any).
        let keys: Vec<HeaderValue> = if any_origin {
            vec![HeaderValue::from_static("null")]
        } else {
            origins
        };
        let actual: Vec<(HeaderValue, super::cors::Headers)> = keys
            .into_iter()
            .map(|origin| {
                let mut req = Request::new(Body::empty());
                req.headers_mut().insert(ORIGIN, origin.clone());
                let made = cors
                    .run(req, Some(Response::new(Body::empty())))
                    .into_parts()
                    .0
                    .headers;
                let mut headers: super::cors::Headers = made
                    .iter()
                    .filter(|(name, _)| *name != VARY)
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                if made.contains_key(VARY) {
                    headers.push((VARY, HeaderValue::from_static("origin")));
                }
                (origin, headers)
            })
            .collect();
        cors.actual = Arc::from(actual);
        Some(cors)
    }
}

/// API Gateway's largest `minimumCompressionSize`: 10 MiB.
pub(crate) const MAX_COMPRESSION_SIZE: u64 = 10 << 20;

/// Checks `minimum_compression_size` (0 to 10485760 bytes, as API Gateway).
pub(crate) fn check_compression(size: Option<u64>, path: &PathBuf, issues: &mut Issues) {
    if let Some(n) = size
        && n > MAX_COMPRESSION_SIZE
    {
        issues.push(
            &path.field("minimum_compression_size"),
            format!("must be 0 to {MAX_COMPRESSION_SIZE} bytes (got {n})"),
        );
    }
}

/// The compression a method's merged settings describe: `None` without a
/// `minimum_compression_size` (API Gateway's default: off).
pub(crate) fn resolve_compression(
    size: Option<u64>,
    br: Option<bool>,
) -> Option<super::Compression> {
    size.map(|minimum| super::Compression {
        minimum: minimum.min(MAX_COMPRESSION_SIZE),
        br: br.unwrap_or(false),
    })
}
