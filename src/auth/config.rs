//! How a method's callers are authorized, and the `authorizers` section.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Issues, PathBuf};

use crate::store::FailMode;

/// A custom authorizer: where its identity comes from and how long its
/// verdicts are cached.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AuthorizerConfig {
    /// `header.NAME`, `querystring.NAME` or `stageVariables.NAME`; every one
    /// must be present, or the request gets 401 without a call.
    pub identity_sources: Vec<String>,
    /// Seconds a verdict is cached per identity, `0 ..= 3600`; 0 turns
    /// caching off. Default 300.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// What an authorizer error does. Default `closed` (503).
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
}

/// How callers of a method are authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
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

/// Checks the `authorizers` section.
pub(crate) fn check_authorizers(
    authorizers: &BTreeMap<String, AuthorizerConfig>,
    issues: &mut Issues,
) {
    let root = PathBuf::root().field("authorizers");
    for (name, a) in authorizers {
        let path = root.field(name);
        if a.identity_sources.is_empty() {
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
