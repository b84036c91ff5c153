//! The `threescale` authorizer: `authrep` for a verdict, batched `report`s
//! for the calls its cached verdicts let through.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::client::{Answer, Client, Who};
use super::config::{Credentials, ThreeScaleConfig};
use crate::auth::authorizer::{Authorizer, AuthorizerRequest, Verdict};
use crate::response::GatewayResponseKind;
use crate::store::StoreError;

/// Asks 3scale whether a caller may call, with the method's metric.
///
/// Built from an authorizer's `threescale` section by
/// [`GatewayBuilder::build`](crate::GatewayBuilder::build) (see the
/// [module docs](super)); nothing is registered for it. A verdict comes
/// from one `authrep` call, which also reports the call's hit. The
/// gateway caches verdicts per key and method for the authorizer's `ttl`;
/// each call a cached allow lets through is counted here and reported
/// with the next batch (`report`, one per `report_interval_ms`, and at
/// [`Gateway::shutdown_reporters`](crate::Gateway::shutdown_reporters)).
/// A report 3scale does not take keeps its counts for the next one, so
/// while the process lives no call goes unreported; an authorizer dropped
/// with counts (its deployment replaced) reports them from a last task.
pub struct ThreeScaleAuthorizer {
    inner: Arc<Inner>,
    credentials: Credentials,
    sources: Vec<String>,
    config: ThreeScaleConfig,
    interval: Duration,
}

/// What the background flush shares with the authorizer.
struct Inner {
    client: Client,
    /// Calls let through by cached verdicts, not yet reported, per
    /// application and metric.
    pending: Mutex<HashMap<(Who, String), u64>>,
    /// Serializes reports, so a shutdown's flush waits for a running one.
    reporting: tokio::sync::Mutex<()>,
    /// Whether the periodic report task runs (cleared when it ends, so a
    /// runtime shut down under it gets a new one on the next count).
    flusher: AtomicBool,
}

impl fmt::Debug for ThreeScaleAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreeScaleAuthorizer")
            .field("client", &self.inner.client)
            .field("credentials", &self.credentials)
            .field("sources", &self.sources)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl ThreeScaleAuthorizer {
    /// From a checked `threescale` section and the authorizer's identity
    /// sources (empty: APIcast's defaults).
    pub(crate) fn new(config: &ThreeScaleConfig, sources: &[String]) -> Result<Self, String> {
        let client = Client::new(
            &config.url,
            &config.service_id,
            config.service_token.clone(),
            Duration::from_millis(config.timeout_ms.unwrap_or(5000)),
        )?;
        let sources = if sources.is_empty() {
            config.default_sources()
        } else {
            sources.to_vec()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                pending: Mutex::new(HashMap::new()),
                reporting: tokio::sync::Mutex::new(()),
                flusher: AtomicBool::new(false),
            }),
            credentials: config.credentials,
            sources,
            config: config.clone(),
            interval: Duration::from_millis(config.report_interval_ms.unwrap_or(1000)),
        })
    }

    /// The identity sources read (the configured ones, or the defaults).
    pub(crate) fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The caller's 3scale identity from the request's identity sources.
    fn who(&self, request: &AuthorizerRequest) -> Option<Who> {
        let first = request.identity(self.sources.first()?)?.to_owned();
        Some(match self.credentials {
            Credentials::UserKey => Who::UserKey(first),
            Credentials::AppId => Who::App {
                id: first,
                key: self
                    .sources
                    .get(1)
                    .and_then(|s| request.identity(s))
                    .map(str::to_owned),
            },
        })
    }

    /// Starts the task that reports pending counts every interval, once,
    /// on the runtime of the first call that needs it. It ends when the
    /// authorizer is dropped.
    fn start_flusher(&self) {
        if self.inner.flusher.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not on a runtime: the counts wait for `flush`.
            self.inner.flusher.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.interval;
        runtime.spawn(async move {
            // However the task ends (its runtime shut down too), the next
            // count starts another.
            struct Running(Weak<Inner>);
            impl Drop for Running {
                fn drop(&mut self) {
                    if let Some(inner) = self.0.upgrade() {
                        inner.flusher.store(false, Ordering::Release);
                    }
                }
            }
            let _running = Running(weak.clone());
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = inner.report().await {
                    tracing::warn!(error = %e, "3scale report failed; its counts wait for the next");
                }
            }
        });
    }
}

/// A dropped authorizer (its gateway replaced by a new deployment, say)
/// still reports what it holds, a report in flight included: a task on the
/// current runtime waits for that report, then tries up to ten times, a
/// second apart, and logs (`error`) the hits it gives up on.
impl Drop for ThreeScaleAuthorizer {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let lost = self.inner.held();
            if lost > 0 {
                tracing::error!(
                    lost,
                    "3scale hits dropped with their authorizer: no runtime to report them"
                );
            }
            return;
        };
        let inner = self.inner.clone();
        runtime.spawn(async move {
            for _ in 0..10 {
                // `report` waits for one in flight; its counts, if it
                // failed, are back in the map by then.
                match inner.report().await {
                    Ok(()) if inner.held() == 0 => return,
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "3scale report failed; trying again"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tracing::error!(
                lost = inner.held(),
                "3scale hits given up: 3scale did not take them"
            );
        });
    }
}

/// Counts per report call at most (3scale's reports are form posts; this
/// keeps one well under its body limit).
const MAX_TRANSACTIONS: usize = 500;

impl Inner {
    /// Reports what is pending; on failure the counts go back, added to
    /// any that came in meanwhile.
    ///
    /// Delivery is at least once: a report 3scale took but whose answer
    /// was lost (a timeout) is sent again. At most [`MAX_TRANSACTIONS`]
    /// counts go in one call; more make several.
    async fn report(&self) -> Result<(), StoreError> {
        let _one = self.reporting.lock().await;
        let hits = std::mem::take(&mut *self.lock());
        let mut result = Ok(());
        let mut batch = HashMap::new();
        let mut rest = hits.into_iter().peekable();
        while rest.peek().is_some() {
            batch.clear();
            batch.extend(rest.by_ref().take(MAX_TRANSACTIONS));
            if let Err(e) = self.client.report(&batch).await {
                // This batch and the ones not tried go back.
                let mut pending = self.lock();
                for (k, n) in batch.drain().chain(rest.by_ref()) {
                    let c = pending.entry(k).or_insert(0);
                    *c = c.saturating_add(n);
                }
                result = Err(e);
            }
        }
        result
    }

    /// Hits not yet reported.
    fn held(&self) -> u64 {
        self.lock().values().fold(0u64, |a, n| a.saturating_add(*n))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Who, String), u64>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Authorizer for ThreeScaleAuthorizer {
    async fn authorize(&self, request: AuthorizerRequest) -> Result<Verdict, StoreError> {
        let Some(who) = self.who(&request) else {
            // The layer checks every identity source is present first.
            return Ok(Verdict::refuse(
                "",
                GatewayResponseKind::InvalidApiKey,
                None,
            ));
        };
        let metric = self.config.metric_of(&request.resource, &request.method);
        let principal = who.principal();
        Ok(match self.inner.client.authrep(&who, metric).await? {
            Answer::Authorized => {
                Verdict::allow(principal).with_context("threescale_metric", metric)
            }
            Answer::Unknown | Answer::Refused => {
                Verdict::refuse(principal, GatewayResponseKind::InvalidApiKey, None)
            }
            Answer::LimitsExceeded(reason) => {
                Verdict::refuse(principal, GatewayResponseKind::QuotaExceeded, Some(reason))
            }
        })
    }

    fn cached(&self, request: &AuthorizerRequest, _verdict: &Verdict) {
        self.count(request);
    }

    /// Admitted while 3scale was unreachable: reported when it is back
    /// (3scale drops the hits of a key it does not know).
    fn failed_open(&self, request: &AuthorizerRequest) {
        self.count(request);
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.report().await
    }
}

impl ThreeScaleAuthorizer {
    /// Counts one call for the next report.
    fn count(&self, request: &AuthorizerRequest) {
        // A report names the application, not its key: counts are kept by
        // app id alone (and hold no key).
        let Some(who) = self.who(request).map(Who::without_key) else {
            return;
        };
        let metric = self
            .config
            .metric_of(&request.resource, &request.method)
            .to_owned();
        {
            let mut pending = self.inner.lock();
            let c = pending.entry((who, metric)).or_insert(0);
            *c = c.saturating_add(1);
        }
        self.start_flusher();
    }
}
