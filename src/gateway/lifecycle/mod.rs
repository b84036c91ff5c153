//! APIs, deployments, stages, canaries and custom domains, changed while
//! the gateway serves (API Gateway's "Set up a deployment", "Set up a
//! stage", "Canary release deployments" and "API mappings").
//!
//! A [`Lifecycle`] holds APIs, each with a definition (a [`Config`]'s
//! routes, method settings, integrations, mappings and gateway responses),
//! its deployments (immutable snapshots of the definition) and its stages
//! (each pointing at one deployment, with variables, method settings and
//! an optional canary). Every change is checked, then takes effect at once:
//! [`Lifecycle::service`] reads the table of stage gateways with one
//! atomic load per request, and a change replaces the table whole.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::gateway::{CanarySettings, DeploymentInput, StageChange};
//! use tollgate::{Body, Config, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A single-API config: one API (`petstore`), one deployment, its stages.
//! let lifecycle = Gateway::builder(Config::from_yaml_str(r#"
//! name: petstore
//! routes: { /pets: [GET] }
//! stages: { prod: { variables: { color: blue } } }
//! "#)?).build_lifecycle()?;
//! let svc = lifecycle.service(service_fn(|req: Request<Body>| async move {
//!     let color = req.extensions().get::<tollgate::RequestContext>()
//!         .and_then(|c| c.endpoint().stage_variable("color")).unwrap_or("-").to_owned();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(color)))
//! }));
//!
//! // A new version, deployed as prod's canary with 100% of the traffic.
//! // (A definition is any config; its stages are the lifecycle's, dropped here.)
//! let v2 = Config::from_yaml_str("routes: { /pets: [GET, POST] }\nstages: { prod: {} }")?;
//! lifecycle.put_api("petstore", v2).await?;
//! let mut canary = CanarySettings::new("", 100.0);
//! canary.stage_variable_overrides.insert("color".into(), "green".into());
//! lifecycle.create_deployment("petstore", DeploymentInput::as_canary("prod", canary)).await?;
//! let res = svc.clone().oneshot(Request::post("/prod/pets").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // Promoted: the stage serves the canary's deployment and variables.
//! lifecycle.update_stage("petstore", "prod", vec![StageChange::PromoteCanary, StageChange::RemoveCanary]).await?;
//! let res = svc.oneshot(Request::get("/prod/pets").body(Body::empty())?).await?;
//! let body = http_body_util::BodyExt::collect(res.into_body()).await.map_err(|e| e.to_string())?.to_bytes();
//! assert_eq!(&body[..], b"green");
//! # Ok(()) }
//! ```
//!
//! # Routing
//!
//! - A request whose host (`:authority`, else `Host`; port ignored, any
//!   case) is a custom domain goes by the longest base path that takes its
//!   path, the prefix stripped; `""` is API Gateway's `(none)` mapping. A
//!   known domain with no mapping for the path gets 403 `UNMAPPED_REQUEST`
//!   `{"message":"Forbidden"}`.
//! - Otherwise the execute-api form: `/{stage}/...` while the lifecycle
//!   holds one API; with several, the host `{api_id}.execute-api.{any}`
//!   picks the API first (any other host: 403 `UNMAPPED_REQUEST`). A stage
//!   whose deployment sets `disable_execute_api_endpoint: true` is reached
//!   only through its domains. A stage the API lacks is answered by one of
//!   its stage gateways (404, or API Gateway's 403 with
//!   `responses_profile: aws`).
//!
//! # Canaries
//!
//! A stage's [`CanarySettings`] send `percent_traffic` percent of its
//! requests, picked at random per request, to the canary's deployment,
//! with the stage variables overridden. With `sticky` a hash of the API
//! key, a header or the client address picks the side instead, so one
//! caller never changes side while the percentage stays. Canary requests
//! are marked in usage events (`canary`), the access log
//! (`$context.isCanaryRequest`) and metrics (label `canary`).
//! `use_stage_cache: false` (the default) gives canary requests no cache;
//! `true` shares the stage's cache when the canary serves the stage's
//! deployment, and keeps a cache of its own otherwise (as API Gateway keeps
//! the two deployments' entries apart).
//!
//! # What a change keeps
//!
//! Throttle buckets, quota counters, keys and response caches are shared
//! by every stage gateway and keyed by API, stage, resource and method,
//! never by deployment: a redeploy, a rollback or a promotion keeps every
//! count and cached entry (API Gateway's guide, "Enable API caching",
//! makes flushing a stage cache an action of its own, not part of a
//! deployment; [`Gateway::flush_cache`] on [`Lifecycle::gateway`] is it here). Usage plans and keys are the lifecycle's: the
//! config's `plans`, `keys` and `credentials` apply to every API, a plan's
//! `stages` naming `api/stage` (or a bare `stage` while there is one API).
//! Not kept across a change: the count of requests in flight that
//! `limits.max_concurrency` bounds (each stage gateway counts its own).
//!
//! # Departures from API Gateway
//!
//! API names are unique (buckets and metrics are named by them). Base paths
//! may have several segments everywhere (API Gateway allows them only in its
//! v2 API mappings). The state is held in memory unless a
//! [`DeploymentStore`] is attached ([`Lifecycle::attach`]): a directory
//! keeps history across a restart, Redis shares it between processes.

mod document;
pub(crate) mod file;
mod model;
mod service;
mod state;
mod table;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

pub use self::model::{
    Api, BasePathMapping, CanarySettings, Deployment, DeploymentInput, DomainName, LifecycleError,
    LifecycleErrorKind, Stage, StageChange, Sticky,
};
pub use self::service::LifecycleService;
pub use self::state::Reloaded;
use self::state::State;
pub(super) use self::table::Parts;
use self::table::Table;
use super::handle::Gateway;
use super::{Config, PlanConfig, StageConfig};
use crate::context::Endpoint;
pub use crate::deployments::{DeploymentStore, DirDeploymentStore, InMemoryDeploymentStore};

/// APIs with their deployments and stages, custom domains, and the service
/// that serves them, changed while it serves. See the [module docs](crate::gateway::lifecycle).
///
/// Cloning is a pointer copy; every clone changes and serves the same
/// lifecycle. Operations are async (a store may be written) and atomic,
/// one at a time: each is checked and built whole (every stage's gateway)
/// and stored before it takes effect, and a refused one changes nothing.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    /// Held while a change is made: one change at a time.
    writer: tokio::sync::Mutex<Writer>,
    /// The state as served, read by the getters.
    published: ArcSwap<State>,
    table: Arc<ArcSwap<Table>>,
    parts: Parts,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Lifecycle")
            .field("apis", &state.apis.keys().collect::<Vec<_>>())
            .field("domains", &state.domains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A change being made, and where it goes.
struct Writer {
    store: Option<Arc<dyn DeploymentStore>>,
    /// The stored version the served state is.
    version: u64,
    /// A stored version that does not build here (reported once).
    failed: u64,
}

/// The change feed: every `every`, the store's version; a newer one is
/// loaded and served. Ends when the lifecycle is dropped.
async fn feed(
    inner: std::sync::Weak<Inner>,
    store: Arc<dyn DeploymentStore>,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let lifecycle = Lifecycle { inner };
        let stored = match store.version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "deployment store: no version");
                continue;
            }
        };
        let mut writer = lifecycle.inner.writer.lock().await;
        if stored > writer.version
            && let Err(e) = lifecycle.adopt(&mut writer).await
        {
            tracing::warn!(error = %e, "the stored lifecycle does not build here; the served one stays");
        }
    }
}

/// Each API file of a multi-API config, read and validated.
fn api_files(config: &Config) -> Result<Vec<(String, Config)>, LifecycleError> {
    config
        .apis
        .iter()
        .map(|(id, source)| {
            let (path, file) = match (source.config.as_deref(), source.openapi.as_deref()) {
                (Some(path), None) => (
                    path,
                    Config::from_path(path).map_err(|e| {
                        LifecycleError::invalid(&format!("apis.{id}.config ({path})"), &e)
                    })?,
                ),
                // An API Gateway export: imported (stage `prod`), each
                // warning logged with its path.
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        LifecycleError::bad_request(format!("apis.{id}.openapi ({path}): {e}"))
                    })?;
                    let imported =
                        crate::openapi::import(&text, &crate::openapi::ImportOptions::default())
                            .map_err(|e| {
                                LifecycleError::bad_request(format!(
                                    "apis.{id}.openapi ({path}): {e}"
                                ))
                            })?;
                    for w in &imported.warnings {
                        tracing::warn!(api = %id, file = %path, warning = %w, "OpenAPI import");
                    }
                    (path, imported.config)
                }
                _ => {
                    return Err(LifecycleError::bad_request(format!(
                        "apis.{id}: give exactly one of `config` and `openapi`"
                    )));
                }
            };
            // What is the lifecycle's, not one API's, belongs in the top file.
            for (field, given) in [
                ("keys", !file.keys.is_empty()),
                ("plans", !file.plans.is_empty()),
                ("credentials", !file.credentials.is_empty()),
                ("domains", !file.domains.is_empty()),
                ("apis", !file.apis.is_empty()),
                ("deployments", file.deployments.is_some()),
                ("management", file.management.is_some()),
            ] {
                if given {
                    return Err(LifecycleError::bad_request(format!(
                        "apis.{id}.config ({path}): `{field}` belongs in the top file, \
                         for every API"
                    )));
                }
            }
            Ok((id.clone(), file))
        })
        .collect()
}

/// The lifecycle clock's time, for records' dates.
fn wall_clock(clock: &Arc<dyn crate::clock::Clock>) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(clock.unix_nanos())
}

/// The id of a single-API config's API: its name in lower case, other
/// characters than an id's made `-` (`Pet Store` is `pet-store`).
fn id_of(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Lifecycle {
    /// A lifecycle over `parts` with the single API of `config`: the API
    /// (id and name: `config.name`, default `tollgate`), one deployment of
    /// its definition, its stages pointing at it, its domains.
    pub(super) fn from_parts(config: Config, parts: Parts) -> Result<Self, LifecycleError> {
        let now = wall_clock(&parts.clock);
        let mut state = State::default();
        if !config.apis.is_empty() {
            let files = api_files(&config)?;
            state.reload_many(files, &config, &config, now)?;
            return Self::serving(state, parts);
        }
        let name = config.name.clone().unwrap_or_else(|| "tollgate".to_owned());
        let id = id_of(&name);
        state.plans = config.plans.clone();
        let stages = config.stages.clone();
        let domains = config.domains.clone();
        state.create_api(Some(id.clone()), &name, config, now)?;
        let deployment = state.create_deployment(
            &id,
            model::DeploymentInput::default().description("the config's definition"),
            now,
        )?;
        for (stage, mut stage_config) in stages {
            let canary = stage_config.canary.take();
            state.create_stage(&id, &stage, &deployment.id, stage_config.clone(), now)?;
            if canary.is_some() {
                // Kept in the stage's config as the file has it, so a
                // reload of the same file sees no change.
                stage_config.canary = canary.clone();
                if let Some(s) = state
                    .apis
                    .get_mut(&id)
                    .and_then(|a| a.stages.get_mut(&stage))
                {
                    s.config = stage_config;
                }
                state.file_canary(&id, &stage, canary.as_ref(), now)?;
            }
        }
        for (host, domain) in domains {
            state.create_domain(&host)?;
            for (base, mapping) in domain.base_paths {
                state.create_base_path_mapping(
                    &host,
                    &base,
                    BasePathMapping::new(id.clone(), mapping.stage),
                )?;
            }
        }
        Self::serving(state, parts)
    }

    fn serving(state: State, parts: Parts) -> Result<Self, LifecycleError> {
        let table = table::build(&state, &parts)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: tokio::sync::Mutex::new(Writer {
                    store: None,
                    version: 0,
                    failed: 0,
                }),
                published: ArcSwap::from_pointee(state),
                table: Arc::new(ArcSwap::from_pointee(table)),
                parts,
            }),
        })
    }

    fn state(&self) -> Arc<State> {
        self.inner.published.load_full()
    }

    /// Applies `change` to a copy of the state, builds every gateway from
    /// it, stores it (with a store attached), then swaps both in; on any
    /// error nothing changes.
    async fn apply<T>(
        &self,
        change: impl FnOnce(&mut State, SystemTime) -> Result<T, LifecycleError>,
    ) -> Result<T, LifecycleError> {
        let mut writer = self.inner.writer.lock().await;
        let mut next = State::clone(&self.inner.published.load());
        let out = change(&mut next, wall_clock(&self.inner.parts.clock))?;
        let table = table::build(&next, &self.inner.parts)?;
        if let Some(store) = writer.store.clone() {
            let document = document::to_document(&next)?;
            let Some(following) = writer.version.checked_add(1) else {
                return Err(LifecycleError::bad_request(
                    "the store's version is at its largest: move the lifecycle to a new store",
                ));
            };
            match store.save(writer.version, &document).await {
                Ok(true) => writer.version = following,
                Ok(false) => {
                    // Another process changed it first: serve theirs,
                    // refuse this (it was made against an older state).
                    if let Err(e) = self.adopt(&mut writer).await {
                        tracing::warn!(error = %e, "the stored lifecycle does not build here");
                    }
                    return Err(LifecycleError::conflict(
                        "the lifecycle was changed elsewhere meanwhile (the newer state now \
                         serves here): make the change again",
                    ));
                }
                Err(e) => return Err(LifecycleError::unavailable(&e)),
            }
        }
        let table = Arc::new(table);
        self.inner.table.store(table.clone());
        self.inner.parts.prune_caches(&table);
        self.inner.published.store(Arc::new(next));
        Ok(out)
    }

    /// Serves the store's state when it is newer than the one served.
    async fn adopt(&self, writer: &mut Writer) -> Result<bool, LifecycleError> {
        let Some(store) = writer.store.clone() else {
            return Ok(false);
        };
        let loaded = store
            .load()
            .await
            .map_err(|e| LifecycleError::unavailable(&e))?;
        let Some((version, document)) = loaded else {
            return Ok(false);
        };
        if version <= writer.version {
            return Ok(false);
        }
        if version == writer.failed {
            // Reported already; the served state stays.
            return Ok(false);
        }
        let built = document::from_document(&document)
            .and_then(|state| Ok((table::build(&state, &self.inner.parts)?, state)));
        let (table, state) = match built {
            Ok(built) => built,
            Err(e) => {
                writer.failed = version;
                return Err(e);
            }
        };
        let table = Arc::new(table);
        self.inner.table.store(table.clone());
        self.inner.parts.prune_caches(&table);
        self.inner.published.store(Arc::new(state));
        writer.version = version;
        Ok(true)
    }

    /// Keeps the lifecycle in `store` from now on: the stored state, when
    /// there is one, replaces this one (history survives a restart, and
    /// every process on the store serves the same); otherwise this one is
    /// stored. With the store's poll interval, changes made elsewhere are
    /// served here within it (a task on the current Tokio runtime, which
    /// ends when every clone of this lifecycle is dropped).
    ///
    /// Errors: the store's (`Unavailable`), or a stored state that does not
    /// build here (`BadRequest`, with its paths; an authorizer not
    /// registered in this process, say).
    pub async fn attach(&self, store: Arc<dyn DeploymentStore>) -> Result<(), LifecycleError> {
        let mut writer = self.inner.writer.lock().await;
        // Tried on a writer of its own: a refused attach changes nothing.
        let mut trial = Writer {
            store: Some(store.clone()),
            version: 0,
            failed: 0,
        };
        if !self.adopt(&mut trial).await? {
            let document = document::to_document(&self.inner.published.load())?;
            if store
                .save(0, &document)
                .await
                .map_err(|e| LifecycleError::unavailable(&e))?
            {
                trial.version = 1;
            } else if !self.adopt(&mut trial).await? {
                // Another process stored one meanwhile, which is not
                // readable as newer: nothing to serve from it.
                return Err(LifecycleError::conflict(
                    "the store holds a state this lifecycle cannot read as newer; attach again",
                ));
            }
        }
        *writer = trial;
        drop(writer);
        if let Some(every) = store.poll_interval() {
            tokio::spawn(feed(Arc::downgrade(&self.inner), store, every));
        }
        Ok(())
    }

    /// Loads the config's `keys` into the key store, for a store given to
    /// [`GatewayBuilder::key_store`](crate::GatewayBuilder::key_store) (the
    /// default store has them). A key already there (same digest) is left as
    /// it is, as [`Gateway::load_config_keys`] does.
    pub async fn load_config_keys(&self) -> Result<(), crate::store::StoreError> {
        let Some(gateway) = self.inner.table.load().first() else {
            return Ok(());
        };
        let parts = &self.inner.parts;
        let manager = gateway.key_manager();
        let hasher = parts.base.api_key_options.hasher();
        let now = parts.clock.utc();
        for k in &parts.base.keys {
            let (digest, _) = crate::keys::prepare(k.into(), &hasher, now)?;
            if parts.key_store.get(&digest).await?.is_some() {
                continue;
            }
            manager.import(k.into()).await?;
        }
        Ok(())
    }

    /// The stored version served now (0 without a store).
    pub async fn version(&self) -> u64 {
        self.inner.writer.lock().await.version
    }

    /// Wraps `inner`: every request goes to its stage's gateway (or its
    /// canary's), as the lifecycle stands when the request arrives.
    pub fn service<S>(&self, inner: S) -> LifecycleService<S> {
        LifecycleService {
            table: self.inner.table.clone(),
            inner,
        }
    }

    /// The gateway serving `stage` of API `api_id` now (its base side): for
    /// its key manager, usage records or cache flush. It is not changed by
    /// later operations; ask again after one.
    pub fn gateway(&self, api_id: &str, stage: &str) -> Option<Gateway> {
        let table = self.inner.table.load();
        table.served(api_id, stage).map(|s| s.base.clone())
    }

    /// The endpoint a request with `method`, `Host: host` and raw `path`
    /// would reach on the base side of its stage, as the lifecycle stands
    /// now: `None` where it would be refused (404, 405, 403
    /// `UNMAPPED_REQUEST`). The service's own lookup.
    pub fn find_endpoint_on(
        &self,
        method: &http::Method,
        host: Option<&str>,
        path: &str,
    ) -> Option<Arc<Endpoint>> {
        let table = self.inner.table.load();
        table
            .base_for(host, path)
            .find_endpoint_on(method, host, path)
            .cloned()
    }

    /// The gateway serving `stage`'s canary now, if it has one.
    pub fn canary_gateway(&self, api_id: &str, stage: &str) -> Option<Gateway> {
        let table = self.inner.table.load();
        table
            .served(api_id, stage)
            .and_then(|s| s.canary.as_ref().map(|c| c.gateway.clone()))
    }

    /// Manages the lifecycle's API keys (one key store serves every API),
    /// checking plan attachments against the lifecycle's usage plans as
    /// they stand now. Ask again after a plan changes.
    pub fn key_manager(&self) -> crate::keys::KeyManager {
        match self.inner.table.load().first() {
            Some(gateway) => gateway.key_manager(),
            None => {
                let parts = &self.inner.parts;
                crate::keys::KeyManager::new(
                    parts.key_store.clone(),
                    parts.base.api_key_options.hasher(),
                    parts.clock.clone(),
                )
            }
        }
    }

    /// Usage records of the lifecycle's plans (GetUsage, UpdateUsage), as
    /// the plans stand now; `None` until a stage is served.
    pub fn usage(&self) -> Option<crate::plans::UsageRecords> {
        self.inner.table.load().first().map(|g| g.usage())
    }

    /// The configuration the lifecycle was built from (its gateway-wide
    /// settings: `management`, `credentials`, `keys`, `plans` at start).
    pub fn config(&self) -> &Config {
        &self.inner.parts.base
    }

    /// The management API over this lifecycle (API Gateway's REST API, for
    /// the aws CLI and boto3), its callers checked against the config's
    /// `management` section. See [`management`](crate::management).
    pub fn management(&self) -> crate::management::Management {
        crate::management::Management::new(self.clone())
    }

    /// The Lambda functions registered with the builder, by name (for an
    /// OpenAPI import's `aws_proxy` integrations).
    pub fn lambda_names(&self) -> std::collections::BTreeSet<String> {
        self.inner.parts.lambdas.keys().cloned().collect()
    }

    /// The lifecycle's clock.
    pub fn clock(&self) -> &Arc<dyn crate::clock::Clock> {
        &self.inner.parts.clock
    }

    /// Hands `notice` to every usage reporter of the lifecycle, for its
    /// sink's [`notify`](crate::usage::UsageSink::notify) (the management
    /// API's change records go this way). Never waits.
    pub fn notify(&self, notice: &crate::usage::Notice) {
        for r in &self.inner.parts.reporters {
            r.notify(notice.clone());
        }
    }

    /// Shuts every usage reporter down, each delivering what it has queued,
    /// after the authorizers of the gateways serving now deliver what they
    /// hold back ([`Authorizer::flush`](crate::auth::authorizer::Authorizer::flush)).
    pub async fn shutdown_reporters(&self) {
        let gateways: Vec<Gateway> = self.inner.table.load().gateways().cloned().collect();
        for g in gateways {
            g.authorizers().flush().await;
        }
        for r in &self.inner.parts.reporters {
            r.shutdown().await;
        }
    }

    /// Every API.
    pub fn apis(&self) -> Vec<Api> {
        self.state().apis.values().map(|a| a.api.clone()).collect()
    }

    /// One API. Error: `NotFound`.
    pub fn api(&self, id: &str) -> Result<Api, LifecycleError> {
        self.state().api(id).map(|a| a.api.clone())
    }

    /// Creates an API from `definition` (its `stages`, `plans`, `keys`,
    /// `credentials` and `domains` are dropped: they are not part of a
    /// definition). `id`: `None` makes one up. Nothing is served until a
    /// deployment and a stage. Errors: `Conflict` for a taken id or name,
    /// `BadRequest` for a definition that does not validate (each problem at
    /// its path under `definition.`).
    pub async fn create_api(
        &self,
        id: Option<&str>,
        name: &str,
        definition: Config,
    ) -> Result<Api, LifecycleError> {
        self.apply(|s, now| s.create_api(id.map(str::to_owned), name, definition, now))
            .await
    }

    /// Creates an API whose definition is a copy of `from`'s (API Gateway's
    /// `cloneFrom`; deployments and stages are not copied).
    pub async fn clone_api(
        &self,
        from: &str,
        id: Option<&str>,
        name: &str,
    ) -> Result<Api, LifecycleError> {
        self.apply(|s, now| s.clone_api(from, id.map(str::to_owned), name, now))
            .await
    }

    /// Replaces an API's definition (API Gateway's `PutRestApi` in
    /// `overwrite` mode). Served once deployed.
    pub async fn put_api(&self, id: &str, definition: Config) -> Result<Api, LifecycleError> {
        self.apply(|s, _| s.put_api(id, definition)).await
    }

    /// Renames an API (API Gateway's UpdateRestApi `/name`). The new name
    /// shows at once in [`Lifecycle::api`] and goes into the next
    /// deployment; stages keep serving their deployment under the name it
    /// was made with (buckets, metrics and usage events are named by it)
    /// until they move to a newer one. Errors: `NotFound`; `BadRequest` for
    /// a name that is empty, longer than 128 characters or holds a control
    /// character; `Conflict` when another API, or any deployment, has it.
    pub async fn rename_api(&self, id: &str, name: &str) -> Result<Api, LifecycleError> {
        self.apply(|s, _| s.rename_api(id, name)).await
    }

    /// Deletes an API with its deployments and stages (API Gateway's
    /// `DeleteRestApi`). Refused (`BadRequest`) while a usage plan names one
    /// of its stages or a base path mapping serves it; `NotFound` for an
    /// unknown id.
    pub async fn delete_api(&self, id: &str) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.delete_api(id)).await
    }

    /// Snapshots the API's definition as a new deployment. With
    /// `input.stage`: points that stage at it (creating the stage when
    /// missing; refused while the stage has a canary), or with
    /// `input.canary`, makes it the stage's canary. The definition is built
    /// for every stage it serves before anything changes: a stage it does
    /// not build for refuses the deployment (`BadRequest`, with paths).
    pub async fn create_deployment(
        &self,
        api_id: &str,
        input: DeploymentInput,
    ) -> Result<Deployment, LifecycleError> {
        self.apply(|s, now| s.create_deployment(api_id, input, now))
            .await
    }

    /// The API's deployments, oldest first.
    pub fn deployments(&self, api_id: &str) -> Result<Vec<Deployment>, LifecycleError> {
        self.state().api(api_id).map(|a| a.deployments.clone())
    }

    /// One deployment.
    pub fn deployment(&self, api_id: &str, id: &str) -> Result<Deployment, LifecycleError> {
        let state = self.state();
        let api = state.api(api_id)?;
        api.deployment(id).cloned().ok_or_else(|| {
            LifecycleError::not_found(format!("API `{api_id}` has no deployment `{id}`"))
        })
    }

    /// Deletes a deployment. Refused (`BadRequest`) while a stage or a
    /// canary serves it.
    pub async fn delete_deployment(&self, api_id: &str, id: &str) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.delete_deployment(api_id, id)).await
    }

    /// Exports a deployed stage as OpenAPI, as API Gateway's `GetExport`
    /// does: the stage's deployment's definition with the stage's own
    /// settings; `info.version` is the deployment's creation time
    /// (`2026-12-01T08:00:00Z`) unless `options` names one. See
    /// [`openapi::export`](crate::openapi::export).
    ///
    /// # Errors
    /// `NotFound` for an unknown API or stage.
    pub fn export(
        &self,
        api_id: &str,
        stage: &str,
        options: &crate::openapi::ExportOptions,
    ) -> Result<crate::openapi::Exported, LifecycleError> {
        let s = self.stage(api_id, stage)?;
        let deployment = self.deployment(api_id, &s.deployment_id)?;
        let mut config = (*deployment.definition).clone();
        config.stages = std::iter::once((s.name.clone(), s.config.clone())).collect();
        let mut options = options.clone();
        if options.version.is_none() {
            let created = time::OffsetDateTime::from(deployment.created_date);
            let format =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
            options.version = created.format(&format).ok();
        }
        crate::openapi::export(&config, stage, &options)
            .map_err(|e| LifecycleError::invalid("", &e))
    }

    /// The API's stages.
    pub fn stages(&self, api_id: &str) -> Result<Vec<Stage>, LifecycleError> {
        self.state()
            .api(api_id)
            .map(|a| a.stages.values().cloned().collect())
    }

    /// One stage.
    pub fn stage(&self, api_id: &str, name: &str) -> Result<Stage, LifecycleError> {
        let state = self.state();
        state.api(api_id)?.stages.get(name).cloned().ok_or_else(|| {
            LifecycleError::not_found(format!("API `{api_id}` has no stage `{name}`"))
        })
    }

    /// Creates a stage on a deployment, with variables and settings.
    pub async fn create_stage(
        &self,
        api_id: &str,
        name: &str,
        deployment_id: &str,
        config: StageConfig,
    ) -> Result<Stage, LifecycleError> {
        self.apply(|s, now| s.create_stage(api_id, name, deployment_id, config, now))
            .await
    }

    /// Applies `changes` to a stage, in order, all or none: a rollback
    /// ([`StageChange::Deployment`]), new variables or settings, canary
    /// settings, a promotion, the canary's removal.
    pub async fn update_stage(
        &self,
        api_id: &str,
        name: &str,
        changes: Vec<StageChange>,
    ) -> Result<Stage, LifecycleError> {
        self.apply(|s, now| s.update_stage(api_id, name, changes, now))
            .await
    }

    /// Deletes a stage. Refused while a base path mapping serves it.
    pub async fn delete_stage(&self, api_id: &str, name: &str) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.delete_stage(api_id, name)).await
    }

    /// Applies a config again (a file reloaded). Single-API: the API its
    /// `name` names (its id: the name in lower case, other characters `-`)
    /// gets its definition (deployed anew when no deployment has it), every
    /// stage it lists points there with its settings and canary (a canary
    /// set through the API that the file lacks is removed: the file is the
    /// stage's truth), the stages it does not list are deleted, its domains
    /// (domains left without a mapping go) and plans replace the old.
    /// Multi-API (`apis`): each listed API so, then the top file's domains
    /// and plans. One change: it all takes effect, or (an invalid file, a
    /// plan naming a stage that is gone, a base path another API maps) none
    /// of it. `keys`, `credentials`, `throttle` and the `*_options` apply at
    /// the next start; a change to them is listed in
    /// [`Reloaded::needs_restart`].
    pub async fn reload(&self, config: Config) -> Result<Reloaded, LifecycleError> {
        let base = &self.inner.parts.base;
        if !config.apis.is_empty() {
            let files = api_files(&config)?;
            return self
                .apply(|s, now| s.reload_many(files, &config, base, now))
                .await;
        }
        let name = config.name.as_deref().unwrap_or("tollgate");
        let id = id_of(name);
        if self.state().api(&id).is_err() {
            return Err(LifecycleError::not_found(format!(
                "name: no API `{id}` (from the name `{name}`): a reload keeps the API's name; \
                 create a new API to rename it"
            )));
        }
        self.apply(|s, now| s.reload(&id, config, base, now)).await
    }

    /// The usage plans, by name.
    pub fn plans(&self) -> std::collections::BTreeMap<String, PlanConfig> {
        self.state().plans.clone()
    }

    /// Creates or replaces a usage plan. Each of its `stages` names an
    /// existing stage as `api/stage` (or `stage` while there is one API);
    /// its `methods` must exist in the deployments of the stages it names.
    /// Keys already attached to the plan's name follow it.
    pub async fn put_plan(&self, name: &str, plan: PlanConfig) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.put_plan(name, plan)).await
    }

    /// Deletes a usage plan (its keys then call no stage through it).
    pub async fn delete_plan(&self, name: &str) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.delete_plan(name)).await
    }

    /// The custom domains.
    pub fn domains(&self) -> Vec<DomainName> {
        self.state().domains.values().cloned().collect()
    }

    /// Creates a custom domain name (no mapping yet: every request on it
    /// gets 403 `UNMAPPED_REQUEST`).
    pub async fn create_domain(&self, name: &str) -> Result<DomainName, LifecycleError> {
        self.apply(|s, _| s.create_domain(name)).await
    }

    /// Deletes a custom domain name and its mappings.
    pub async fn delete_domain(&self, name: &str) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.delete_domain(name)).await
    }

    /// Maps `base_path` of `domain` (`""` for `(none)`, `orders/v1`) to a
    /// stage.
    pub async fn create_base_path_mapping(
        &self,
        domain: &str,
        base_path: &str,
        target: BasePathMapping,
    ) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.create_base_path_mapping(domain, base_path, target))
            .await
    }

    /// Deletes one base path mapping.
    pub async fn delete_base_path_mapping(
        &self,
        domain: &str,
        base_path: &str,
    ) -> Result<(), LifecycleError> {
        self.apply(|s, _| s.delete_base_path_mapping(domain, base_path))
            .await
    }
}

impl<S> tower::Layer<S> for Lifecycle {
    type Service = LifecycleService<S>;

    fn layer(&self, inner: S) -> LifecycleService<S> {
        self.service(inner)
    }
}
