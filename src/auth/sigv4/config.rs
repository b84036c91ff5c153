//! The `credentials` and `sigv4` sections.
//!
//! ```yaml
//! credentials:
//!   - access_key_id: AKIDEXAMPLE
//!     secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
//!     principal: reporting-job        # default: the access key id
//! sigv4:
//!   region: us-east-1
//!   service: execute-api              # the default
//!   max_skew: 300                     # seconds, the default
//! ```
//!
//! A method requires a signature with `authorization: sigv4`; these
//! sections say what a signature is checked against. Checks report every
//! problem with its path and never quote a secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{
    Credential, CredentialStore, DEFAULT_MAX_BODY, InMemoryCredentialStore, SigV4Layer, Verifier,
    VerifierSettings,
};
use crate::clock::Clock;
use crate::config::{ByteSize, Issues, PathBuf};
use crate::response::GatewayResponses;
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
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
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

/// The default `sigv4.service`: API Gateway's own.
fn execute_api() -> String {
    "execute-api".to_owned()
}

/// The default `sigv4.max_skew`: AWS's five minutes.
fn five_minutes() -> u64 {
    300
}

/// Checks the `credentials` section: ids well formed and unique, secrets
/// and principals not empty. No message quotes a secret.
pub(crate) fn check_credentials(credentials: &[CredentialConfig], issues: &mut Issues) {
    check_credentials_at(&PathBuf::root().field("credentials"), credentials, issues);
}

/// [`check_credentials`] for a list at `root` (`management.credentials`).
pub(crate) fn check_credentials_at(
    root: &PathBuf,
    credentials: &[CredentialConfig],
    issues: &mut Issues,
) {
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
                format!("`{id}` is also the id of {}", root.index(j).as_str()),
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
    /// Checks the section's fields: region and service not empty,
    /// `max_skew` 1 to 3600 seconds, `max_body` 1 byte to 1 GiB.
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

/// The gateway's SigV4 layer: with a `sigv4` section, a verifier over
/// `store` (or, without one, an in-memory store holding the config's
/// `credentials`); without it, a layer that lets every request through
/// (no method can name `authorization: sigv4` then).
pub(crate) fn layer(
    config: Option<&SigV4Config>,
    credentials: &[CredentialConfig],
    store: Option<Arc<dyn CredentialStore>>,
    clock: Arc<dyn Clock>,
    responses: GatewayResponses,
    body_timeout: Duration,
) -> SigV4Layer {
    let verifier = config.map(|c| {
        let store = store.unwrap_or_else(|| {
            let store = InMemoryCredentialStore::new();
            for cred in credentials {
                let principal = cred
                    .principal
                    .clone()
                    .unwrap_or_else(|| cred.access_key_id.clone());
                store.insert(
                    Credential::new(
                        cred.access_key_id.clone(),
                        cred.secret_access_key.clone(),
                        principal,
                    )
                    .allow_cache_invalidation(cred.can_invalidate_cache),
                );
            }
            Arc::new(store)
        });
        let mut settings = VerifierSettings::new(c.region.clone(), c.service.clone());
        settings.max_skew = c.max_skew;
        settings.unsigned_payload = c.unsigned_payload;
        settings.explain_mismatch = c.explain_signature_errors;
        Verifier::new(settings, store, clock)
    });
    let max_body = config
        .and_then(|c| c.max_body)
        .map_or(DEFAULT_MAX_BODY, |b| {
            usize::try_from(b.0).unwrap_or(usize::MAX)
        });
    SigV4Layer::for_gateway(verifier, responses, max_body, Some(body_timeout))
}
