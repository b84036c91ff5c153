//! The lifecycle's state and its operations: each checks its input and
//! changes a copy, which replaces the state only once it has been served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::model::*;
use crate::gateway::{CanaryConfig, Config, PlanConfig, StageConfig};
use crate::route::domain::{is_base_path, is_host_name};

/// Every API with its deployments and stages, and the custom domains.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    /// By id.
    pub(super) apis: BTreeMap<String, ApiState>,
    /// By lower-case name (a final dot dropped).
    pub(super) domains: BTreeMap<String, DomainName>,
    /// The usage plans, by name; each names `api/stage` pairs (or bare
    /// stages while there is one API).
    pub(super) plans: BTreeMap<String, PlanConfig>,
}

/// What [`Lifecycle::reload`](super::Lifecycle::reload) did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Reloaded {
    /// The deployments made (one per API whose definition changed).
    pub deployments: Vec<Deployment>,
    /// Stages created, changed or deleted: by name (`api/stage` in a
    /// multi-API reload).
    pub stages: Vec<String>,
    /// Parts of the file that changed but apply only to a new lifecycle
    /// (a restart): `keys`, `credentials`, `throttle`, `throttle_options`,
    /// `api_key_options`.
    pub needs_restart: Vec<&'static str>,
}

/// One API, its deployments (oldest first) and its stages by name.
#[derive(Debug, Clone)]
pub(super) struct ApiState {
    pub(super) api: Api,
    pub(super) deployments: Vec<Deployment>,
    pub(super) stages: BTreeMap<String, Stage>,
}

/// A new API or deployment id: 10 lower-case hex digits, made as key ids
/// are (API Gateway's are 10 characters of `[a-z0-9]`, of which these are
/// a part).
pub(crate) use crate::keys::new_id;

/// The definition part of a config: its stages, plans, keys, credentials
/// and domains are state of the lifecycle, not of an API.
pub(crate) fn definition_of(mut config: Config) -> Config {
    config.stages.clear();
    config.plans.clear();
    config.keys.clear();
    config.credentials.clear();
    config.domains.clear();
    config.management = None;
    config
}

/// Validates a definition on its own: with one stage of default settings
/// (a config needs a stage; a definition has none).
pub(crate) fn check_definition(definition: &Config) -> Result<(), LifecycleError> {
    let mut config = definition.clone();
    // Reached only through domains is the router's to enforce.
    config.disable_execute_api_endpoint = false;
    // An API may start empty (API Gateway's CreateRestApi makes only the
    // root resource); it cannot be deployed until it has a method.
    if config.routes.is_empty() {
        config.routes.insert("/".to_owned(), vec!["GET".to_owned()]);
    }
    config
        .stages
        .insert("definition".to_owned(), StageConfig::default());
    config
        .validate()
        .map_err(|e| LifecycleError::invalid("definition", &e))
}

/// What an API id is made of, for messages.
pub(crate) const API_ID_RULE: &str = "1 to 64 lower-case letters, digits, `-` and `_`";

/// Whether `id` is an API id: it is the first label of an
/// `{api_id}.execute-api` host, matched in any case, so lower case only.
pub(crate) fn is_api_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_api_id(id: &str) -> Result<(), LifecycleError> {
    if is_api_id(id) {
        Ok(())
    } else {
        Err(LifecycleError::bad_request(format!(
            "id: `{id}` is not an API id ({API_ID_RULE})"
        )))
    }
}

/// API Gateway's rule: letters, digits, `-` and `_`, at most 128.
fn check_api_name(name: &str) -> Result<(), LifecycleError> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(LifecycleError::bad_request(
            "name: 1 to 128 characters, none a control character",
        ));
    }
    Ok(())
}

fn check_stage_name(name: &str) -> Result<(), LifecycleError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LifecycleError::bad_request(format!(
            "stage_name: `{name}` is not a stage name (1 to 128 letters, digits, `-` and `_`)"
        )))
    }
}

fn check_canary(at: &str, api: &ApiState, c: &CanarySettings) -> Result<(), LifecycleError> {
    if !(c.percent_traffic.is_finite() && (0.0..=100.0).contains(&c.percent_traffic)) {
        return Err(LifecycleError::bad_request(format!(
            "{at}.percent_traffic: must be between 0.0 and 100.0 (got {})",
            c.percent_traffic
        )));
    }
    if api.deployment(&c.deployment_id).is_none() {
        return Err(LifecycleError::bad_request(format!(
            "{at}.deployment_id: API `{}` has no deployment `{}`",
            api.api.id, c.deployment_id
        )));
    }
    Ok(())
}

impl ApiState {
    pub(super) fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.id == id)
    }

    fn stage_mut(&mut self, name: &str) -> Result<&mut Stage, LifecycleError> {
        let api = self.api.id.clone();
        self.stages
            .get_mut(name)
            .ok_or_else(|| LifecycleError::not_found(format!("API `{api}` has no stage `{name}`")))
    }
}

impl State {
    pub(super) fn api(&self, id: &str) -> Result<&ApiState, LifecycleError> {
        self.apis
            .get(id)
            .ok_or_else(|| LifecycleError::not_found(format!("no API `{id}`")))
    }

    fn api_mut(&mut self, id: &str) -> Result<&mut ApiState, LifecycleError> {
        self.apis
            .get_mut(id)
            .ok_or_else(|| LifecycleError::not_found(format!("no API `{id}`")))
    }

    pub(super) fn create_api(
        &mut self,
        id: Option<String>,
        name: &str,
        definition: Config,
        now: SystemTime,
    ) -> Result<Api, LifecycleError> {
        let id = id.unwrap_or_else(new_id);
        check_api_id(&id)?;
        check_api_name(name)?;
        if self.apis.contains_key(&id) {
            return Err(LifecycleError::conflict(format!("an API `{id}` exists")));
        }
        if self.name_taken(name, None) {
            return Err(LifecycleError::conflict(format!(
                "name: an API or one of its deployments is named `{name}` (names are unique \
                 here: buckets and metrics are named by them)"
            )));
        }
        let mut definition = definition_of(definition);
        definition.name = Some(name.to_owned());
        check_definition(&definition)?;
        // Plans name bare stages only while there is one API: a second
        // one makes them `api/stage` of the first.
        if self.apis.len() == 1
            && let Some(only) = self.apis.keys().next().cloned()
        {
            for plan in self.plans.values_mut() {
                for stage in &mut plan.stages {
                    if !stage.contains('/') {
                        *stage = format!("{only}/{stage}");
                    }
                }
            }
        }
        let api = Api {
            id: id.clone(),
            name: name.to_owned(),
            definition: Arc::new(definition),
            created_date: now,
        };
        self.apis.insert(
            id,
            ApiState {
                api: api.clone(),
                deployments: Vec::new(),
                stages: BTreeMap::new(),
            },
        );
        Ok(api)
    }

    pub(super) fn clone_api(
        &mut self,
        from: &str,
        id: Option<String>,
        name: &str,
        now: SystemTime,
    ) -> Result<Api, LifecycleError> {
        let definition = Config::clone(&self.api(from)?.api.definition);
        self.create_api(id, name, definition, now)
    }

    pub(super) fn put_api(&mut self, id: &str, definition: Config) -> Result<Api, LifecycleError> {
        let api = self.api_mut(id)?;
        let mut definition = definition_of(definition);
        definition.name = Some(api.api.name.clone());
        check_definition(&definition)?;
        api.api.definition = Arc::new(definition);
        Ok(api.api.clone())
    }

    pub(super) fn create_deployment(
        &mut self,
        api_id: &str,
        input: DeploymentInput,
        now: SystemTime,
    ) -> Result<Deployment, LifecycleError> {
        if let Some(c) = &input.stage_config {
            no_file_canary(c)?;
        }
        let api = self.api_mut(api_id)?;
        if api.api.definition.routes.is_empty() {
            // API Gateway's own words.
            return Err(LifecycleError::bad_request(
                "The REST API doesn't contain any methods",
            ));
        }
        let deployment = Deployment {
            id: new_id(),
            api_id: api_id.to_owned(),
            description: input.description,
            created_date: now,
            definition: api.api.definition.clone(),
        };
        api.deployments.push(deployment.clone());
        let Some(stage_name) = input.stage else {
            if input.canary.is_some() {
                return Err(LifecycleError::bad_request(
                    "stage_name: a canary deployment names its stage",
                ));
            }
            return Ok(deployment);
        };
        check_stage_name(&stage_name)?;
        if let Some(mut canary) = input.canary {
            canary.deployment_id = deployment.id.clone();
            check_canary("canary_settings", api, &canary)?;
            let stage = api.stage_mut(&stage_name)?;
            stage.canary = Some(canary);
            stage.last_updated_date = now;
            return Ok(deployment);
        }
        match api.stages.get_mut(&stage_name) {
            Some(stage) => {
                if stage.canary.is_some() {
                    return Err(canary_blocks(&stage_name));
                }
                stage.deployment_id = deployment.id.clone();
                if let Some(config) = input.stage_config {
                    stage.config = config;
                }
                stage.last_updated_date = now;
            }
            None => {
                api.stages.insert(
                    stage_name.clone(),
                    Stage {
                        name: stage_name,
                        api_id: api_id.to_owned(),
                        deployment_id: deployment.id.clone(),
                        description: None,
                        config: input.stage_config.unwrap_or_default(),
                        canary: None,
                        created_date: now,
                        last_updated_date: now,
                    },
                );
            }
        }
        Ok(deployment)
    }

    /// Whether an API other than `except` is named `name`, or serves a
    /// deployment made under that name.
    fn name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.apis.values().any(|a| {
            Some(a.api.id.as_str()) != except
                && (a.api.name == name
                    || a.deployments
                        .iter()
                        .any(|d| d.definition.name.as_deref() == Some(name)))
        })
    }

    pub(super) fn rename_api(&mut self, id: &str, name: &str) -> Result<Api, LifecycleError> {
        check_api_name(name)?;
        if self.api(id)?.api.name == name {
            return Ok(self.api(id)?.api.clone());
        }
        // A served deployment keeps the name it was deployed with (its
        // buckets and metrics are named by it): no other API may take a
        // name still in use there.
        if self.name_taken(name, Some(id)) {
            return Err(LifecycleError::conflict(format!(
                "name: an API or one of its deployments is named `{name}` (names are unique \
                 here: buckets and metrics are named by them)"
            )));
        }
        let api = self.api_mut(id)?;
        let mut definition = Config::clone(&api.api.definition);
        definition.name = Some(name.to_owned());
        api.api.name = name.to_owned();
        api.api.definition = Arc::new(definition);
        Ok(api.api.clone())
    }

    pub(super) fn delete_api(&mut self, id: &str) -> Result<(), LifecycleError> {
        self.api(id)?;
        let single = self.apis.len() == 1;
        let planned = self.plans.iter().find(|(_, p)| {
            p.stages.iter().any(|entry| match entry.split_once('/') {
                Some((a, _)) => a == id,
                None => single,
            })
        });
        if let Some((plan, _)) = planned {
            return Err(LifecycleError::bad_request(format!(
                "the usage plan `{plan}` names a stage of API `{id}`: take it out of the plan first"
            )));
        }
        let mapped = self.domains.values().find_map(|d| {
            d.base_path_mappings
                .iter()
                .find(|(_, m)| m.api_id == id)
                .map(|(base, _)| (d.name.clone(), base.clone()))
        });
        if let Some((domain, base)) = mapped {
            return Err(LifecycleError::bad_request(format!(
                "API `{id}` is served by the base path mapping `{base}` of `{domain}`: \
                 delete the mapping first"
            )));
        }
        self.apis.remove(id);
        Ok(())
    }

    pub(super) fn delete_deployment(
        &mut self,
        api_id: &str,
        id: &str,
    ) -> Result<(), LifecycleError> {
        let api = self.api_mut(api_id)?;
        let Some(at) = api.deployments.iter().position(|d| d.id == id) else {
            return Err(LifecycleError::not_found(format!(
                "API `{api_id}` has no deployment `{id}`"
            )));
        };
        let serving = api.stages.values().find(|s| {
            s.deployment_id == id || s.canary.as_ref().is_some_and(|c| c.deployment_id == id)
        });
        if let Some(stage) = serving {
            // API Gateway's own words for this refusal.
            return Err(LifecycleError::bad_request(format!(
                "Active stages pointing to this deployment must be moved or deleted \
                 (stage `{}` serves deployment `{id}`)",
                stage.name
            )));
        }
        api.deployments.remove(at);
        Ok(())
    }

    pub(super) fn create_stage(
        &mut self,
        api_id: &str,
        name: &str,
        deployment_id: &str,
        config: StageConfig,
        now: SystemTime,
    ) -> Result<Stage, LifecycleError> {
        check_stage_name(name)?;
        no_file_canary(&config)?;
        let api = self.api_mut(api_id)?;
        if api.deployment(deployment_id).is_none() {
            return Err(LifecycleError::bad_request(format!(
                "deployment_id: API `{api_id}` has no deployment `{deployment_id}`"
            )));
        }
        if api.stages.contains_key(name) {
            return Err(LifecycleError::conflict(format!(
                "API `{api_id}` has a stage `{name}`"
            )));
        }
        let stage = Stage {
            name: name.to_owned(),
            api_id: api_id.to_owned(),
            deployment_id: deployment_id.to_owned(),
            description: None,
            config,
            canary: None,
            created_date: now,
            last_updated_date: now,
        };
        api.stages.insert(name.to_owned(), stage.clone());
        Ok(stage)
    }

    pub(super) fn update_stage(
        &mut self,
        api_id: &str,
        name: &str,
        changes: Vec<StageChange>,
        now: SystemTime,
    ) -> Result<Stage, LifecycleError> {
        let api = self.api_mut(api_id)?;
        let mut stage = api.stage_mut(name)?.clone();
        for change in changes {
            match change {
                StageChange::Deployment(id) => {
                    if api.deployment(&id).is_none() {
                        return Err(LifecycleError::bad_request(format!(
                            "deployment_id: API `{api_id}` has no deployment `{id}`"
                        )));
                    }
                    if id != stage.deployment_id && stage.canary.is_some() {
                        return Err(canary_blocks(name));
                    }
                    stage.deployment_id = id;
                }
                StageChange::Description(d) => stage.description = d,
                StageChange::Variables(v) => stage.config.variables = v,
                StageChange::Config(c) => {
                    no_file_canary(&c)?;
                    stage.config = *c;
                }
                StageChange::Canary(c) => {
                    check_canary("canary_settings", api, &c)?;
                    stage.canary = Some(c);
                }
                StageChange::CanaryPercent(p) => {
                    let c = canary_of(&mut stage)?;
                    c.percent_traffic = p;
                    let c = c.clone();
                    check_canary("canary_settings", api, &c)?;
                }
                StageChange::CanaryOverrides(o) => {
                    canary_of(&mut stage)?.stage_variable_overrides = o
                }
                StageChange::CanaryUseStageCache(u) => canary_of(&mut stage)?.use_stage_cache = u,
                StageChange::CanarySticky(s) => canary_of(&mut stage)?.sticky = s,
                StageChange::PromoteCanary => {
                    let c = canary_of(&mut stage)?;
                    c.percent_traffic = 0.0;
                    let (deployment, overrides) =
                        (c.deployment_id.clone(), c.stage_variable_overrides.clone());
                    stage.deployment_id = deployment;
                    stage.config.variables.extend(overrides);
                }
                StageChange::RemoveCanary => stage.canary = None,
                StageChange::DeploymentFromCanary => {
                    stage.deployment_id = canary_of(&mut stage)?.deployment_id.clone();
                }
                StageChange::VariablesFromCanary => {
                    let overrides = canary_of(&mut stage)?.stage_variable_overrides.clone();
                    stage.config.variables.extend(overrides);
                }
            }
        }
        stage.last_updated_date = now;
        api.stages.insert(name.to_owned(), stage.clone());
        Ok(stage)
    }

    pub(super) fn delete_stage(&mut self, api_id: &str, name: &str) -> Result<(), LifecycleError> {
        self.api_mut(api_id)?.stage_mut(name)?;
        let single = self.apis.len() == 1;
        let planned = self.plans.iter().find(|(_, p)| {
            p.stages
                .iter()
                .any(|s| super::table::names_stage(s, api_id, name, single))
        });
        if let Some((plan, _)) = planned {
            return Err(LifecycleError::bad_request(format!(
                "stage `{name}` is in the usage plan `{plan}`: take it out of the plan first"
            )));
        }
        if let Some((domain, base)) = self.mapping_to(api_id, name) {
            return Err(LifecycleError::bad_request(format!(
                "stage `{name}` is served by the base path mapping `{base}` of `{domain}`: \
                 delete the mapping first"
            )));
        }
        self.api_mut(api_id)?.stages.remove(name);
        Ok(())
    }

    fn mapping_to(&self, api_id: &str, stage: &str) -> Option<(String, String)> {
        self.domains.values().find_map(|d| {
            d.base_path_mappings
                .iter()
                .find(|(_, m)| m.api_id == api_id && m.stage == stage)
                .map(|(base, _)| (d.name.clone(), base.clone()))
        })
    }

    pub(super) fn create_domain(&mut self, name: &str) -> Result<DomainName, LifecycleError> {
        let key = domain_key(name);
        // An address is not a domain name: mapping one would capture every
        // request sent to the server by address.
        let address = key.parse::<std::net::IpAddr>().is_ok()
            || key
                .rsplit('.')
                .next()
                .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if key.starts_with("*.") || !is_host_name(&key) || address {
            return Err(LifecycleError::bad_request(format!(
                "domain_name: `{name}` is not a domain name (labels of letters, digits and `-`, \
                 dot-separated, the last not all digits; no port; no wildcard; no address)"
            )));
        }
        if self.domains.contains_key(&key) {
            return Err(LifecycleError::conflict(format!(
                "domain_name: `{name}` exists (names are case-insensitive)"
            )));
        }
        let domain = DomainName {
            name: name.to_owned(),
            base_path_mappings: BTreeMap::new(),
        };
        self.domains.insert(key, domain.clone());
        Ok(domain)
    }

    pub(super) fn delete_domain(&mut self, name: &str) -> Result<(), LifecycleError> {
        self.domains
            .remove(&domain_key(name))
            .map(|_| ())
            .ok_or_else(|| LifecycleError::not_found(format!("no domain name `{name}`")))
    }

    pub(super) fn create_base_path_mapping(
        &mut self,
        domain: &str,
        base_path: &str,
        target: BasePathMapping,
    ) -> Result<(), LifecycleError> {
        if !is_base_path(base_path) {
            return Err(LifecycleError::bad_request(format!(
                "base_path: `{base_path}` is not a base path (\"\", or segments of letters, digits \
                 and `$-_.+!*'()` joined by `/`, no leading or trailing `/`)"
            )));
        }
        self.api(&target.api_id)?
            .stages
            .get(&target.stage)
            .ok_or_else(|| {
                LifecycleError::bad_request(format!(
                    "stage: API `{}` has no stage `{}`",
                    target.api_id, target.stage
                ))
            })?;
        let d = self
            .domains
            .get_mut(&domain_key(domain))
            .ok_or_else(|| LifecycleError::not_found(format!("no domain name `{domain}`")))?;
        if d.base_path_mappings.contains_key(base_path) {
            return Err(LifecycleError::conflict(format!(
                "base_path: `{domain}` maps `{base_path}` already"
            )));
        }
        d.base_path_mappings.insert(base_path.to_owned(), target);
        Ok(())
    }

    pub(super) fn delete_base_path_mapping(
        &mut self,
        domain: &str,
        base_path: &str,
    ) -> Result<(), LifecycleError> {
        let d = self
            .domains
            .get_mut(&domain_key(domain))
            .ok_or_else(|| LifecycleError::not_found(format!("no domain name `{domain}`")))?;
        d.base_path_mappings
            .remove(base_path)
            .map(|_| ())
            .ok_or_else(|| {
                LifecycleError::not_found(format!("`{domain}` maps no base path `{base_path}`"))
            })
    }
}

impl State {
    /// Makes the API `api_id` what the single-API `config` says: its
    /// definition (a new deployment when it differs from every deployment's;
    /// an existing one when one has it already), every stage it lists
    /// pointing there with its settings and canary, the stages it does not
    /// list deleted, its domains and plans replacing the lifecycle's.
    pub(super) fn reload(
        &mut self,
        api_id: &str,
        config: Config,
        base: &Config,
        now: SystemTime,
    ) -> Result<Reloaded, LifecycleError> {
        let mut out = Reloaded {
            needs_restart: needs_restart(&config, base),
            ..Reloaded::default()
        };
        // The file's plans name its stages bare: this API's.
        self.plans = config.plans.clone();
        for plan in self.plans.values_mut() {
            for stage in &mut plan.stages {
                if !stage.contains('/') {
                    *stage = format!("{api_id}/{stage}");
                }
            }
        }
        let domains = config.domains.clone();
        self.reload_api(api_id, config, now, false, &mut out)?;
        // This API's mappings are the file's; other APIs' stay.
        for d in self.domains.values_mut() {
            d.base_path_mappings.retain(|_, m| m.api_id != api_id);
        }
        self.add_domains(&domains, Some(api_id))?;
        self.check_plans()?;
        Ok(out)
    }

    /// The same for a multi-API config: each of `apis` (id, its file's
    /// config) reloaded (created when new), then `top`'s domains and plans
    /// replacing the lifecycle's. APIs the file no longer lists stay.
    pub(super) fn reload_many(
        &mut self,
        apis: Vec<(String, Config)>,
        top: &Config,
        base: &Config,
        now: SystemTime,
    ) -> Result<Reloaded, LifecycleError> {
        let mut out = Reloaded {
            needs_restart: needs_restart(top, base),
            ..Reloaded::default()
        };
        self.plans = top.plans.clone();
        for (id, config) in apis {
            if !self.apis.contains_key(&id) {
                let name = config.name.clone().unwrap_or_else(|| id.clone());
                self.create_api(Some(id.clone()), &name, config.clone(), now)
                    .map_err(|e| e.at(&format!("apis.{id}")))?;
            }
            self.reload_api(&id, config, now, true, &mut out)
                .map_err(|e| e.at(&format!("apis.{id}")))?;
        }
        for d in self.domains.values_mut() {
            d.base_path_mappings.clear();
        }
        self.add_domains(&top.domains, None)?;
        self.check_plans()?;
        Ok(out)
    }

    /// Adds `domains`' mappings; `api`: the API of mappings that name none.
    fn add_domains(
        &mut self,
        domains: &BTreeMap<String, crate::route::DomainConfig>,
        api: Option<&str>,
    ) -> Result<(), LifecycleError> {
        for (host, domain) in domains {
            if !self.domains.contains_key(&domain_key(host)) {
                self.create_domain(host)?;
            }
            for (base, mapping) in &domain.base_paths {
                let at = crate::config::PathBuf::root()
                    .field("domains")
                    .field(host)
                    .field("base_paths")
                    .field(base);
                let Some(api_id) = mapping.api.as_deref().or(api) else {
                    return Err(LifecycleError::bad_request(format!(
                        "{}.api: name the API",
                        at.as_str()
                    )));
                };
                let target = BasePathMapping::new(api_id, mapping.stage.clone());
                self.create_base_path_mapping(host, base, target)
                    .map_err(|e| e.at(at.as_str()))?;
            }
        }
        self.domains.retain(|_, d| !d.base_path_mappings.is_empty());
        Ok(())
    }

    /// One API's definition, stages and canaries from its file; the stages
    /// changed go to `out` as `api/stage` when `qualified`.
    fn reload_api(
        &mut self,
        api_id: &str,
        config: Config,
        now: SystemTime,
        qualified: bool,
        out: &mut Reloaded,
    ) -> Result<(), LifecycleError> {
        let named = |stage: &str| {
            if qualified {
                format!("{api_id}/{stage}")
            } else {
                stage.to_owned()
            }
        };
        let stages = config.stages.clone();
        let listed: Vec<String> = stages.keys().cloned().collect();
        let canaries: Vec<(String, Option<CanaryConfig>)> = stages
            .iter()
            .map(|(n, s)| (n.clone(), s.canary.clone()))
            .collect();
        let api = self.api_mut(api_id)?;
        let mut definition = definition_of(config);
        definition.name = Some(api.api.name.clone());
        check_definition(&definition)?;
        let existing = api
            .deployments
            .iter()
            .rev()
            .find(|d| *d.definition == definition)
            .map(|d| d.id.clone());
        let definition = Arc::new(definition);
        api.api.definition = definition.clone();
        let deployment_id = match existing {
            Some(id) => id,
            None => {
                let d = Deployment {
                    id: new_id(),
                    api_id: api_id.to_owned(),
                    description: Some("reloaded from the config file".to_owned()),
                    created_date: now,
                    definition,
                };
                api.deployments.push(d.clone());
                let id = d.id.clone();
                out.deployments.push(d);
                id
            }
        };
        for (name, config) in stages {
            check_stage_name(&name)?;
            match api.stages.get_mut(&name) {
                Some(stage) => {
                    if stage.deployment_id == deployment_id && stage.config == config {
                        continue;
                    }
                    stage.deployment_id = deployment_id.clone();
                    stage.config = config;
                    stage.last_updated_date = now;
                }
                None => {
                    api.stages.insert(
                        name.clone(),
                        Stage {
                            name: name.clone(),
                            api_id: api_id.to_owned(),
                            deployment_id: deployment_id.clone(),
                            description: None,
                            config,
                            canary: None,
                            created_date: now,
                            last_updated_date: now,
                        },
                    );
                }
            }
            out.stages.push(named(&name));
        }
        let gone: Vec<String> = api
            .stages
            .keys()
            .filter(|s| !listed.contains(s))
            .cloned()
            .collect();
        for name in gone {
            if let Some(api) = self.apis.get_mut(api_id) {
                api.stages.remove(&name);
            }
            out.stages.push(named(&name));
        }
        // Each listed stage's canary is the file's (none: removed).
        for (name, c) in canaries {
            self.file_canary(api_id, &name, c.as_ref(), now)?;
        }
        Ok(())
    }
}

/// The gateway-wide parts of `config` that differ from `base`'s.
fn needs_restart(config: &Config, base: &Config) -> Vec<&'static str> {
    [
        ("keys", config.keys != base.keys),
        ("credentials", config.credentials != base.credentials),
        ("throttle", config.throttle != base.throttle),
        (
            "throttle_options",
            config.throttle_options != base.throttle_options,
        ),
        (
            "api_key_options",
            config.api_key_options != base.api_key_options,
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

impl State {
    pub(super) fn put_plan(&mut self, name: &str, plan: PlanConfig) -> Result<(), LifecycleError> {
        if name.is_empty() {
            return Err(LifecycleError::bad_request("name: must not be empty"));
        }
        self.check_plan(name, &plan)?;
        self.plans.insert(name.to_owned(), plan);
        Ok(())
    }

    /// Every plan names stages that exist (after a reload).
    fn check_plans(&self) -> Result<(), LifecycleError> {
        for (name, plan) in &self.plans {
            self.check_plan(name, plan)?;
        }
        Ok(())
    }

    fn check_plan(&self, name: &str, plan: &PlanConfig) -> Result<(), LifecycleError> {
        let single = self.apis.len() == 1;
        for (i, entry) in plan.stages.iter().enumerate() {
            let found = self.apis.values().any(|a| {
                a.stages
                    .keys()
                    .any(|s| super::table::names_stage(entry, &a.api.id, s, single))
            });
            if !found {
                return Err(LifecycleError::bad_request(format!(
                    "plans.{name}.stages[{i}]: no stage `{entry}` (name one as `api/stage`)"
                )));
            }
        }
        Ok(())
    }

    pub(super) fn delete_plan(&mut self, name: &str) -> Result<(), LifecycleError> {
        self.plans
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| LifecycleError::not_found(format!("no usage plan `{name}`")))
    }
}

/// A domain's key: lower case, a final dot dropped.
pub(super) fn domain_key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn canary_of(stage: &mut Stage) -> Result<&mut CanarySettings, LifecycleError> {
    let name = stage.name.clone();
    stage.canary.as_mut().ok_or_else(|| {
        LifecycleError::bad_request(format!("stage `{name}` has no canary settings"))
    })
}

/// A stage config given through the Rust API sets its canary with
/// [`StageChange::Canary`], not a file's `canary` section.
fn no_file_canary(config: &StageConfig) -> Result<(), LifecycleError> {
    match config.canary {
        Some(_) => Err(LifecycleError::bad_request(
            "config.canary: a file's section; set a canary with canary settings \
             (`StageChange::Canary`, `DeploymentInput::as_canary`)",
        )),
        None => Ok(()),
    }
}

fn canary_blocks(stage: &str) -> LifecycleError {
    LifecycleError::bad_request(format!(
        "stage `{stage}` has canary settings: it cannot be pointed at another deployment until \
         they are removed (promote the canary, or remove it first)"
    ))
}
