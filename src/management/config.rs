//! The `management` section: who may call the management API, and where.

use serde::Deserialize;

use crate::auth::sigv4::CredentialConfig;
use crate::config::{Issues, PathBuf};

/// The management API's settings (the config's `management` section).
///
/// ```yaml
/// management:
///   region: us-east-1                 # the credential scope's region; the default
///   credentials:                      # who may call it (SigV4, service `apigateway`)
///     - access_key_id: AKIDADMIN
///       secret_access_key: admin-secret-example
///       principal: ops                # in audit events; default: the access key id
///   max_body: 10MiB                   # largest request body (an OpenAPI import); the default
/// ```
///
/// Without credentials every call is refused (403
/// `UnrecognizedClientException`): the API is never open. The secrets are
/// never serialized, logged or shown by `Debug`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ManagementConfig {
    /// The region the caller signs for, as `aws --region` (`us-east-1`,
    /// the default).
    #[serde(default = "us_east_1")]
    pub region: String,
    /// The credentials a call may be signed with.
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
    /// The largest request body read, 1 byte to 100 MiB. Default 10 MiB
    /// (API Gateway's import limit is 6 MB for a definition).
    #[serde(default)]
    pub max_body: Option<crate::config::ByteSize>,
}

impl Default for ManagementConfig {
    fn default() -> Self {
        Self {
            region: us_east_1(),
            credentials: Vec::new(),
            max_body: None,
        }
    }
}

fn us_east_1() -> String {
    "us-east-1".to_owned()
}

/// The default of the config's `management.max_body`: 10 MiB.
pub const DEFAULT_MAX_BODY: usize = 10 << 20;

impl ManagementConfig {
    /// The body limit in bytes.
    pub(crate) fn max_body(&self) -> usize {
        self.max_body.map_or(DEFAULT_MAX_BODY, |b| {
            usize::try_from(b.0).unwrap_or(usize::MAX)
        })
    }

    /// Checks the section: a region, well-formed unique credentials, a body
    /// limit in range. No message quotes a secret.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) {
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            issues.push(
                &path.field("region"),
                "a region is lower-case letters, digits and `-` (`us-east-1`)",
            );
        }
        crate::auth::sigv4::check_credentials_at(
            &path.field("credentials"),
            &self.credentials,
            issues,
        );
        if let Some(b) = self.max_body
            && (b.0 == 0 || b.0 > 100 << 20)
        {
            issues.push(&path.field("max_body"), "must be between 1 byte and 100MiB");
        }
    }
}
