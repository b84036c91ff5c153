//! The `credentials` and `sigv4` sections.

use serde::Deserialize;

use crate::config::ByteSize;
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
