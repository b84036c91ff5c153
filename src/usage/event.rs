//! One request, as reported.
//!
//! The event is built by [`UsageLayer`](super::UsageLayer) from what it saw
//! and what the other layers put in the response extensions; sinks read it
//! field by field or as JSON (its `Serialize` impl, with API Gateway's
//! `$context` names where there is one).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::cache::CacheStatus;
use crate::context::{Endpoint, RequestId};
use crate::response::GatewayResponseKind;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The whole response was sent.
    Completed,
    /// The client went away before the response was whole (or before it
    /// started: then the status is 499). Also what a server that stops
    /// polling the body (a connection reset, a shutdown) looks like.
    ClientDisconnected,
    /// Something in the stack panicked; the client got a 500.
    Panicked,
}

impl Outcome {
    /// `completed`, `client_disconnected`, `panicked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::ClientDisconnected => "client_disconnected",
            Self::Panicked => "panicked",
        }
    }
}

/// The status recorded for a request whose client left before any response.
/// nginx's "client closed request"; not an HTTP status, and never sent.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// One request, successful or rejected, as a [`UsageLayer`](super::UsageLayer)
/// reports it.
///
/// Built only by the layer (`#[non_exhaustive]`), read by sinks. Cloning
/// copies a few reference counts and small strings; a layer with several
/// reporters clones one per reporter. The JSON form (for
/// [`HttpSink`](super::HttpSink) and JSON access logs) has one key per
/// field, `null` when unknown:
///
/// ```text
/// {"requestTimeEpoch":1700000000000,"requestId":"…","apiName":"petstore",
///  "stage":"prod","resourcePath":"/pets/{petId}","httpMethod":"GET",
///  "status":200,"errorType":null,"responseLatency":1.27,
///  "integrationLatency":0.98,"requestLength":0,"responseLength":48,
///  "apiKeyId":"3f9c2a1b7d","principalId":null,"cache":"Miss",
///  "sourceIp":"203.0.113.7","userAgent":"curl/8.5.0","outcome":"completed",
///  "isCanaryRequest":false}
/// ```
///
/// Times are Unix milliseconds and latencies fractional milliseconds, as
/// CloudWatch writes them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UsageEvent {
    /// When the request arrived, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// The request id (`x-amzn-requestid`). Behind a
    /// [`Gateway`](crate::Gateway), always there (a 404 has one too, and so
    /// has a client that left before the response). A
    /// [`UsageLayer`](super::UsageLayer) alone knows no request id: `None`.
    pub request_id: Option<RequestId>,
    /// The API's name (the config's `name`; a [`UsageLayer`](super::UsageLayer)
    /// alone says `tollgate` unless given
    /// [`api_name`](super::UsageLayer::api_name)).
    pub api: Arc<str>,
    /// The stage, resource template and method, when a gateway routed the
    /// request (`None` from a [`UsageLayer`](super::UsageLayer) alone).
    pub endpoint: Option<Arc<Endpoint>>,
    /// The request method.
    pub method: Method,
    /// The status sent (499 when the client left before any).
    pub status: u16,
    /// The gateway response kind, when the gateway answered itself.
    pub rejection: Option<GatewayResponseKind>,
    /// From arrival to the last body byte handed to the server (for a body
    /// held whole in memory: to the response head, since the body then goes
    /// out in one write).
    pub latency: Duration,
    /// From the integration call to its response head, when one was called.
    pub integration_latency: Option<Duration>,
    /// Request body bytes (its `Content-Length`, or counted as it streamed).
    /// A declared length is reported as declared; a counted one is what had
    /// been read when the event was made.
    pub request_bytes: u64,
    /// Response body bytes sent: for a client that left, what it got
    /// before leaving. Headers are not counted.
    pub response_bytes: u64,
    /// The API key id, when a key was accepted.
    pub api_key_id: Option<Arc<str>>,
    /// The SigV4 or authorizer principal.
    pub principal: Option<String>,
    /// What the cache did.
    pub cache: Option<CacheStatus>,
    /// The client's address (behind trusted proxies, from `X-Forwarded-For`).
    /// `None` when the server did not put a
    /// [`ClientAddr`](crate::throttle::ClientAddr) in the request.
    pub source_ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<HeaderValue>,
    /// How the request ended.
    pub outcome: Outcome,
    /// Whether the request was sent to its stage's canary (API Gateway's
    /// `$context.isCanaryRequest`); see [`Lifecycle`](crate::Lifecycle).
    pub canary: bool,
    /// The rejection a limit in `mode: shadow` would have made
    /// (`THROTTLED`, `QUOTA_EXCEEDED`): the request was admitted anyway.
    pub shadow_rejection: Option<GatewayResponseKind>,
}

/// Response extension of a request a shadow limit would have refused: the
/// rejection it would have made. The usage event carries it as
/// [`UsageEvent::shadow_rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowRejection(pub GatewayResponseKind);

impl crate::gate::Finish for ShadowRejection {
    fn finish(self, res: &mut http::Response<crate::Body>) {
        res.extensions_mut().insert(self);
    }
}

impl UsageEvent {
    /// The stage, if routed.
    pub fn stage(&self) -> Option<&str> {
        self.endpoint.as_ref().map(|e| e.stage())
    }

    /// The resource template, if routed.
    pub fn resource(&self) -> Option<&str> {
        self.endpoint.as_ref().map(|e| e.resource())
    }

    /// 2 for 2xx, 4 for 4xx, ... (4 for a client that left: 499).
    pub fn status_class(&self) -> u16 {
        self.status / 100
    }
}

/// The UTC day of a time in Unix nanoseconds: the key of per-day counts,
/// in memory and in Redis alike, so every process agrees on the day.
pub(crate) fn day_of(unix_nanos: u64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(unix_nanos / 1_000_000_000).unwrap_or(0),
    )
    .map_or(time::Date::MIN, time::OffsetDateTime::date)
}

/// Fractional milliseconds, CloudWatch's latency unit.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// JSON field names follow API Gateway's `$context` names (`errorType` is
/// `$context.error.responseType`; `cache` and `outcome` are tollgate's).
/// Absent values are `null`, never omitted, so every line has one shape.
impl Serialize for UsageEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("requestTimeEpoch", &(self.time_unix_nanos / 1_000_000))?;
        m.serialize_entry("requestId", &self.request_id.map(|id| id.to_string()))?;
        m.serialize_entry("apiName", &*self.api)?;
        m.serialize_entry("stage", &self.stage())?;
        m.serialize_entry("resourcePath", &self.resource())?;
        m.serialize_entry("httpMethod", self.method.as_str())?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry(
            "errorType",
            &self.rejection.map(GatewayResponseKind::as_str),
        )?;
        m.serialize_entry("responseLatency", &millis(self.latency))?;
        m.serialize_entry("integrationLatency", &self.integration_latency.map(millis))?;
        m.serialize_entry("requestLength", &self.request_bytes)?;
        m.serialize_entry("responseLength", &self.response_bytes)?;
        m.serialize_entry("apiKeyId", &self.api_key_id.as_deref())?;
        m.serialize_entry("principalId", &self.principal)?;
        m.serialize_entry("cache", &self.cache.map(CacheStatus::as_str))?;
        m.serialize_entry("sourceIp", &self.source_ip.map(|ip| ip.to_string()))?;
        m.serialize_entry(
            "userAgent",
            &self.user_agent.as_ref().and_then(|v| v.to_str().ok()),
        )?;
        m.serialize_entry("outcome", self.outcome.as_str())?;
        m.serialize_entry("isCanaryRequest", &self.canary)?;
        m.serialize_entry(
            "shadowRejection",
            &self.shadow_rejection.map(GatewayResponseKind::as_str),
        )?;
        m.end()
    }
}

impl UsageEvent {
    /// A completed `GET` to `api` answered `status`, at time zero, every
    /// other field empty (no route, no key, no latency): for testing a
    /// sink of your own. The gateway fills every field it knows.
    pub fn new(api: impl Into<Arc<str>>, status: u16) -> Self {
        let mut e = Self::for_tests(0, status);
        e.api = api.into();
        e
    }

    /// A completed GET with `status` at `time_unix_nanos`, every other
    /// field empty.
    pub(crate) fn for_tests(time_unix_nanos: u64, status: u16) -> Self {
        Self {
            time_unix_nanos,
            request_id: None,
            api: "api".into(),
            endpoint: None,
            method: Method::GET,
            status,
            rejection: None,
            shadow_rejection: None,
            latency: Duration::ZERO,
            integration_latency: None,
            request_bytes: 0,
            response_bytes: 0,
            api_key_id: None,
            principal: None,
            cache: None,
            source_ip: None,
            user_agent: None,
            outcome: Outcome::Completed,
            canary: false,
        }
    }
}
