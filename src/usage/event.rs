//! One request, as reported.

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
    /// started: then the status is 499).
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
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// One request, successful or rejected, as a [`UsageLayer`](super::UsageLayer)
/// reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UsageEvent {
    /// When the request arrived, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// The request id (`x-amzn-requestid`).
    pub request_id: Option<RequestId>,
    /// The API's name (the config's `name`).
    pub api: Arc<str>,
    /// The stage, resource template and method, when the request was routed.
    pub endpoint: Option<Arc<Endpoint>>,
    /// The request method.
    pub method: Method,
    /// The status sent (499 when the client left before any).
    pub status: u16,
    /// The gateway response kind, when the gateway answered itself.
    pub rejection: Option<GatewayResponseKind>,
    /// From arrival to the last body byte handed to the server.
    pub latency: Duration,
    /// From the integration call to its response head, when one was called.
    pub integration_latency: Option<Duration>,
    /// Request body bytes (its `Content-Length`, or counted as it streamed).
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
    /// The API key id, when a key was accepted.
    pub api_key_id: Option<Arc<str>>,
    /// The SigV4 or authorizer principal.
    pub principal: Option<String>,
    /// What the cache did.
    pub cache: Option<CacheStatus>,
    /// The client's address (behind trusted proxies, from `X-Forwarded-For`).
    pub source_ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<HeaderValue>,
    /// How the request ended.
    pub outcome: Outcome,
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

    /// 2 for 2xx, 4 for 4xx, ...
    pub fn status_class(&self) -> u16 {
        self.status / 100
    }
}

/// The UTC day of a time in Unix nanoseconds.
pub(crate) fn day_of(unix_nanos: u64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(unix_nanos / 1_000_000_000).unwrap_or(0),
    )
    .map_or(time::Date::MIN, time::OffsetDateTime::date)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// JSON field names follow API Gateway's `$context` names.
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
        m.end()
    }
}
