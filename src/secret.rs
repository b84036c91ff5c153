//! Secrets: API keys, secret access keys, peppers, session tokens.
//!
//! A [`Secret`] is never shown by `Debug` (it prints `Secret(****)`), and is
//! compared in constant time where tollgate compares it. Config errors never
//! quote one (see [`Config::from_json_str`](crate::Config::from_json_str)).
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
