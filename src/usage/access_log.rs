//! The access-log sink.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::event::UsageEvent;
use super::reporter::{SinkError, UsageSink};

/// API Gateway's CLF-like default access log format.
pub const CLF: &str = "$context.identity.sourceIp - - [$context.requestTime] \"$context.httpMethod $context.resourcePath\" $context.status $context.responseLength $context.requestId";

/// A `$context` variable of an access log format.
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
}

/// Every variable, by its API Gateway name.
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
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A format names a variable that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown access log variable `{0}`")]
pub struct UnknownVariable(pub String);

enum Format {
    Template(Vec<Part>),
    Json,
}

enum Target {
    Writer(Mutex<Box<dyn Write + Send>>),
    Tracing,
}

/// Writes one line per request: a format of API Gateway's `$context`
/// variables (`$context.requestId`, `$context.identity.sourceIp`,
/// `$context.httpMethod`, `$context.resourcePath`, `$context.status`,
/// `$context.responseLength`, `$context.responseLatency`,
/// `$context.identity.apiKeyId`, `$context.requestTime`, ...; a value that is
/// not known is `-`), or JSON lines; to a writer (stdout by default) or
/// through `tracing` (target `tollgate::access`, level info).
pub struct AccessLogSink {
    format: Format,
    target: Target,
}

impl fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogSink").finish_non_exhaustive()
    }
}

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

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn write_var(out: &mut String, var: Var, e: &UsageEvent) {
    let dash = |out: &mut String, v: Option<&str>| out.push_str(v.unwrap_or("-"));
    match var {
        Var::RequestId => match e.request_id {
            Some(id) => {
                let _ = write!(out, "{id}");
            }
            None => out.push('-'),
        },
        Var::SourceIp => match e.source_ip {
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
        Var::Status => {
            let _ = write!(out, "{}", e.status);
        }
        Var::ResponseLength => {
            let _ = write!(out, "{}", e.response_bytes);
        }
        Var::ResponseLatency => {
            let _ = write!(out, "{}", e.latency.as_millis());
        }
        Var::IntegrationLatency => match e.integration_latency {
            Some(l) => {
                let _ = write!(out, "{}", l.as_millis());
            }
            None => out.push('-'),
        },
        Var::RequestTime => {
            let secs = i64::try_from(e.time_unix_nanos / 1_000_000_000).unwrap_or(0);
            match OffsetDateTime::from_unix_timestamp(secs) {
                Ok(t) => {
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
                }
                Err(_) => out.push('-'),
            }
        }
        Var::RequestTimeEpoch => {
            let _ = write!(out, "{}", e.time_unix_nanos / 1_000_000);
        }
        Var::ErrorResponseType => dash(out, e.rejection.map(|k| k.as_str())),
        Var::PrincipalId => dash(out, e.principal.as_deref()),
    }
}

impl AccessLogSink {
    /// Lines in `format` (see [`CLF`]), to stdout.
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

    /// Writes to `writer` instead.
    pub fn to_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.target = Target::Writer(Mutex::new(Box::new(writer)));
        self
    }

    /// Logs through `tracing` instead (target `tollgate::access`, info).
    pub fn to_tracing(mut self) -> Self {
        self.target = Target::Tracing;
        self
    }

    /// The line for one event, without its newline.
    pub fn render(&self, e: &UsageEvent) -> String {
        match &self.format {
            Format::Json => serde_json::to_string(e).unwrap_or_default(),
            Format::Template(parts) => {
                let mut out = String::with_capacity(128);
                for p in parts {
                    match p {
                        Part::Text(t) => out.push_str(t),
                        Part::Var(v) => write_var(&mut out, *v, e),
                    }
                }
                out
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
                let mut text = String::new();
                for e in batch {
                    text.push_str(&self.render(e));
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
