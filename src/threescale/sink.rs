//! The `threescale` usage sink: a reporter's batches as 3scale reports.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::client::{Client, Who};
use super::config::ThreeScaleConfig;
use crate::usage::{SinkError, UsageEvent, UsageSink};

/// Which field of a [`UsageEvent`] names the caller's 3scale application
/// (its `app_id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Application {
    /// The API key's id (`api_key_id`): tollgate keeps the keys and plans,
    /// 3scale has an application per key, with the key's id as its
    /// `app_id`. The default.
    #[default]
    KeyId,
    /// The SigV4 or authorizer principal: the `app_id` a `threescale`
    /// authorizer in `app_id` mode puts there, or an authorizer of your
    /// own's.
    Principal,
}

/// A [`UsageSink`] reporting each batch to 3scale in one `report` call
/// (`POST /transactions.xml`): one transaction per application, with the
/// hits of each method's metric (the metric as a `threescale` section's
/// `metric` and `metrics` say; [`ThreeScaleConfig`]).
///
/// Only calls that reached the API are reported: an event with a
/// gateway rejection (a missing key, a throttle, a failed authorizer) or
/// without the [`Application`] field is left out, as 3scale counts only
/// authorized calls. 3scale answering anything but a 2xx, or not in the
/// timeout, fails the batch, and the [`Reporter`](crate::usage::Reporter)
/// sends it again: no hit is lost while the reporter retries, and 3scale
/// taking a batch but failing to answer counts it twice (at least once).
///
/// Do not also report with a `threescale` authorizer for the same calls:
/// its `authrep` calls and batched reports already count every call it
/// lets through.
pub struct ThreeScaleSink {
    client: Client,
    config: ThreeScaleConfig,
    application: Application,
}

impl fmt::Debug for ThreeScaleSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreeScaleSink")
            .field("client", &self.client)
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl ThreeScaleSink {
    /// Reports to the service that `config` names (its `url`,
    /// `service_id`, `service_token`, `metric`, `metrics` and
    /// `timeout_ms`; `credentials` and `report_interval_ms` are the
    /// authorizer's and not read here).
    ///
    /// # Errors
    ///
    /// What the authorizer's section refuses: a URL that is not `http://`
    /// or `https://` and a host, no service id or token, a metric that is
    /// not a system name, a timeout out of bounds.
    pub fn new(config: ThreeScaleConfig) -> Result<Self, SinkError> {
        let mut issues = crate::config::Issues::default();
        config.check(&crate::config::PathBuf::root(), &[], &mut issues);
        if let Some(first) = issues.0.first() {
            return Err(SinkError::new(first.to_string()));
        }
        let client = Client::new(
            &config.url,
            &config.service_id,
            config.service_token.clone(),
            Duration::from_millis(config.timeout_ms.unwrap_or(5000)),
        )
        .map_err(SinkError::new)?;
        Ok(Self {
            client,
            config,
            application: Application::default(),
        })
    }

    /// Which field names the application. Default [`Application::KeyId`].
    pub fn application(mut self, application: Application) -> Self {
        self.application = application;
        self
    }

    /// The batch's hits per application and metric.
    fn hits(&self, batch: &[UsageEvent]) -> HashMap<(Who, String), u64> {
        let mut hits = HashMap::new();
        for e in batch {
            if e.rejection.is_some() {
                continue;
            }
            let id = match self.application {
                Application::KeyId => e.api_key_id.as_deref(),
                Application::Principal => e.principal.as_deref(),
            };
            let Some(id) = id.filter(|s| !s.is_empty()) else {
                continue;
            };
            let metric = match &e.endpoint {
                Some(ep) => self.config.metric_of(ep.resource(), ep.method_name()),
                None => self.config.metric_of("", ""),
            };
            let who = Who::App {
                id: id.to_owned(),
                key: None,
            };
            *hits.entry((who, metric.to_owned())).or_insert(0) += 1;
        }
        hits
    }
}

#[async_trait]
impl UsageSink for ThreeScaleSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        let hits = self.hits(batch);
        self.client
            .report(&hits)
            .await
            .map_err(|e| SinkError::new(e.to_string()))
    }
}
