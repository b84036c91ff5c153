//! The `threescale` section of an authorizer: where 3scale is, which
//! service, how callers identify themselves, and the metric of each method.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Issues, PathBuf};
use crate::secret::Secret;

/// How callers identify their 3scale application: 3scale's authentication
/// modes ("API key", `user_key`; "App ID and App Key", `app_id` with an
/// optional `app_key`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Credentials {
    /// One key, sent as 3scale's `user_key`.
    #[default]
    UserKey,
    /// An application id and, when the application has keys, an
    /// application key: 3scale's `app_id` and `app_key`.
    AppId,
}

/// A `threescale` authorizer's settings (`authorizers.NAME.threescale`).
///
/// ```yaml
/// authorizers:
///   threescale:
///     identity_sources: [header.X-User-Key]   # where the credentials are
///     ttl: 60                                  # verdicts cached per key and method
///     fail_mode: closed
///     threescale:
///       url: https://su1.3scale.net            # the Service Management API
///       service_id: "2555417777820"
///       service_token: "4f2d..."
///       credentials: user_key                  # or app_id
///       metric: hits                           # the default metric
///       metrics: { /pets/POST: create_pet }    # per method, keys as `methods`
/// ```
///
/// `identity_sources` say where the credentials are: one source for
/// `user_key`, one or two for `app_id` (the `app_id`, then the `app_key`).
/// Without them the defaults are APIcast's: `querystring.user_key`, or
/// `querystring.app_id` and `querystring.app_key`.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ThreeScaleConfig {
    /// The Service Management API's base URL, `http://` or `https://` and a
    /// host, no path (`https://su1.3scale.net`, or an on-premises
    /// backend's listener).
    pub url: String,
    /// The 3scale service (product) id.
    pub service_id: String,
    /// The service token; never logged or shown.
    pub service_token: Secret,
    /// The authentication mode. Default `user_key`.
    #[serde(default)]
    pub credentials: Credentials,
    /// The metric a method reports when `metrics` does not name it.
    /// Default `hits`.
    #[serde(default)]
    pub metric: Option<String>,
    /// The metric of each method, keyed as a stage's `methods`
    /// (`/pets/GET`, `/pets/*`, `*/*`), the most specific key winning.
    #[serde(default)]
    pub metrics: BTreeMap<String, String>,
    /// Milliseconds a call to 3scale may take before it counts as 3scale
    /// being unreachable (the authorizer's fail mode). 50 to 60000,
    /// default 5000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Milliseconds between reports of the calls that cached verdicts let
    /// through. 100 to 3600000, default 1000.
    #[serde(default)]
    pub report_interval_ms: Option<u64>,
}

impl std::fmt::Debug for ThreeScaleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreeScaleConfig")
            .field("url", &crate::integration::shown_url(&self.url))
            .field("service_id", &self.service_id)
            .field("service_token", &self.service_token)
            .field("credentials", &self.credentials)
            .field("metric", &self.metric)
            .field("metrics", &self.metrics)
            .field("timeout_ms", &self.timeout_ms)
            .field("report_interval_ms", &self.report_interval_ms)
            .finish()
    }
}

/// 3scale's name rule for a metric's system name: letters, digits, `_`
/// and `-`, 1 to 255 of them.
fn metric_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ThreeScaleConfig {
    /// The identity sources when the authorizer names none: APIcast's
    /// defaults.
    pub(crate) fn default_sources(&self) -> Vec<String> {
        match self.credentials {
            Credentials::UserKey => vec!["querystring.user_key".to_owned()],
            Credentials::AppId => vec![
                "querystring.app_id".to_owned(),
                "querystring.app_key".to_owned(),
            ],
        }
    }

    /// The metric of `resource` `method`: the most specific `metrics` key
    /// (`RESOURCE/METHOD`, `RESOURCE/*`, `*/*`), else `metric`, else `hits`.
    pub(crate) fn metric_of(&self, resource: &str, method: &str) -> &str {
        let default = self.metric.as_deref().unwrap_or("hits");
        if self.metrics.is_empty() {
            return default;
        }
        let exact = format!("{resource}/{method}");
        let any = format!("{resource}/*");
        for key in [exact.as_str(), any.as_str(), "*/*"] {
            if let Some(m) = self.metrics.get(key) {
                return m;
            }
        }
        default
    }

    /// Checks the section at `path`; `sources` are the authorizer's
    /// identity sources as written.
    pub(crate) fn check(&self, path: &PathBuf, sources: &[String], issues: &mut Issues) {
        if !crate::integration::endpoint_ok(&self.url) {
            issues.push(
                &path.field("url"),
                "3scale's URL is http:// or https:// and a host, with no path, query or user",
            );
        }
        if self.service_id.is_empty() || !self.service_id.bytes().all(|b| b.is_ascii_graphic()) {
            issues.push(&path.field("service_id"), "a service id is required");
        }
        if self.service_token.expose().is_empty() {
            issues.push(&path.field("service_token"), "a service token is required");
        }
        let wanted = match self.credentials {
            Credentials::UserKey => 1..=1,
            Credentials::AppId => 1..=2,
        };
        if !sources.is_empty() && !wanted.contains(&sources.len()) {
            issues.push(
                &path.field("credentials"),
                match self.credentials {
                    Credentials::UserKey => "`user_key` takes one identity source",
                    Credentials::AppId => {
                        "`app_id` takes one or two identity sources (the app id, then the app key)"
                    }
                },
            );
        }
        if let Some(m) = &self.metric
            && !metric_ok(m)
        {
            issues.push(
                &path.field("metric"),
                format!("`{m}` is not a metric system name (letters, digits, `_`, `-`)"),
            );
        }
        for (key, m) in &self.metrics {
            let at = path.field("metrics").field(key);
            if !metric_ok(m) {
                issues.push(
                    &at,
                    format!("`{m}` is not a metric system name (letters, digits, `_`, `-`)"),
                );
            }
            if !key.contains('/') {
                issues.push(&at, "a key is RESOURCE/METHOD, RESOURCE/* or */*");
            }
        }
        if let Some(t) = self.timeout_ms
            && !(50..=60_000).contains(&t)
        {
            issues.push(
                &path.field("timeout_ms"),
                format!("must be 50 to 60000 (got {t})"),
            );
        }
        if let Some(t) = self.report_interval_ms
            && !(100..=3_600_000).contains(&t)
        {
            issues.push(
                &path.field("report_interval_ms"),
                format!("must be 100 to 3600000 (got {t})"),
            );
        }
    }
}
