//! How a method's callers are authorized, and the `authorizers` section.

use serde::Deserialize;

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
