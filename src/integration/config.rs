//! A method's `integration` setting.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where a method's requests go.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum IntegrationConfig {
    /// The inner service given to `Gateway::service` (the default).
    #[default]
    Service,
    /// An upstream HTTP server.
    Http {
        /// A URL template: `http://{stageVariables.host}/pets/{petId}`;
        /// the request's query is appended. Give this or `base`.
        #[serde(default)]
        url: Option<String>,
        /// A base URL the request path (after the stage) and query are
        /// appended to. Give this or `url`.
        #[serde(default)]
        base: Option<String>,
        /// Milliseconds to wait for the response head, `50 ..= 300000`. Default 29000.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// A fixed answer.
    Mock {
        /// The status. Default 200.
        #[serde(default)]
        status: Option<u16>,
        /// Response headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The body. Default empty.
        #[serde(default)]
        body: String,
    },
}
