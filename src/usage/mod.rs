//! Usage reporting: one [`UsageEvent`] per request, successful or rejected,
//! handed to sinks off the request path.
//!
//! [`UsageLayer`] goes outermost (a [`Gateway`](crate::Gateway) puts it there
//! when built with [`GatewayBuilder::reporter`](crate::GatewayBuilder::reporter)).
//! It notes the arrival, the method, client address and user agent, counts
//! the request body as it streams, reads what the other layers put in the
//! response extensions (route, rejection kind, API key, principal, cache
//! status, integration latency), and sends the event when the response body
//! is done: completed, or cut short by a client that went away. A request
//! whose client leaves before any response is reported with status 499; a
//! panic anywhere in the stack is caught, answered 500 `DEFAULT_5XX`, and
//! reported as such.
//!
//! A [`Reporter`] stands between the layer and a [`UsageSink`]: a bounded
//! queue the request path never waits on (a full queue drops and counts),
//! batches by size and by time, retries a failing sink with capped
//! exponential backoff, and delivers everything queued on
//! [`shutdown`](Reporter::shutdown). Sinks: [`AggregatingSink`] (counts in
//! memory, queryable), [`MetricsSink`] (API Gateway's CloudWatch metrics
//! through the `metrics` crate), [`AccessLogSink`] (a `$context` format or
//! JSON lines, to a writer or `tracing`), [`HttpSink`] (JSON batches posted
//! to a collector), [`EmfSink`] (CloudWatch Embedded Metric Format lines,
//! API Gateway's metrics per API, stage, resource and method).
//!
//! Besides events, a reporter hands its sink [`Notice`]s through
//! [`UsageSink::notify`] (a provided method: sinks that do not care ignore
//! them): a [`ChangeRecord`] for every change made through the management
//! API (who, what, when; never a body) and a [`QuotaAlert`] when a key's
//! use reaches one of its plan's `alerts` thresholds. Notices queue apart
//! from events (at most 4,096; more are dropped and counted in
//! [`Reporter::dropped_notices`]) and are delivered, retried like batches,
//! whenever the reporter's task wakes, and at shutdown.
//!
//! # Costs and failure modes
//!
//! - The request path pays a clock read, a few header reads and one
//!   non-blocking send per reporter; a response body held in memory is not
//!   wrapped, a streamed one is wrapped to count its bytes.
//! - A slow or failing sink never slows requests. Its reporter retries
//!   (about 13 s with the defaults) while the queue takes new events; a
//!   full queue drops and counts them ([`Reporter::dropped`], metric
//!   `tollgate_usage_dropped`; batches given up: `tollgate_usage_failed`).
//!   Those two counters are the ones to alert on.
//! - Delivery is at least once while the process lives. Call
//!   [`Reporter::shutdown`] before the runtime stops, or the events still
//!   queued are lost.
//! - Give each sink its own reporter
//!   ([`UsageLayer::reporter`] adds one): each has its own queue, so a
//!   stalled collector cannot delay the metrics.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response};
//! use tollgate::usage::{AggregatingSink, Counted, Reporter, UsageLayer};
//! use tollgate::Body;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let counts = Arc::new(AggregatingSink::new());
//! let reporter = Reporter::new(counts.clone());
//! let svc = ServiceBuilder::new()
//!     .layer(UsageLayer::new(reporter.clone()))
//!     // The inner service gets the body wrapped to count it.
//!     .service_fn(|_req: Request<Counted<Body>>| async {
//!         Ok::<_, Infallible>(Response::new(Body::from("ok")))
//!     });
//! let res = svc.oneshot(Request::get("/pets").body(Body::empty()).unwrap()).await.unwrap();
//! drop(res); // the event is sent once the body is done with
//! reporter.shutdown().await;
//! assert_eq!(counts.status_class(2), 1);
//! # }
//! ```

mod access_log;
pub(crate) use access_log::clf_time;
mod aggregate;
mod counted;
mod emf_sink;
mod event;
mod http_sink;
pub(crate) mod layer;
mod metrics_sink;
mod notice;
mod reporter;

pub use self::counted::Counted;
pub use access_log::{AccessLogSink, CLF, UnknownVariable};
pub use aggregate::{AggregatingSink, EndpointCounts, UsageCounts};
pub use emf_sink::EmfSink;
#[cfg(feature = "redis")]
pub(crate) use event::day_of;
pub use event::{CLIENT_CLOSED_REQUEST, Outcome, ShadowRejection, UsageEvent};
pub use http_sink::HttpSink;
pub use layer::{IntegrationLatency, ResponseFuture, Usage, UsageLayer};
pub use metrics_sink::MetricsSink;
pub use notice::{ChangeRecord, Notice, QuotaAlert};
pub use reporter::{Reporter, ReporterConfig, SinkError, UsageSink};
