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

use crate::integration::{HttpClient, TlsConfig, error_chain, tls_client};

use super::event::UsageEvent;
use super::reporter::{SinkError, UsageSink};

/// Posts each batch as JSON (`{"events": [...]}`, fields as
/// [`UsageEvent`]'s serialization) to a URL. Anything but a 2xx within the
/// timeout (5 s by default) is an error, so the reporter retries.
/// `http://` or `https://`: rustls with the bundled Mozilla roots, or a
/// private CA and a client certificate with [`tls`](Self::tls), as an
/// HTTP integration's.
///
/// The collector should treat a batch as taken only when it answers 2xx:
/// anything else, or no answer in time, makes the reporter send the same
/// batch again, so a collector that stored it and then failed to answer
/// gets it twice. Events carry no unique id of their own; a collector that
/// needs exactly-once can use the `requestId` of routed requests.
///
/// The body is `{"events":[...]}` with each event as in
/// [`UsageEvent`]'s `Serialize` impl, sent as `application/json`.
#[derive(Clone)]
pub struct HttpSink {
    /// hyper's pooled client: connections to the collector are kept alive
    /// between batches. Cloning the sink shares the pool.
    client: HttpClient<Full<Bytes>>,
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
    /// Posts to `url` (`http://collector:8080/report`,
    /// `https://collector.example/report`). An error for a URL that does
    /// not parse or is not `http://` or `https://` with a host.
    pub fn new(url: &str) -> Result<Self, SinkError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| SinkError::new(format!("`{url}`: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(SinkError::new(format!(
                "`{url}`: an http:// or https:// URL is needed"
            )));
        }
        Ok(Self {
            client: Self::client(&TlsConfig::default())?,
            url: uri,
            timeout: Duration::from_secs(5),
        })
    }

    fn client(tls: &TlsConfig) -> Result<HttpClient<Full<Bytes>>, SinkError> {
        tls_client(tls).map_err(|e| SinkError::new(e.to_string()))
    }

    /// Connecting with `tls` (a private CA, a client certificate; see
    /// [`TlsConfig`]) instead of the bundled roots.
    ///
    /// # Errors
    ///
    /// A file of `tls` that cannot be read or used.
    pub fn tls(mut self, tls: &TlsConfig) -> Result<Self, SinkError> {
        self.client = Self::client(tls)?;
        Ok(self)
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
            Ok(Err(e)) => Err(SinkError::new(format!(
                "usage report failed: {}",
                error_chain(&e)
            ))),
            Ok(Ok(s)) if s.is_success() => Ok(()),
            Ok(Ok(s)) => Err(SinkError::new(format!("usage report answered {s}"))),
        }
    }
}
