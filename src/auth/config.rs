//! How a method's callers are authorized, and the `authorizers` section.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::authorizer::{Authorizer, AuthorizerLayer, Configured};
use crate::clock::Clock;
use crate::config::{ConfigError, ConfigErrorKind, ConfigIssue, Issues, Merged, PathBuf};
use crate::response::GatewayResponses;

use crate::store::FailMode;
use crate::threescale::{ThreeScaleAuthorizer, ThreeScaleConfig};

/// A custom authorizer: where its identity comes from and how long its
/// verdicts are cached.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct AuthorizerConfig {
    /// `header.NAME`, `querystring.NAME` or `stageVariables.NAME`; every one
    /// must be present, or the request gets 401 without a call.
    #[serde(default)]
    pub identity_sources: Vec<String>,
    /// Seconds a verdict is cached per identity, `0 ..= 3600`; 0 turns
    /// caching off. Default 300.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// What an authorizer error does. Default `closed` (503).
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
    /// A `threescale` authorizer: 3scale decides, no implementation is
    /// registered ([`threescale`](crate::threescale)). Its
    /// `identity_sources` may then be left out.
    #[serde(default, skip_serializing)]
    pub threescale: Option<ThreeScaleConfig>,
}

/// How callers of a method are authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Authorization {
    /// Anyone may call (an API key may still be required).
    #[default]
    None,
    /// The request must carry a valid AWS Signature Version 4.
    Sigv4,
    /// A custom authorizer decides.
    Authorizer,
}

/// The longest an authorizer's verdict may be cached, as API Gateway's: an hour.
const MAX_TTL: u32 = 3600;

/// How long a verdict is cached without `ttl`, as API Gateway's: 300 s.
const DEFAULT_TTL: u32 = 300;

/// Checks the `authorizers` section.
pub(crate) fn check_authorizers(
    authorizers: &BTreeMap<String, AuthorizerConfig>,
    issues: &mut Issues,
) {
    let root = PathBuf::root().field("authorizers");
    for (name, a) in authorizers {
        let path = root.field(name);
        if let Some(t) = &a.threescale {
            t.check(&path.field("threescale"), &a.identity_sources, issues);
        }
        if a.identity_sources.is_empty() && a.threescale.is_none() {
            issues.push(
                &path.field("identity_sources"),
                "at least one identity source is required",
            );
        }
        for (i, src) in a.identity_sources.iter().enumerate() {
            let ok = src.split_once('.').is_some_and(|(kind, n)| {
                !n.is_empty() && matches!(kind, "header" | "querystring" | "stageVariables")
            });
            if !ok {
                issues.push(
                    &path.field("identity_sources").index(i),
                    format!("`{src}` is not an identity source (header.NAME, querystring.NAME, stageVariables.NAME)"),
                );
            }
        }
        if let Some(ttl) = a.ttl
            && ttl > MAX_TTL
        {
            issues.push(
                &path.field("ttl"),
                format!("must be <= {MAX_TTL} seconds (got {ttl})"),
            );
        }
    }
}

impl crate::config::Overlay for Authorization {}

/// Resolves how one method's callers are authorized from its merged
/// `authorization` and `authorizer`, reported at the deepest layer that named
/// either: `authorization: authorizer` needs a known `authorizer`, and
/// `authorization: sigv4` needs the root `sigv4` section (`sigv4_configured`).
pub(crate) fn resolve_method(
    authorization: &Merged<Authorization>,
    authorizer: &Merged<String>,
    authorizers: &BTreeMap<String, AuthorizerConfig>,
    sigv4_configured: bool,
    issues: &mut Issues,
) -> (Authorization, Option<Arc<str>>) {
    let path = if authorizer.depth > authorization.depth {
        &authorizer.path
    } else {
        &authorization.path
    };
    let kind = authorization.value.unwrap_or_default();
    let name = authorizer.value.as_deref().map(Arc::<str>::from);
    if kind == Authorization::Authorizer {
        match &name {
            None => issues.push(
                &path.field("authorizer"),
                "`authorization: authorizer` needs `authorizer: NAME`",
            ),
            Some(n) if !authorizers.contains_key(&**n) => issues.push(
                &path.field("authorizer"),
                format!("unknown authorizer `{n}`"),
            ),
            Some(_) => {}
        }
    }
    if kind == Authorization::Sigv4 && !sigv4_configured {
        issues.push(
            &PathBuf::root().field("sigv4"),
            "is required because a method uses `authorization: sigv4`",
        );
    }
    (kind, name)
}

/// The gateway's authorizer layer: each configured authorizer with the
/// implementation registered under its name (`GatewayBuilder::authorizer`).
/// An authorizer without one is an error at `authorizers.NAME`.
pub(crate) fn layer(
    config: &BTreeMap<String, AuthorizerConfig>,
    implementations: &HashMap<String, Arc<dyn Authorizer>>,
    clock: &Arc<dyn Clock>,
    responses: GatewayResponses,
) -> Result<AuthorizerLayer, ConfigError> {
    let mut configured = HashMap::new();
    let mut missing = Vec::new();
    for (name, a) in config {
        let ttl = Duration::from_secs(u64::from(a.ttl.unwrap_or(DEFAULT_TTL)));
        let fail_mode = a.fail_mode.unwrap_or(FailMode::Closed);
        if let Some(t) = &a.threescale {
            let at = PathBuf::root().field("authorizers").field(name);
            if implementations.contains_key(name) {
                missing.push(ConfigIssue::new(
                    at.as_str(),
                    "has a `threescale` section; no implementation may be registered for it",
                ));
                continue;
            }
            match ThreeScaleAuthorizer::new(t, &a.identity_sources) {
                Ok(imp) => {
                    let sources = imp.sources().to_vec();
                    let mut c =
                        Configured::new(Arc::new(imp), sources, ttl, fail_mode, clock.clone());
                    c.per_method = true;
                    configured.insert(Arc::<str>::from(name.as_str()), c);
                }
                Err(e) => missing.push(ConfigIssue::new(at.field("threescale").as_str(), e)),
            }
            continue;
        }
        let Some(imp) = implementations.get(name) else {
            missing.push(ConfigIssue::new(
                PathBuf::root().field("authorizers").field(name).as_str(),
                "no implementation is registered for it (GatewayBuilder::authorizer)",
            ));
            continue;
        };
        let c = Configured::new(
            imp.clone(),
            a.identity_sources.clone(),
            ttl,
            fail_mode,
            clock.clone(),
        );
        configured.insert(Arc::<str>::from(name.as_str()), c);
    }
    if missing.is_empty() {
        Ok(AuthorizerLayer::new(configured, responses))
    } else {
        Err(ConfigError::new(ConfigErrorKind::Invalid, missing))
    }
}
