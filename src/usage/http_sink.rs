//! The HTTP batch sink: a 3scale-style report.
//!
//! One POST per batch, so a collector sees at most one request per flush
//! interval per process (or per full batch), whatever the API's traffic.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::event::UsageEvent;
use super::reporter::{SinkError, UsageSink};

/// Posts each batch as JSON (`{"events": [...]}`, fields as
/// [`UsageEvent`]'s serialization) to a URL. Anything but a 2xx within the
/// timeout (5 s by default) is an error, so the reporter retries. Plain
/// `http://` only.
///
/// The collector should treat a batch as taken only when it answers 2xx:
/// anything else, or no answer in time, makes the reporter send the same
/// batch again, so a collector that stored it and then failed to answer
/// gets it twice. Events carry no unique id of their own; a collector that
/// needs exactly-once can use the `requestId` of routed requests.
///
/// The body is `{"events":[...]}` with each event as in
/// [`UsageEvent`]'s `Serialize` impl, sent as `application/json`. For
/// HTTPS, implement [`UsageSink`] over a client of your choice.
#[derive(Clone)]
pub struct HttpSink {
    /// hyper's pooled client: connections to the collector are kept alive
    /// between batches. Cloning the sink shares the pool.
    client: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
    /// Bounds one post: connecting, sending and reading the answer.
    timeout: Duration,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// Posts to `url` (`http://collector:8080/report`). An error for a URL
    /// that does not parse or is not `http://` with a host.
    pub fn new(url: &str) -> Result<Self, SinkError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| SinkError::new(format!("`{url}`: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(SinkError::new(format!("`{url}`: an http:// URL is needed")));
        }
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            url: uri,
            timeout: Duration::from_secs(5),
        })
    }

    /// With this timeout per post (default 5 s). Keep it well under the
    /// reporter's retry cap, or one slow collector holds its queue.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The body of one post.
#[derive(serde::Serialize)]
struct Report<'a> {
    events: &'a [UsageEvent],
}

#[async_trait]
impl UsageSink for HttpSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        let body = serde_json::to_vec(&Report { events: batch })
            .map_err(|e| SinkError::new(format!("cannot encode a batch: {e}")))?;
        let mut req = Request::post(self.url.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SinkError::new(e.to_string()))?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let sent = tokio::time::timeout(self.timeout, async {
            let res = self.client.request(req).await?;
            let status = res.status();
            // Read the answer so the connection can be reused.
            let _ = res.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        })
        .await;
        match sent {
            Err(_) => Err(SinkError::new("usage report timed out")),
            Ok(Err(e)) => Err(SinkError::new(format!("usage report failed: {e}"))),
            Ok(Ok(s)) if s.is_success() => Ok(()),
            Ok(Ok(s)) => Err(SinkError::new(format!("usage report answered {s}"))),
        }
    }
}
