//! The `metrics`-crate sink: API Gateway's CloudWatch metrics.
//!
//! The metrics and their meanings are API Gateway's ("Amazon API Gateway
//! dimensions and metrics"); the labels are its `ApiName, Method, Resource,
//! Stage` dimensions, lower-cased as Prometheus writes labels.

use std::fmt;

use async_trait::async_trait;
use metrics::Label;

use super::event::UsageEvent;
use super::reporter::{SinkError, UsageSink};
use crate::cache::CacheStatus;

/// Emits API Gateway's CloudWatch metrics through the [`metrics`] crate, to
/// whatever recorder the process installed (a Prometheus exporter, say):
/// counters `Count`, `4XXError`, `5XXError`, `CacheHitCount`,
/// `CacheMissCount` and histograms `Latency` and `IntegrationLatency` (in
/// milliseconds), labelled `api`, `stage`, `resource`, `method` (`stage`
/// and `resource` are `-` for a request no route matched) and `canary`
/// (`true` for a request a stage's canary served, as API Gateway keeps a
/// canary's metrics apart; see [`Lifecycle`](crate::Lifecycle)).
///
/// Names are API Gateway's as they are; [`prefix`](Self::prefix) one for a
/// system whose names may not start with a digit (`tollgate_4XXError`).
///
/// Emitted from the reporter's task, a batch at a time, so the recorder's
/// cost is not on the request path; the metrics lag requests by up to the
/// reporter's flush interval. `Count` counts every request, rejections
/// included (API Gateway's error rate is `4XXError / Count`), and here
/// clients that left as well: `4XXError` includes their 499.
///
/// The `stage` and `resource` labels come from the configuration (`-` when
/// no route matched), never from request paths. The `method` label is the
/// request's method when it is one of HTTP's nine (RFC 9110 and PATCH), and
/// `OTHER` otherwise: a client may send any extension method, and each would
/// be a new series behind an exporter that keeps every one.
#[derive(Clone, Default)]
pub struct MetricsSink {
    prefix: String,
}

impl fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsSink")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl MetricsSink {
    /// A sink with API Gateway's names.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `prefix` before every name.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefixed name (a small allocation per metric per event).
    fn name(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    /// Emits one event's metrics. Callable directly, for a sink of your own
    /// that also wants these metrics.
    pub fn emit(&self, e: &UsageEvent) {
        let labels = [
            Label::new("api", e.api.to_string()),
            Label::new("stage", e.stage().unwrap_or("-").to_owned()),
            Label::new("resource", e.resource().unwrap_or("-").to_owned()),
            Label::new("method", method_label(&e.method)),
            Label::new("canary", if e.canary { "true" } else { "false" }),
        ];
        metrics::counter!(self.name("Count"), labels.iter()).increment(1);
        match e.status_class() {
            4 => metrics::counter!(self.name("4XXError"), labels.iter()).increment(1),
            5 => metrics::counter!(self.name("5XXError"), labels.iter()).increment(1),
            _ => {}
        }
        match e.cache {
            Some(CacheStatus::Hit) => {
                metrics::counter!(self.name("CacheHitCount"), labels.iter()).increment(1);
            }
            Some(CacheStatus::Miss) => {
                metrics::counter!(self.name("CacheMissCount"), labels.iter()).increment(1);
            }
            _ => {}
        }
        metrics::histogram!(self.name("Latency"), labels.iter())
            .record(e.latency.as_secs_f64() * 1000.0);
        if let Some(l) = e.integration_latency {
            metrics::histogram!(self.name("IntegrationLatency"), labels.iter())
                .record(l.as_secs_f64() * 1000.0);
        }
    }
}

#[async_trait]
impl UsageSink for MetricsSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        for e in batch {
            self.emit(e);
        }
        Ok(())
    }
}

/// The request's method as a label: one of the nine standard methods, or
/// `OTHER`, so the label's values are bounded whatever clients send.
pub(super) fn method_label(method: &http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == method.as_str())
        .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use http::Method;

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FETCH", "X1", "get"] {
            let m = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "OTHER", "{made_up}");
        }
    }
}
