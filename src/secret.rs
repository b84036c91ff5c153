//! Secrets: API keys, secret access keys, peppers, session tokens.
//!
//! A [`Secret`] is never shown by `Debug` (it prints `Secret(****)`), and is
//! compared in constant time where tollgate compares it. Config errors never
//! quote one (see [`Config::from_json_str`](crate::Config::from_json_str)).
//!
//! `Secret` is a wrapper, not a vault: the value stays in ordinary memory
//! and is not zeroed on drop. What it guarantees is that no `Debug` output,
//! log line or error message of tollgate's shows it by accident; the only
//! way to the value is [`Secret::expose`], which is easy to audit with a
//! search. Where tollgate compares a secret (a SigV4 signature or session
//! token) it uses `subtle`'s constant-time comparison; API keys are not
//! compared at all but looked up by digest (see [`crate::keys`]).
//!
//! ```
//! use tollgate::secret::Secret;
//!
//! let s = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
//! assert_eq!(format!("{s:?}"), "Secret(****)");
//! assert_eq!(s.expose().len(), 40);
//! ```

use std::fmt;

use serde::Deserialize;

/// A secret string (an API key, a secret access key): never shown by `Debug`
/// or `Display`.
///
/// It deserializes from a plain string (`#[serde(transparent)]`), so a
/// config field can be typed `Secret`. It has no `Display` at all, so it
/// cannot end up in a `format!` by accident. The derived `PartialEq` is an
/// ordinary comparison, for tests and config equality; code that checks a
/// presented secret must compare [`expose`](Self::expose)d bytes in
/// constant time instead.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself. Call sites are easy to audit with a search.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}
