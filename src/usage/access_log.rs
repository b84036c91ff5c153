//! The access-log sink.
//!
//! A format is parsed once, when the sink is made, into text and variables;
//! rendering a line is then a walk over that list, with no lookups. The
//! variables are a subset of API Gateway's `$context` (its "`$context`
//! variables for data models, authorizers, mapping templates, and
//! CloudWatch access logging"), the ones a request's [`UsageEvent`] knows.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::event::UsageEvent;
use super::reporter::{SinkError, UsageSink};

/// API Gateway's CLF-like default access log format.
///
/// The console's CLF example ("Setting up CloudWatch logging for a REST
/// API" in API Gateway's guide) with `$context.identity.caller` and `$context.identity.user`
/// written as `-` (tollgate has no IAM caller) and without
/// `$context.protocol` and `$context.extendedRequestId`. A line looks like
/// `203.0.113.7 - - [14/Nov/2023:22:13:20 +0000] "GET /pets" 200 48 3f1c…`.
pub const CLF: &str = "$context.identity.sourceIp - - [$context.requestTime] \"$context.httpMethod $context.resourcePath\" $context.status $context.responseLength $context.requestId";

/// A `$context` variable of an access log format: what [`write_var`]
/// renders from an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    RequestId,
    SourceIp,
    UserAgent,
    ApiKeyId,
    HttpMethod,
    ResourcePath,
    Stage,
    ApiId,
    Status,
    ResponseLength,
    ResponseLatency,
    IntegrationLatency,
    RequestTime,
    RequestTimeEpoch,
    ErrorResponseType,
    PrincipalId,
    IsCanaryRequest,
}

/// Every variable, by its API Gateway name. `extendedRequestId` is an
/// alias of `requestId`: tollgate makes one id per request, where API
/// Gateway makes two (one a client may override). `apiId` gives the API's
/// name: tollgate's APIs have no separate id.
const VARS: &[(&str, Var)] = &[
    ("$context.requestId", Var::RequestId),
    ("$context.extendedRequestId", Var::RequestId),
    ("$context.identity.sourceIp", Var::SourceIp),
    ("$context.identity.userAgent", Var::UserAgent),
    ("$context.identity.apiKeyId", Var::ApiKeyId),
    ("$context.httpMethod", Var::HttpMethod),
    ("$context.resourcePath", Var::ResourcePath),
    ("$context.stage", Var::Stage),
    ("$context.apiId", Var::ApiId),
    ("$context.status", Var::Status),
    ("$context.responseLength", Var::ResponseLength),
    ("$context.responseLatency", Var::ResponseLatency),
    ("$context.integrationLatency", Var::IntegrationLatency),
    ("$context.requestTime", Var::RequestTime),
    ("$context.requestTimeEpoch", Var::RequestTimeEpoch),
    ("$context.error.responseType", Var::ErrorResponseType),
    ("$context.authorizer.principalId", Var::PrincipalId),
    ("$context.isCanaryRequest", Var::IsCanaryRequest),
];

/// A parsed format: literal text and variables, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A format names a variable that does not exist (the field is the whole
/// `$context.name` as written). Reported when the sink is made, never
/// while logging.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown access log variable `{0}`")]
pub struct UnknownVariable(pub String);

enum Format {
    Template(Vec<Part>),
    /// [`UsageEvent`]'s `Serialize` form.
    Json,
}

enum Target {
    /// A blocking writer, behind a lock; one `write_all` per batch.
    Writer(Mutex<Box<dyn Write + Send>>),
    /// One `tracing` event per line.
    Tracing,
}

/// Writes one line per request: a format of API Gateway's `$context`
/// variables (`$context.requestId`, `$context.identity.sourceIp`,
/// `$context.httpMethod`, `$context.resourcePath`, `$context.status`,
/// `$context.responseLength`, `$context.responseLatency`,
/// `$context.identity.apiKeyId`, `$context.requestTime`,
/// `$context.isCanaryRequest` (`true` or `false`), ...; a value that is
/// not known is `-`), or JSON lines; to a writer (stdout by default) or
/// through `tracing` (target `tollgate::access`, level info).
///
/// A batch is rendered whole and written with one `write_all` and a
/// `flush`, from the reporter's task. The writer is blocking: stdout or a
/// file is fine; a pipe whose reader stalls holds up that reporter (and
/// only it). A write error fails the batch and the reporter retries it, so
/// after a partial write some lines may appear twice.
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
/// use http::{Request, Response};
/// use tollgate::Body;
/// use tollgate::usage::{AccessLogSink, Counted, Reporter, UsageLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// /// Lines written to memory, for the test.
/// #[derive(Clone, Default)]
/// struct Lines(Arc<Mutex<Vec<u8>>>);
/// impl Write for Lines {
///     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().extend_from_slice(buf);
///         Ok(buf.len())
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lines = Lines::default();
/// let format = "$context.httpMethod $context.status $context.responseLength key=$context.identity.apiKeyId";
/// let sink = AccessLogSink::template(format)?.to_writer(lines.clone());
/// let reporter = Reporter::new(Arc::new(sink));
/// let svc = ServiceBuilder::new()
///     .layer(UsageLayer::new(reporter.clone()))
///     .service_fn(|_req: Request<Counted<Body>>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok")))
///     });
/// svc.oneshot(Request::get("/pets").body(Body::empty())?).await?;
/// reporter.shutdown().await;
/// // No key was presented: an unknown value is `-`.
/// assert_eq!(String::from_utf8(lines.0.lock().unwrap().clone())?, "GET 200 2 key=-\n");
/// # Ok(()) }
/// ```
pub struct AccessLogSink {
    format: Format,
    target: Target,
}

impl fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogSink").finish_non_exhaustive()
    }
}

/// Splits a format into text and variables. A variable name runs over
/// letters, digits, `.` and `_`, and a trailing `.` is left as text, so
/// `$context.status.` reads as the status then a full stop. Anything that
/// does not start with `$context.` is text (a lone `$` included).
fn parse(format: &str) -> Result<Vec<Part>, UnknownVariable> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = format;
    while let Some(at) = rest.find("$context.") {
        text.push_str(&rest[..at]);
        let tail = &rest[at..];
        let len = "$context.".len()
            + tail["$context.".len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(tail.len() - "$context.".len());
        let name = tail[..len].trim_end_matches('.');
        let var = VARS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| UnknownVariable(name.to_owned()))?;
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Var(var));
        rest = &tail[name.len()..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// CLF's month abbreviations (English, whatever the locale).
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends one variable's value; `-` for what the event does not know.
/// Latencies are whole milliseconds (truncated) here, where the JSON form
/// keeps fractions; `requestTime` is CLF's `dd/MMM/yyyy:HH:mm:ss +0000`, in
/// UTC; `requestTimeEpoch` is Unix milliseconds, as API Gateway's.
/// The last `requestTime` rendered, by whole second: the lines of one
/// batch mostly share their second, so the date is formatted once.
#[derive(Default)]
struct TimeCache {
    secs: Option<i64>,
    text: String,
}

impl TimeCache {
    fn get(&mut self, secs: i64) -> &str {
        if self.secs != Some(secs) {
            self.text.clear();
            clf_time(secs, &mut self.text);
            self.secs = Some(secs);
        }
        &self.text
    }
}

/// Writes Unix second `secs` as CLF's `dd/MMM/yyyy:HH:mm:ss +0000` (UTC),
/// API Gateway's `$context.requestTime`; `-` when out of range.
pub(crate) fn clf_time(secs: i64, out: &mut String) {
    if let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) {
        let _ = write!(
            out,
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            t.day(),
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        );
    } else {
        out.push('-');
    }
}

/// Appends `n` in decimal.
fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn write_var(out: &mut String, var: Var, e: &UsageEvent, times: &mut TimeCache) {
    let dash = |out: &mut String, v: Option<&str>| out.push_str(v.unwrap_or("-"));
    match var {
        Var::RequestId => match e.request_id {
            Some(id) => out.push_str(id.encode(&mut [0; 36])),
            None => out.push('-'),
        },
        Var::SourceIp => match e.source_ip {
            Some(std::net::IpAddr::V4(ip)) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    push_int(out, octet);
                }
            }
            Some(ip) => {
                let _ = write!(out, "{ip}");
            }
            None => out.push('-'),
        },
        Var::UserAgent => dash(out, e.user_agent.as_ref().and_then(|v| v.to_str().ok())),
        Var::ApiKeyId => dash(out, e.api_key_id.as_deref()),
        Var::HttpMethod => out.push_str(e.method.as_str()),
        Var::ResourcePath => dash(out, e.resource()),
        Var::Stage => dash(out, e.stage()),
        Var::ApiId => out.push_str(&e.api),
        Var::Status => push_int(out, e.status),
        Var::ResponseLength => push_int(out, e.response_bytes),
        Var::ResponseLatency => push_int(out, e.latency.as_millis()),
        Var::IntegrationLatency => match e.integration_latency {
            Some(l) => push_int(out, l.as_millis()),
            None => out.push('-'),
        },
        Var::RequestTime => {
            let secs = i64::try_from(e.time_unix_nanos / 1_000_000_000).unwrap_or(0);
            out.push_str(times.get(secs));
        }
        Var::RequestTimeEpoch => push_int(out, e.time_unix_nanos / 1_000_000),
        Var::ErrorResponseType => dash(out, e.rejection.map(|k| k.as_str())),
        Var::PrincipalId => dash(out, e.principal.as_deref()),
        Var::IsCanaryRequest => out.push_str(if e.canary { "true" } else { "false" }),
    }
}

impl AccessLogSink {
    /// Lines in `format` (see [`CLF`]), to stdout. An unknown variable is
    /// an error now rather than a `-` in every line later.
    pub fn template(format: &str) -> Result<Self, UnknownVariable> {
        Ok(Self {
            format: Format::Template(parse(format)?),
            target: Target::Writer(Mutex::new(Box::new(std::io::stdout()))),
        })
    }

    /// One JSON object per line (the fields of [`UsageEvent`]'s
    /// serialization), to stdout.
    pub fn json_lines() -> Self {
        Self {
            format: Format::Json,
            target: Target::Writer(Mutex::new(Box::new(std::io::stdout()))),
        }
    }

    /// Writes to `writer` instead (a file, a buffer). Each batch is one
    /// `write_all` and a `flush`; nothing is buffered in between.
    pub fn to_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.target = Target::Writer(Mutex::new(Box::new(writer)));
        self
    }

    /// Logs through `tracing` instead (target `tollgate::access`, info).
    /// Never fails: whether the line is kept is the subscriber's business.
    pub fn to_tracing(mut self) -> Self {
        self.target = Target::Tracing;
        self
    }

    /// The line for one event, without its newline. Values are written as
    /// they are: a user agent with a `"` in it is not escaped in a
    /// template line (the JSON form escapes everything).
    pub fn render(&self, e: &UsageEvent) -> String {
        let mut out = String::with_capacity(128);
        self.render_into(&mut out, e, &mut TimeCache::default());
        out
    }

    /// Appends the line for `e` (without its newline) to `out`: a batch is
    /// rendered into one buffer, with no string per line.
    fn render_into(&self, out: &mut String, e: &UsageEvent, times: &mut TimeCache) {
        match &self.format {
            Format::Json => out.push_str(&serde_json::to_string(e).unwrap_or_default()),
            Format::Template(parts) => {
                for p in parts {
                    match p {
                        Part::Text(t) => out.push_str(t),
                        Part::Var(v) => write_var(out, *v, e, times),
                    }
                }
            }
        }
    }
}

#[async_trait]
impl UsageSink for AccessLogSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        match &self.target {
            Target::Tracing => {
                for e in batch {
                    tracing::info!(target: "tollgate::access", "{}", self.render(e));
                }
                Ok(())
            }
            Target::Writer(w) => {
                let mut text = String::with_capacity(batch.len() * 160);
                let mut times = TimeCache::default();
                for e in batch {
                    self.render_into(&mut text, e, &mut times);
                    text.push('\n');
                }
                let mut w = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                w.write_all(text.as_bytes())
                    .and_then(|()| w.flush())
                    .map_err(|e| SinkError::new(format!("access log write failed: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(secs: u64, status: u16, ip: Option<std::net::IpAddr>) -> UsageEvent {
        let mut e = UsageEvent::for_tests(secs * 1_000_000_000 + 999_999_999, status);
        e.latency = std::time::Duration::from_micros(2_500);
        e.response_bytes = 1234;
        e.source_ip = ip;
        e
    }

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_batch_renders_each_second_and_number_of_its_own() {
        let out = Shared::default();
        let sink = AccessLogSink::template(
            "$context.identity.sourceIp [$context.requestTime] $context.status $context.responseLength $context.responseLatency $context.requestTimeEpoch",
        )
        .unwrap()
        .to_writer(out.clone());
        let v4 = Some("192.0.2.7".parse().unwrap());
        let v6 = Some("2001:db8::1".parse().unwrap());
        // 2024-03-09 16:00:00 UTC, then the same second, then the next one.
        let batch = [
            event(1_710_000_000, 200, v4),
            event(1_710_000_000, 404, None),
            event(1_710_000_001, 503, v6),
        ];
        sink.send(&batch).await.unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "192.0.2.7 [09/Mar/2024:16:00:00 +0000] 200 1234 2 1710000000999\n\
             - [09/Mar/2024:16:00:00 +0000] 404 1234 2 1710000000999\n\
             2001:db8::1 [09/Mar/2024:16:00:01 +0000] 503 1234 2 1710000001999\n"
        );
    }

    #[test]
    fn formats_parse_into_text_and_variables() {
        assert_eq!(
            parse("[$context.status] $context.httpMethod.").unwrap(),
            [
                Part::Text("[".into()),
                Part::Var(Var::Status),
                Part::Text("] ".into()),
                Part::Var(Var::HttpMethod),
                Part::Text(".".into()),
            ]
        );
        assert_eq!(
            parse("$context.nope").unwrap_err(),
            UnknownVariable("$context.nope".into())
        );
        assert!(parse(CLF).is_ok());
    }
}
