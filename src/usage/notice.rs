//! Notices: what happens beside requests that the usage sinks hear of: a
//! change made through the management API (an audit record), a usage
//! plan's quota threshold crossed (an alert).

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Something that happened beside the requests, delivered to every usage
/// sink's [`notify`](super::UsageSink::notify) through the
/// [`Reporter`](super::Reporter)s of the gateway. As a JSON line:
///
/// ```json
/// {"type":"change","time":1796112000000,"principal":"ops","accessKeyId":"AKIDADMIN",
///  "method":"PATCH","path":"/restapis/petstore/stages/prod","status":200}
/// {"type":"quotaAlert","time":1796112000000,"keyId":"3f9c2a1b7d","plan":"basic",
///  "thresholdPercent":80,"used":40,"limit":50,"periodStart":1796083200}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A change made through the management API.
    Change(ChangeRecord),
    /// A key's quota use reached a threshold of its plan.
    QuotaAlert(QuotaAlert),
}

/// Who changed what, and when (an audit record). Never a body: no key
/// value or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeRecord {
    /// When the change was answered, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// Who: the credentials' principal.
    pub principal: String,
    /// Who: the access key id that signed.
    pub access_key_id: String,
    /// What: the HTTP method (`PATCH`).
    pub method: String,
    /// What: the path (`/restapis/petstore/stages/prod`).
    pub path: String,
    /// The status answered (a refused change is recorded too).
    pub status: u16,
}

/// A key's use of its quota reached `threshold_percent` of the limit in
/// the current period: one alert per key, plan, threshold and period.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaAlert {
    /// When the request that reached it was counted, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// The key id.
    pub key_id: Arc<str>,
    /// The usage plan.
    pub plan: Arc<str>,
    /// The threshold, 1 to 100 percent.
    pub threshold_percent: u8,
    /// Requests counted in the period, this one included.
    pub used: i64,
    /// The period's limit.
    pub limit: i64,
    /// The period's first second, Unix seconds.
    pub period_start: i64,
}

impl Notice {
    /// The notice's time, Unix nanoseconds.
    pub fn time_unix_nanos(&self) -> u64 {
        match self {
            Self::Change(c) => c.time_unix_nanos,
            Self::QuotaAlert(a) => a.time_unix_nanos,
        }
    }
}

impl ChangeRecord {
    /// A change record.
    pub fn new(
        time_unix_nanos: u64,
        principal: impl Into<String>,
        access_key_id: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        status: u16,
    ) -> Self {
        Self {
            time_unix_nanos,
            principal: principal.into(),
            access_key_id: access_key_id.into(),
            method: method.into(),
            path: path.into(),
            status,
        }
    }
}

/// JSON as above: `time` in Unix milliseconds, like usage events.
impl Serialize for Notice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Self::Change(c) => {
                m.serialize_entry("type", "change")?;
                m.serialize_entry("time", &(c.time_unix_nanos / 1_000_000))?;
                m.serialize_entry("principal", &c.principal)?;
                m.serialize_entry("accessKeyId", &c.access_key_id)?;
                m.serialize_entry("method", &c.method)?;
                m.serialize_entry("path", &c.path)?;
                m.serialize_entry("status", &c.status)?;
            }
            Self::QuotaAlert(a) => {
                m.serialize_entry("type", "quotaAlert")?;
                m.serialize_entry("time", &(a.time_unix_nanos / 1_000_000))?;
                m.serialize_entry("keyId", &*a.key_id)?;
                m.serialize_entry("plan", &*a.plan)?;
                m.serialize_entry("thresholdPercent", &a.threshold_percent)?;
                m.serialize_entry("used", &a.used)?;
                m.serialize_entry("limit", &a.limit)?;
                m.serialize_entry("periodStart", &a.period_start)?;
            }
        }
        m.end()
    }
}
