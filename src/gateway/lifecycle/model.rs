//! The lifecycle's records: APIs, deployments, stages, canary settings,
//! custom domains, and the errors of its operations.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderName;

use crate::config::ConfigError;
use crate::gateway::{Config, StageConfig};

/// An API: an id, a name and its current definition (API Gateway's
/// `RestApi`). Changing the definition serves nothing until a deployment
/// snapshots it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Api {
    /// The id (lower-case letters, digits, `-` and `_`, 1 to 64 characters);
    /// made up (10 lower-case hex digits) when not given.
    pub id: String,
    /// The name, unique among the lifecycle's APIs (usage events, metrics
    /// and throttle buckets are named by it).
    pub name: String,
    /// The definition as it stands: routes, method settings, integrations,
    /// mappings, gateway responses. Its `stages`, `plans`, `keys`,
    /// `credentials` and `domains` are not part of it (they are emptied).
    pub definition: Arc<Config>,
    /// When it was created.
    pub created_date: SystemTime,
}

/// A deployment: an immutable snapshot of one API's definition.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Deployment {
    /// The id (10 lower-case hex digits).
    pub id: String,
    /// The API it belongs to.
    pub api_id: String,
    /// Free text.
    pub description: Option<String>,
    /// When it was made.
    pub created_date: SystemTime,
    /// The definition as it was when deployed.
    pub definition: Arc<Config>,
}

/// A stage: a name on one API, pointing at one deployment, with what API
/// Gateway keeps on the stage.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stage {
    /// The name (`prod`): letters, digits, `-` and `_`, 1 to 128 characters.
    pub name: String,
    /// The API it belongs to.
    pub api_id: String,
    /// The deployment it serves.
    pub deployment_id: String,
    /// Free text.
    pub description: Option<String>,
    /// Variables, method settings and cache capacity, as in a config's
    /// `stages.NAME`.
    pub config: StageConfig,
    /// The canary, when one is set.
    pub canary: Option<CanarySettings>,
    /// When it was created.
    pub created_date: SystemTime,
    /// When it last changed.
    pub last_updated_date: SystemTime,
}

/// A stage's canary (API Gateway's `canarySettings`): a share of the
/// stage's traffic sent to another deployment, with variable overrides.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CanarySettings {
    /// The deployment the canary serves.
    pub deployment_id: String,
    /// The share of requests sent to the canary, `0.0 ..= 100.0` percent.
    /// Default 0.
    pub percent_traffic: f64,
    /// Stage variables the canary sees instead of the stage's (the others
    /// stay as the stage has them).
    pub stage_variable_overrides: BTreeMap<String, String>,
    /// Whether canary requests use the stage's cache. `false` (the
    /// default): no cache at all. `true`: the stage's cache when the canary
    /// serves the stage's deployment, a cache of its own otherwise, as API
    /// Gateway keeps a canary's entries apart from the base's.
    pub use_stage_cache: bool,
    /// Keeps each caller on one side (beyond API Gateway, which picks at
    /// random per request). Default: random per request.
    pub sticky: Option<Sticky>,
}

impl CanarySettings {
    /// A canary on `deployment_id` at `percent_traffic` percent, no
    /// overrides, no cache, not sticky.
    pub fn new(deployment_id: impl Into<String>, percent_traffic: f64) -> Self {
        Self {
            deployment_id: deployment_id.into(),
            percent_traffic,
            stage_variable_overrides: BTreeMap::new(),
            use_stage_cache: false,
            sticky: None,
        }
    }
}

/// What keeps a caller on one side of a canary: a hash of the value picks
/// the side, so the same value always lands on the same side while the
/// percentage stays (a caller without the value is picked at random).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sticky {
    /// The API key the caller sends (the header `api_key_options` names).
    ApiKey,
    /// The value of a request header.
    Header(HeaderName),
    /// The client's address (behind trusted proxies, from `X-Forwarded-For`).
    ClientIp,
}

/// A base path mapping's target: an API and one of its stages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BasePathMapping {
    /// The API id.
    pub api_id: String,
    /// The stage.
    pub stage: String,
}

impl BasePathMapping {
    /// The stage `stage` of API `api_id`.
    pub fn new(api_id: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            api_id: api_id.into(),
            stage: stage.into(),
        }
    }
}

/// A custom domain name and its base path mappings (base path, `""` for
/// API Gateway's `(none)`, to API and stage).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DomainName {
    /// The name as created (matched in any case).
    pub name: String,
    /// Base path to target.
    pub base_path_mappings: BTreeMap<String, BasePathMapping>,
}

/// What a new deployment does besides snapshotting the definition (API
/// Gateway's `CreateDeployment`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeploymentInput {
    /// Free text.
    pub description: Option<String>,
    /// A stage to point at the new deployment, created when missing (with
    /// `stage_config`). With `canary`, the stage must exist and only its
    /// canary moves.
    pub stage: Option<String>,
    /// The new stage's variables and settings, when `stage` creates one.
    pub stage_config: Option<StageConfig>,
    /// Deploys as the stage's canary: these settings, their
    /// `deployment_id` replaced by the new deployment's.
    pub canary: Option<CanarySettings>,
}

impl DeploymentInput {
    /// A deployment that points `stage` at itself.
    pub fn to_stage(stage: impl Into<String>) -> Self {
        Self {
            stage: Some(stage.into()),
            ..Self::default()
        }
    }

    /// A deployment that becomes `stage`'s canary with `canary`'s
    /// settings.
    pub fn as_canary(stage: impl Into<String>, canary: CanarySettings) -> Self {
        Self {
            stage: Some(stage.into()),
            canary: Some(canary),
            ..Self::default()
        }
    }

    /// With the variables and settings of the stage it creates (or
    /// replaces, on a stage without a canary).
    pub fn stage_config(mut self, config: StageConfig) -> Self {
        self.stage_config = Some(config);
        self
    }

    /// With a description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// One change to a stage (API Gateway's `UpdateStage` patch operations),
/// applied with the others of one [`Lifecycle::update_stage`](super::Lifecycle::update_stage)
/// call all at once or not at all.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StageChange {
    /// Points the stage at another deployment (a rollback, or a roll
    /// forward). Refused while a canary is set, as API Gateway refuses:
    /// remove the canary first.
    Deployment(String),
    /// Replaces the stage's description.
    Description(Option<String>),
    /// Replaces the stage's variables.
    Variables(BTreeMap<String, String>),
    /// Replaces the stage's variables, method settings and cache capacity.
    Config(Box<StageConfig>),
    /// Sets the canary (its deployment must be one of the API's).
    Canary(CanarySettings),
    /// Sets the canary's share of traffic, `0.0 ..= 100.0`.
    CanaryPercent(f64),
    /// Replaces the canary's variable overrides.
    CanaryOverrides(BTreeMap<String, String>),
    /// Sets whether canary requests use the stage cache.
    CanaryUseStageCache(bool),
    /// Sets or clears the canary's stickiness.
    CanarySticky(Option<Sticky>),
    /// Promotes the canary: its deployment and overrides become the
    /// stage's, its percent 0; its settings stay until removed (API
    /// Gateway's "Promote a canary release").
    PromoteCanary,
    /// Removes the canary settings.
    RemoveCanary,
    /// Points the stage at its canary's deployment, the canary kept (API
    /// Gateway's patch `copy` from `/canarySettings/deploymentId` to
    /// `/deploymentId`, half of a promotion).
    DeploymentFromCanary,
    /// Adds the canary's variable overrides to the stage's variables (API
    /// Gateway's patch `copy` from `/canarySettings/stageVariableOverrides`
    /// to `/variables`, the other half).
    VariablesFromCanary,
}

/// Why a lifecycle operation was refused, as API Gateway's management API
/// classes its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleErrorKind {
    /// An API, deployment, stage, domain or mapping that does not exist
    /// (API Gateway's `NotFoundException`, 404).
    NotFound,
    /// An invalid request: a field out of bounds, a definition that does
    /// not validate, a deployment still served (`BadRequestException`, 400).
    BadRequest,
    /// A name or id already taken, or a change made against a state
    /// another process has changed since (`ConflictException`, 409).
    Conflict,
    /// The deployment store failed; nothing changed
    /// (`ServiceUnavailableException`, 503).
    Unavailable,
}

/// A refused lifecycle operation: nothing changed. The message names the
/// field at fault by its path (`stages.prod.canary.percent_traffic: ...`).
#[derive(Clone)]
pub struct LifecycleError {
    kind: LifecycleErrorKind,
    message: String,
}

impl LifecycleError {
    pub(crate) fn new(kind: LifecycleErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(LifecycleErrorKind::NotFound, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(LifecycleErrorKind::BadRequest, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(LifecycleErrorKind::Conflict, message)
    }

    pub(crate) fn unavailable(e: &crate::store::StoreError) -> Self {
        Self::new(
            LifecycleErrorKind::Unavailable,
            format!("deployment store: {e}"),
        )
    }

    /// A definition that does not validate, its paths prefixed with `at`.
    pub(crate) fn invalid(at: &str, e: &ConfigError) -> Self {
        let lines: Vec<String> = e
            .issues()
            .iter()
            .map(|i| {
                if i.path().is_empty() {
                    format!("{at}: {}", i.message())
                } else {
                    format!("{at}.{}: {}", i.path(), i.message())
                }
            })
            .collect();
        Self::bad_request(lines.join("\n"))
    }

    /// The same error, each line's path under `prefix` (`apis.orders`).
    pub(crate) fn at(mut self, prefix: &str) -> Self {
        self.message = self
            .message
            .lines()
            .map(|l| format!("{prefix}.{l}"))
            .collect::<Vec<_>>()
            .join("\n");
        self
    }

    /// The class of error.
    pub fn kind(&self) -> LifecycleErrorKind {
        self.kind
    }

    /// What was wrong, each problem on a line starting with its path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LifecycleError {}
