//! The `credentials` and `sigv4` sections.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::{ByteSize, Issues, PathBuf};
use crate::secret::Secret;

/// SigV4 credentials loaded from the config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CredentialConfig {
    /// The access key id, 1 to 128 upper-case letters and digits (`AKIDEXAMPLE`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// Who the caller is, for logs, usage and cache keys. Default: the access key id.
    #[serde(default)]
    pub principal: Option<String>,
    /// Whether requests signed with these credentials may invalidate a cache
    /// entry with `Cache-Control: max-age=0`. Default false.
    #[serde(default)]
    pub can_invalidate_cache: bool,
}

/// SigV4 verification settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SigV4Config {
    /// The region in the credential scope (`us-east-1`).
    pub region: String,
    /// The service in the credential scope. Default `execute-api`.
    #[serde(default = "execute_api")]
    pub service: String,
    /// Allowed clock skew in seconds, `1 ..= 3600`. Default 300.
    #[serde(default = "five_minutes")]
    pub max_skew: u64,
    /// Whether `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted. Default false.
    #[serde(default)]
    pub unsigned_payload: bool,
    /// Largest body hashed for verification. Default 10 MiB.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Answer a signature mismatch with the canonical request and string to
    /// sign, as AWS does. Default false.
    #[serde(default)]
    pub explain_signature_errors: bool,
}

fn execute_api() -> String {
    "execute-api".to_owned()
}

fn five_minutes() -> u64 {
    300
}

/// Checks the `credentials` section: ids well formed and unique, secrets
/// and principals not empty. No message quotes a secret.
pub(crate) fn check_credentials(credentials: &[CredentialConfig], issues: &mut Issues) {
    let root = PathBuf::root().field("credentials");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, c) in credentials.iter().enumerate() {
        let path = root.index(i);
        let id = c.access_key_id.as_str();
        if !(1..=128).contains(&id.len())
            || !id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            issues.push(
                &path.field("access_key_id"),
                "an access key id is 1 to 128 upper-case letters and digits",
            );
        } else if let Some(j) = seen.insert(id, i) {
            issues.push(
                &path.field("access_key_id"),
                format!("`{id}` is also the id of credentials[{j}]"),
            );
        }
        if c.secret_access_key.expose().is_empty() {
            issues.push(&path.field("secret_access_key"), "must not be empty");
        }
        if c.principal.as_deref() == Some("") {
            issues.push(&path.field("principal"), "must not be empty");
        }
    }
}

impl SigV4Config {
    /// Checks the section's fields.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) {
        if self.region.is_empty() {
            issues.push(&path.field("region"), "must not be empty");
        }
        if self.service.is_empty() {
            issues.push(&path.field("service"), "must not be empty");
        }
        if !(1..=3600).contains(&self.max_skew) {
            issues.push(
                &path.field("max_skew"),
                "must be between 1 and 3600 seconds",
            );
        }
        if let Some(b) = self.max_body
            && (b.0 == 0 || b.0 > 1 << 30)
        {
            issues.push(&path.field("max_body"), "must be between 1 byte and 1GiB");
        }
    }
}
