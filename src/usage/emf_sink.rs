//! CloudWatch Embedded Metric Format: API Gateway's metrics as JSON lines
//! that the CloudWatch agent, or Lambda's and ECS's log pipelines, turn into
//! CloudWatch metrics.
//!
//! The document structure is the "Specification: Embedded metric format"
//! page of the CloudWatch user guide: a root `_aws` object with a
//! millisecond `Timestamp` and `CloudWatchMetrics`, a list of directives
//! (`Namespace`, `Dimensions` as lists of member names, `Metrics` as
//! `Name`/`Unit`), each name a member of the root. The metrics and
//! dimensions are API Gateway's ("Amazon API Gateway dimensions and
//! metrics").
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tollgate::usage::{EmfSink, UsageEvent, UsageSink};
//!
//! # #[derive(Clone, Default)] struct Shared(Arc<Mutex<Vec<u8>>>);
//! # impl std::io::Write for Shared {
//! #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().extend_from_slice(b); Ok(b.len()) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let out = Shared::default();
//! let sink = EmfSink::stdout().namespace("petstore").to_writer(out.clone());
//! sink.send(&[UsageEvent::new("orders", 200), UsageEvent::new("orders", 404)]).await.unwrap();
//! let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
//! let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
//! assert_eq!(line["ApiName"], "orders");
//! assert_eq!(line["Count"], 2);
//! assert_eq!(line["4XXError"], 1);
//! assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "petstore");
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::event::UsageEvent;
use super::reporter::{SinkError, UsageSink};
use crate::cache::CacheStatus;

/// Values one metric may carry in one document (the specification's
/// bound on an array of values).
const MAX_VALUES: usize = 100;

/// The dimensions every line carries: API Gateway's per-method ones.
const DIMENSIONS: [&str; 4] = ["ApiName", "Stage", "Resource", "Method"];

/// The sets each metric is published under, as API Gateway publishes its
/// own: per API, per API and stage, per method.
const DIMENSION_SETS: [&[&str]; 3] = [
    &["ApiName"],
    &["ApiName", "Stage"],
    &["ApiName", "Stage", "Resource", "Method"],
];

/// A [`UsageSink`] writing CloudWatch Embedded Metric Format: per reporter
/// batch (a flush), one JSON line per API, stage, resource and method
/// (members `ApiName`, `Stage`, `Resource`, `Method`), each metric
/// published under three dimension sets as API Gateway's are (`ApiName`;
/// `ApiName`, `Stage`; all four), with API Gateway's metrics:
///
/// | metric | unit | value |
/// |---|---|---|
/// | `Count` | `Count` | requests in the batch, rejections and clients that left included |
/// | `4XXError`, `5XXError` | `Count` | of them, answered 4xx (499 for a client that left included) or 5xx |
/// | `CacheHitCount`, `CacheMissCount` | `Count` | of them, served from the stage's cache or looked up and missed |
/// | `Latency` | `Milliseconds` | each request's time in the gateway, as a list |
/// | `IntegrationLatency` | `Milliseconds` | each integration's time (requests that reached one), as a list |
///
/// `Stage` and `Resource` are `-` for a request no method matched (a 404
/// or 405; API
/// Gateway counts those at the API level); `Method` is the request's method
/// when it is one of HTTP's nine and `OTHER` otherwise, so series stay
/// bounded. `Timestamp` is the newest event's time in the line, in
/// milliseconds. The specification allows 100 values per metric: a
/// dimension set with more latencies in one batch gets further lines that
/// carry only `Latency` and `IntegrationLatency` (their directive names only
/// those), so every sample is kept and every count is written once.
///
/// The namespace defaults to `tollgate` (CloudWatch reserves `AWS/`, API
/// Gateway's own). Lines go to stdout (Lambda and ECS ship it) or a file
/// opened for appending; a failed write fails the batch and the
/// [`Reporter`](super::Reporter) retries it (at least once, as EMF itself
/// delivers).
pub struct EmfSink {
    namespace: String,
    out: Mutex<Out>,
}

/// The writer, and whether its last write failed part way (the next one
/// then starts on a new line, so a torn line stays alone).
struct Out {
    writer: Box<dyn Write + Send>,
    torn: bool,
}

impl fmt::Debug for EmfSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmfSink")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl EmfSink {
    /// Writes to stdout.
    pub fn stdout() -> Self {
        Self {
            namespace: "tollgate".to_owned(),
            out: Mutex::new(Out {
                writer: Box::new(std::io::stdout()),
                torn: false,
            }),
        }
    }

    /// Appends to the file at `path`, created if missing.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened for appending.
    pub fn file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.as_ref())?;
        Ok(Self::stdout().to_writer(f))
    }

    /// Writes to `writer` instead.
    pub fn to_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.out = Mutex::new(Out {
            writer: Box::new(writer),
            torn: false,
        });
        self
    }

    /// The CloudWatch namespace of every metric. Default `tollgate`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The lines for one batch, each ending in a newline. Callable
    /// directly, for a sink of your own that ships them elsewhere.
    pub fn render(&self, batch: &[UsageEvent]) -> String {
        let mut groups: BTreeMap<[&str; 4], Group> = BTreeMap::new();
        for e in batch {
            let key = [
                &*e.api,
                e.stage().unwrap_or("-"),
                e.resource().unwrap_or("-"),
                super::metrics_sink::method_label(&e.method),
            ];
            let g = groups.entry(key).or_default();
            g.count += 1;
            match e.status_class() {
                4 => g.client_errors += 1,
                5 => g.server_errors += 1,
                _ => {}
            }
            match e.cache {
                Some(CacheStatus::Hit) => g.hits += 1,
                Some(CacheStatus::Miss) => g.misses += 1,
                _ => {}
            }
            g.latency.push(millis(e.latency));
            if let Some(l) = e.integration_latency {
                g.integration.push(millis(l));
            }
            g.time_ms = g.time_ms.max(e.time_unix_nanos / 1_000_000);
        }
        let mut out = String::new();
        for (dims, g) in groups {
            let mut first = true;
            let mut latency = g.latency.chunks(MAX_VALUES);
            let mut integration = g.integration.chunks(MAX_VALUES);
            loop {
                let (l, i) = (latency.next(), integration.next());
                if !first && l.is_none() && i.is_none() {
                    break;
                }
                let mut metrics = Vec::new();
                let mut line = serde_json::Map::new();
                line.insert("_aws".into(), Value::Null);
                for (name, value) in DIMENSIONS.iter().zip(dims) {
                    line.insert((*name).into(), value.into());
                }
                if first {
                    for (name, n) in [
                        ("Count", g.count),
                        ("4XXError", g.client_errors),
                        ("5XXError", g.server_errors),
                        ("CacheHitCount", g.hits),
                        ("CacheMissCount", g.misses),
                    ] {
                        metrics.push(json!({ "Name": name, "Unit": "Count" }));
                        line.insert(name.into(), n.into());
                    }
                }
                for (name, values) in [("Latency", l), ("IntegrationLatency", i)] {
                    if let Some(values) = values {
                        metrics.push(json!({ "Name": name, "Unit": "Milliseconds" }));
                        line.insert(name.into(), json!(values));
                    }
                }
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": g.time_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": DIMENSION_SETS,
                            "Metrics": metrics,
                        }],
                    }),
                );
                out.push_str(&Value::Object(line).to_string());
                out.push('\n');
                first = false;
            }
        }
        out
    }
}

/// One dimension set's figures in a batch.
#[derive(Default)]
struct Group {
    count: u64,
    client_errors: u64,
    server_errors: u64,
    hits: u64,
    misses: u64,
    latency: Vec<f64>,
    integration: Vec<f64>,
    time_ms: u64,
}

/// A duration in milliseconds, to the microsecond.
fn millis(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

#[async_trait]
impl UsageSink for EmfSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let text = self.render(batch);
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Out { writer, torn } = &mut *out;
        let written = (if *torn {
            writer.write_all(b"\n")
        } else {
            Ok(())
        })
        .and_then(|()| writer.write_all(text.as_bytes()))
        .and_then(|()| writer.flush());
        // A failed write may have left part of a line: the retry starts a
        // new one. (Lines written whole before the failure are written
        // again by the retry: at least once, as EMF delivers.)
        *torn = written.is_err();
        written.map_err(|e| SinkError::new(format!("EMF write failed: {e}")))
    }
}
