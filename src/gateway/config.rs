//! The configuration model, as read from YAML or JSON.
//!
//! Field names and shapes follow API Gateway's where it has them; the README's "Configuration
//! reference" lists every field with its default and bounds. Everything here is
//! plain data: [`Config::from_yaml_str`] and friends parse *and* validate, and
//! the [`Gateway`](crate::Gateway) resolves it into per-route tables.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::auth::sigv4::{CredentialConfig, SigV4Config};
pub use crate::auth::{Authorization, AuthorizerConfig};
pub use crate::body::LimitsConfig;
pub use crate::cache::CacheConfig;
pub use crate::config::ByteSize;
pub use crate::integration::IntegrationConfig;
pub use crate::keys::{ApiKeyOptions, ApiKeySource, KeyConfig};
use crate::mapping::MappingConfig;
pub use crate::mapping::MappingLimitsConfig;
pub use crate::plans::{PlanConfig, PlanMethodConfig, QuotaConfig};
use crate::response::ResponseOverride;
pub use crate::secret::Secret;
pub use crate::throttle::{ThrottleConfig, ThrottleOptions};

/// A whole gateway configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct Config {
    /// The API's name, used in metrics and logs. Default `tollgate`.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text about the API (API Gateway's `RestApi.description`): shown
    /// by the management API's GetRestApi, set by UpdateRestApi's
    /// `/description`, read from and exported as OpenAPI's
    /// `info.description`. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The gateway-wide limit: one bucket shared by every request (API
    /// Gateway's account-level throttle). Absent: no gateway-wide limit.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Resource path templates and the methods each accepts.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// API-level method settings: the outermost layer, under every stage's
    /// `settings` and its method overrides (each replaces only the fields
    /// it names).
    #[serde(default)]
    pub settings: MethodSettingsConfig,
    /// API-level method settings keyed `RESOURCE/METHOD` (`/pets/GET`) or
    /// `RESOURCE/*`: over `settings`, under every stage's settings. Part
    /// of the definition, so a deployment snapshots them (where an
    /// imported document's integrations go through the management API);
    /// a stage's `methods` override them field by field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, MethodSettingsConfig>,
    /// Stages by name; requests are addressed as `/{stage}/{resource}`.
    #[serde(default)]
    pub stages: BTreeMap<String, StageConfig>,
    /// Usage plans by name.
    #[serde(default)]
    pub plans: BTreeMap<String, PlanConfig>,
    /// API keys loaded into the in-memory key store. Never serialized
    /// (a lifecycle's stored definitions hold no keys).
    #[serde(default, skip_serializing)]
    pub keys: Vec<KeyConfig>,
    /// SigV4 credentials loaded into the in-memory credential store. Never
    /// serialized.
    #[serde(default, skip_serializing)]
    pub credentials: Vec<CredentialConfig>,
    /// SigV4 verification settings; required when a method uses `authorization: sigv4`.
    #[serde(default)]
    pub sigv4: Option<SigV4Config>,
    /// Gateway response overrides by kind (`RESOURCE_NOT_FOUND`, `DEFAULT_4XX`, ...).
    #[serde(default)]
    pub responses: BTreeMap<String, ResponseOverride>,
    /// Whose defaults the gateway responses follow: `http` (the default)
    /// or `aws` (API Gateway's: an unknown path or method is 403
    /// `MISSING_AUTHENTICATION_TOKEN`, a failed integration 504).
    #[serde(default)]
    pub responses_profile: crate::response::ResponsesProfile,
    /// How the throttle layer behaves (headers, store failures, per-client limit).
    #[serde(default)]
    pub throttle_options: ThrottleOptions,
    /// Where API keys are read from and how they are hashed. Never
    /// serialized (it may hold the pepper).
    #[serde(default, skip_serializing)]
    pub api_key_options: ApiKeyOptions,
    /// Custom authorizers by name; implementations are registered with
    /// `GatewayBuilder::authorizer`.
    #[serde(default)]
    pub authorizers: BTreeMap<String, AuthorizerConfig>,
    /// Models by name (letters and digits): JSON Schema draft 4 documents
    /// that request validators check bodies against (API Gateway's models).
    /// See [`Models`](crate::validate::Models).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, serde_json::Value>,
    /// Request validators by name: what each checks (API Gateway's
    /// `x-amazon-apigateway-request-validators`); a method names one with
    /// `request_validator`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub validators: BTreeMap<String, crate::validate::RequestValidatorConfig>,
    /// Bounds on mapping templates.
    #[serde(default)]
    pub mapping_limits: MappingLimitsConfig,
    /// The language of mapping templates that do not name theirs
    /// (`language` on a mapping): `jinja` (the default) or `vtl`, API
    /// Gateway's (see [`vtl`](crate::vtl)).
    #[serde(default)]
    pub template_language: crate::mapping::TemplateLanguage,
    /// Bounds on what one client may hold: how long a body read whole may take.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Custom domain names by name (`api.example.test`), each with its
    /// base path mappings; see [`route::domain`](crate::route::DomainConfig).
    #[serde(default)]
    pub domains: BTreeMap<String, crate::route::DomainConfig>,
    /// Turns off the execute-api form (`/{stage}/...` on a host that is no
    /// custom domain): such requests get 403 `UNMAPPED_REQUEST` (API
    /// Gateway's `disableExecuteApiEndpoint`). Default false.
    #[serde(default)]
    pub disable_execute_api_endpoint: bool,
    /// Several APIs, by id, each from a file of its own (the multi-API
    /// shape; see [`Lifecycle`](crate::Lifecycle)). With `apis`, this file
    /// holds no `routes` or `stages`; its `domains` name each mapping's
    /// `api`, its `plans` name stages `api/stage`. A
    /// [`Gateway`](crate::Gateway) refuses it; a lifecycle serves it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apis: BTreeMap<String, ApiSourceConfig>,
    /// Where a lifecycle keeps its deployments (`store: memory`, `redis`
    /// or `{ dir: PATH }`). Read by the application, which attaches the
    /// store ([`Lifecycle::attach`](crate::Lifecycle::attach)); the
    /// petstore does. Default: memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments: Option<DeploymentsConfig>,
    /// A data-plane path (`/_usage`) where a key holder reads their own
    /// plans, quota used and remaining, and throttles with their own API
    /// key: see [`plans`](crate::plans#the-usage-endpoint). Matched exactly,
    /// `GET` only, before any stage. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_endpoint: Option<String>,
    /// The management API's settings (its credentials never serialized):
    /// see [`ManagementConfig`](crate::management::ManagementConfig).
    #[serde(default, skip_serializing)]
    pub management: Option<crate::management::ManagementConfig>,
}

/// Where one API of a multi-API config comes from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct ApiSourceConfig {
    /// A tollgate config file (routes, stages, settings; relative to the
    /// file that names it).
    #[serde(default)]
    pub config: Option<String>,
    /// An OpenAPI export (3.0 or Swagger 2.0, JSON or YAML, relative to the
    /// file that names it), imported as [`openapi::import`](crate::openapi::import)
    /// does (its methods on stage `prod`, each warning logged).
    #[serde(default)]
    pub openapi: Option<String>,
}

/// `deployments:` in a config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct DeploymentsConfig {
    /// The store. Default `memory`.
    #[serde(default)]
    pub store: DeploymentStoreConfig,
}

/// Which [`DeploymentStore`](crate::deployments::DeploymentStore) keeps a
/// lifecycle's state.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeploymentStoreConfig {
    /// In memory: history lasts as long as the process.
    #[default]
    Memory,
    /// Redis (feature `redis`): shared by every process on it.
    Redis,
    /// A directory (relative to the config file): survives a restart.
    Dir(String),
}

/// Settings of a method: the stage's `settings` (every method's default) or a
/// `RESOURCE/METHOD` override, which replaces only the fields it names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct MethodSettingsConfig {
    /// This method's own bucket (each method of a stage gets one).
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Response caching.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Whether callers must present an API key. Default false.
    #[serde(default)]
    pub api_key_required: Option<bool>,
    /// How callers are authorized. Default `none`.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// The custom authorizer, with `authorization: authorizer`.
    #[serde(default)]
    pub authorizer: Option<String>,
    /// Where requests go. Default: the inner service.
    #[serde(default)]
    pub integration: Option<IntegrationConfig>,
    /// Parameter mappings, body templates and integration responses.
    #[serde(default)]
    pub mapping: Option<MappingConfig>,
    /// Who may call, by source address (a resource policy on
    /// `aws:SourceIp`). Default: anyone.
    #[serde(default)]
    pub policy: Option<crate::edge::PolicyConfig>,
    /// Which browser origins may call, answered by the gateway (preflights
    /// and the headers of every response). Default: no CORS.
    #[serde(default)]
    pub cors: Option<crate::edge::CorsConfig>,
    /// Responses of at least this many bytes are compressed (gzip, deflate)
    /// when the client prefers a coding the gateway makes; compressed
    /// request bodies are decoded. `0 ..= 10485760`; absent: off (API
    /// Gateway's `minimumCompressionSize`).
    #[serde(default)]
    pub minimum_compression_size: Option<u64>,
    /// Also `br` (beyond API Gateway). Default false.
    #[serde(default)]
    pub compression_br: Option<bool>,
    /// Media types a mapped method treats as binary (API Gateway's
    /// `binaryMediaTypes`): `type/subtype`, `type/*` or `*/*`. Such a body
    /// is never rendered by a template; `mapping`'s `content_handling`
    /// base64-converts. See [`BinaryMediaTypes`](crate::mapping::BinaryMediaTypes).
    /// Default: none.
    #[serde(default)]
    pub binary_media_types: Option<Vec<String>>,
    /// The request validator (a name in `validators`; API Gateway's
    /// `requestValidatorId`). In the API-level `settings`, the API's
    /// default. Default: none, nothing validated. See
    /// [`validate`](crate::validate).
    #[serde(default)]
    pub request_validator: Option<String>,
    /// The method's request parameters, `method.request.path|querystring|header.NAME`
    /// to whether it is required (API Gateway's `requestParameters`).
    #[serde(default)]
    pub request_parameters: Option<BTreeMap<String, bool>>,
    /// The model (a name in `models`) of each request media type, or of
    /// `$default` (API Gateway's `requestModels`).
    #[serde(default)]
    pub request_models: Option<BTreeMap<String, String>>,
}

/// One stage: `/{stage}/...`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct StageConfig {
    /// Stage variables, available to mappings and the inner service.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Defaults for every method of the stage (API Gateway's `*/*`).
    #[serde(default)]
    pub settings: MethodSettingsConfig,
    /// Size of the stage's response cache. Default 64 MiB.
    #[serde(default)]
    pub cache_capacity: Option<ByteSize>,
    /// Overrides keyed `RESOURCE/METHOD` (`/pets/GET`), `RESOURCE/*` or `*/*`.
    #[serde(default)]
    pub methods: BTreeMap<String, MethodSettingsConfig>,
    /// A canary release on this stage (API Gateway's `canarySettings`),
    /// served by a [`Lifecycle`](crate::Lifecycle) only: a
    /// [`Gateway`](crate::Gateway) built from a config with one refuses it.
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
}

/// A stage's canary in a config file: another file's definition (or the
/// stage's own) deployed as the canary, with a share of the traffic.
///
/// ```yaml
/// stages:
///   prod:
///     canary:
///       config: petstore-v2.yaml        # relative to this file
///       percent_traffic: 10
///       stage_variable_overrides: { color: green }
///       use_stage_cache: false
///       sticky: api_key                 # or client_ip, or header.NAME
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct CanaryConfig {
    /// A tollgate config whose definition (routes, settings, integrations,
    /// mappings, responses; its stages ignored) the canary serves; a
    /// relative path is read from the directory of the file that names it.
    /// Absent: the canary serves the stage's own deployment (a canary of
    /// stage variables only).
    #[serde(default)]
    pub config: Option<String>,
    /// The share of the stage's requests sent to the canary, `0 ..= 100`
    /// percent. Default 0.
    #[serde(default)]
    pub percent_traffic: f64,
    /// Stage variables the canary sees instead of the stage's.
    #[serde(default)]
    pub stage_variable_overrides: BTreeMap<String, String>,
    /// Whether canary requests use the stage cache. Default false.
    #[serde(default)]
    pub use_stage_cache: bool,
    /// Keeps each caller on one side: `api_key`, `client_ip` or
    /// `header.NAME`. Default: a random side per request, as API Gateway.
    #[serde(default)]
    pub sticky: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("64MiB"), Some(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("512 KB"), Some(ByteSize(512_000)));
        assert_eq!(ByteSize::parse("10"), Some(ByteSize(10)));
        assert_eq!(ByteSize::parse("1 TiB"), None);
        assert_eq!(ByteSize::parse("MiB"), None);
        assert_eq!(ByteSize::parse("99999999999999999999GiB"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let k = KeyConfig {
            name: "demo".into(),
            value: Some(Secret::new("super-secret-value-123")),
            ..KeyConfig::default()
        };
        let shown = format!("{k:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("demo"));
    }
}
