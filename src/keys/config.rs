//! The `keys` and `api_key_options` sections.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::HeaderName;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ApiKeyLayer, InMemoryKeyStore, KeyHasher, KeySource, KeyStore};
use crate::clock::Clock;
use crate::config::{ConfigError, ConfigErrorKind, ConfigIssue, Issues, PathBuf};
use crate::plans::PlanBook;
use crate::response::GatewayResponses;
use crate::secret::Secret;
use crate::store::FailMode;

/// Where the API key layer reads keys, and how it hashes them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ApiKeyOptions {
    /// `header` (default) or `authorizer` (the key an authorizer returns, API
    /// Gateway's `usageIdentifierKey`).
    #[serde(default)]
    pub source: Option<ApiKeySource>,
    /// The header carrying the key. Default `x-api-key`.
    #[serde(default)]
    pub header: Option<String>,
    /// A query parameter to read the key from instead of the header.
    #[serde(default)]
    pub query: Option<String>,
    /// A secret pepper: keys are hashed with HMAC-SHA-256 under it (and
    /// `value_sha256` must then hold that HMAC).
    #[serde(default)]
    pub pepper: Option<Secret>,
    /// What a key store failure does. Default `closed` (503).
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
}

/// Where API keys come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ApiKeySource {
    /// A header (or a query parameter when `query` is set).
    #[default]
    Header,
    /// The key an authorizer found.
    Authorizer,
}

/// An API key loaded from the config. Its value is hashed at load and never kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct KeyConfig {
    /// A unique name.
    pub name: String,
    /// The key itself, 20 to 128 printable ASCII characters. Give this or `value_sha256`.
    #[serde(default)]
    pub value: Option<Secret>,
    /// The SHA-256 of the key, 64 hex digits, for configs that must not hold keys.
    #[serde(default)]
    pub value_sha256: Option<String>,
    /// Plans the key belongs to (at most one per stage).
    #[serde(default)]
    pub plans: Vec<String>,
    /// Disabled keys are rejected. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// RFC 3339 time after which the key is rejected.
    #[serde(default)]
    pub expires: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether requests with this key may invalidate a cache entry with
    /// `Cache-Control: max-age=0`. Default false.
    #[serde(default)]
    pub can_invalidate_cache: bool,
}

fn yes() -> bool {
    true
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            value: None,
            value_sha256: None,
            plans: Vec::new(),
            enabled: true,
            description: None,
            expires: None,
            tags: BTreeMap::new(),
            can_invalidate_cache: false,
        }
    }
}

impl ApiKeyOptions {
    /// Checks the options; the pepper is never quoted.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) {
        if let Some(h) = &self.header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            issues.push(
                &path.field("header"),
                format!("`{h}` is not a valid header name"),
            );
        }
        if self.query.as_deref() == Some("") {
            issues.push(&path.field("query"), "must not be empty");
        }
        if self.pepper.as_ref().is_some_and(|p| p.expose().len() < 16) {
            issues.push(&path.field("pepper"), "must be at least 16 characters");
        }
    }
}

/// Checks the `keys` section: names unique, exactly one of `value` and
/// `value_sha256` (a value never quoted), no key given twice, plans that
/// exist and cover each stage at most once, expiry times.
pub(crate) fn check_keys(
    keys: &[KeyConfig],
    plans: &BTreeMap<String, crate::plans::PlanConfig>,
    issues: &mut Issues,
) {
    let root = PathBuf::root().field("keys");
    let mut by_digest: HashMap<[u8; 32], usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let path = root.index(i);
        if key.name.is_empty() {
            issues.push(&path.field("name"), "must not be empty");
        } else if let Some(j) = by_name.insert(&key.name, i) {
            issues.push(
                &path.field("name"),
                format!("`{}` is also the name of keys[{j}]", key.name),
            );
        }
        let digest = match (&key.value, &key.value_sha256) {
            (Some(_), Some(_)) => {
                issues.push(&path, "give `value` or `value_sha256`, not both");
                None
            }
            (None, None) => {
                issues.push(&path, "`value` or `value_sha256` is required");
                None
            }
            (Some(value), None) => {
                let v = value.expose();
                if !super::is_valid_key(v) {
                    // The message must not echo the value.
                    issues.push(
                        &path.field("value"),
                        "an API key is 20 to 128 printable ASCII characters without spaces",
                    );
                    None
                } else {
                    Some(Sha256::digest(v.as_bytes()).into())
                }
            }
            (None, Some(hex)) => match crate::hex::decode::<32>(hex) {
                Some(d) => Some(d),
                None => {
                    issues.push(&path.field("value_sha256"), "must be 64 hexadecimal digits");
                    None
                }
            },
        };
        if let Some(d) = digest
            && let Some(j) = by_digest.insert(d, i)
        {
            issues.push(&path, format!("has the same key value as keys[{j}]"));
        }
        let mut stage_owner: HashMap<&str, &str> = HashMap::new();
        for (pi, plan) in key.plans.iter().enumerate() {
            let ppath = path.field("plans").index(pi);
            let Some(p) = plans.get(plan) else {
                issues.push(&ppath, format!("unknown plan `{plan}`"));
                continue;
            };
            for s in &p.stages {
                if let Some(other) = stage_owner.insert(s, plan)
                    && other != plan
                {
                    issues.push(
                            &ppath,
                            format!("plans `{other}` and `{plan}` both cover stage `{s}` (a key may be in one plan per stage)"),
                        );
                }
            }
        }
        if let Some(t) = &key.expires
            && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            issues.push(
                &path.field("expires"),
                "must be an RFC 3339 time such as 2027-01-31T00:00:00Z",
            );
        }
    }
}

impl ApiKeyOptions {
    /// How key values are digested: SHA-256, keyed with `pepper` when given.
    pub(crate) fn hasher(&self) -> KeyHasher {
        self.pepper
            .clone()
            .map_or_else(KeyHasher::sha256, KeyHasher::peppered)
    }

    /// Where keys are read from: `source: authorizer`, else the `query`
    /// parameter, else the `header` (checked to be a header name), else
    /// `x-api-key`.
    pub(crate) fn key_source(&self) -> KeySource {
        match (self.source.unwrap_or_default(), &self.query, &self.header) {
            (ApiKeySource::Authorizer, ..) => KeySource::authorizer(),
            (_, Some(q), _) => KeySource::query(q.as_str()),
            (_, None, Some(h)) => match HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => KeySource::header(name),
                Err(_) => KeySource::default(),
            },
            _ => KeySource::default(),
        }
    }

    /// The gateway's API key layer over `store`, reading plans from `plans`
    /// and refusing with `responses`. A store failure fails closed (503)
    /// unless `fail_mode: open`.
    pub(crate) fn layer(
        &self,
        store: Arc<dyn KeyStore>,
        plans: PlanBook,
        clock: Arc<dyn Clock>,
        responses: GatewayResponses,
    ) -> ApiKeyLayer {
        ApiKeyLayer::for_gateway(store, plans)
            .source(self.key_source())
            .hasher(self.hasher())
            .clock(clock)
            .responses(responses)
            .fail_mode(self.fail_mode.unwrap_or(FailMode::Closed))
    }
}

/// An in-memory store holding the config's `keys`, digested with `hasher`.
/// A key that cannot be stored (a duplicate value, say) is an error at
/// `keys[i]`.
pub(crate) fn load_keys(
    keys: &[KeyConfig],
    hasher: &KeyHasher,
    now: time::OffsetDateTime,
) -> Result<InMemoryKeyStore, ConfigError> {
    let store = InMemoryKeyStore::new();
    let mut issues = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let loaded = super::prepare(k.into(), hasher, now).and_then(|(d, r)| store.insert(d, r));
        if let Err(e) = loaded {
            issues.push(ConfigIssue::new(
                PathBuf::root().field("keys").index(i).as_str(),
                e.to_string(),
            ));
        }
    }
    if issues.is_empty() {
        Ok(store)
    } else {
        Err(ConfigError::new(ConfigErrorKind::Invalid, issues))
    }
}
