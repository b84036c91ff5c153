//! The JSON document a [`DeploymentStore`](crate::deployments::DeploymentStore)
//! holds: the lifecycle's state, definitions included, no secrets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::file::parse_sticky;
use super::model::*;
use super::state::{ApiState, State};
use crate::gateway::{Config, PlanConfig, StageConfig};

/// The stored document.
#[derive(Serialize, Deserialize)]
struct Document {
    apis: Vec<ApiDoc>,
    domains: Vec<DomainDoc>,
    plans: BTreeMap<String, PlanConfig>,
}

#[derive(Serialize, Deserialize)]
struct ApiDoc {
    id: String,
    name: String,
    created_ms: u64,
    definition: Config,
    deployments: Vec<DeploymentDoc>,
    stages: Vec<StageDoc>,
}

#[derive(Serialize, Deserialize)]
struct DeploymentDoc {
    id: String,
    description: Option<String>,
    created_ms: u64,
    definition: Config,
}

#[derive(Serialize, Deserialize)]
struct StageDoc {
    name: String,
    deployment_id: String,
    description: Option<String>,
    config: StageConfig,
    canary: Option<CanaryDoc>,
    created_ms: u64,
    updated_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct CanaryDoc {
    deployment_id: String,
    percent_traffic: f64,
    stage_variable_overrides: BTreeMap<String, String>,
    use_stage_cache: bool,
    sticky: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DomainDoc {
    name: String,
    base_path_mappings: BTreeMap<String, (String, String)>,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn sticky_text(s: &Sticky) -> String {
    match s {
        Sticky::ApiKey => "api_key".to_owned(),
        Sticky::ClientIp => "client_ip".to_owned(),
        Sticky::Header(h) => format!("header.{h}"),
    }
}

/// The state as the stores keep it.
pub(super) fn to_document(state: &State) -> Result<String, LifecycleError> {
    let doc = Document {
        apis: state
            .apis
            .values()
            .map(|a| ApiDoc {
                id: a.api.id.clone(),
                name: a.api.name.clone(),
                created_ms: ms(a.api.created_date),
                definition: Config::clone(&a.api.definition),
                deployments: a
                    .deployments
                    .iter()
                    .map(|d| DeploymentDoc {
                        id: d.id.clone(),
                        description: d.description.clone(),
                        created_ms: ms(d.created_date),
                        definition: Config::clone(&d.definition),
                    })
                    .collect(),
                stages: a
                    .stages
                    .values()
                    .map(|s| StageDoc {
                        name: s.name.clone(),
                        deployment_id: s.deployment_id.clone(),
                        description: s.description.clone(),
                        config: s.config.clone(),
                        canary: s.canary.as_ref().map(|c| CanaryDoc {
                            deployment_id: c.deployment_id.clone(),
                            percent_traffic: c.percent_traffic,
                            stage_variable_overrides: c.stage_variable_overrides.clone(),
                            use_stage_cache: c.use_stage_cache,
                            sticky: c.sticky.as_ref().map(sticky_text),
                        }),
                        created_ms: ms(s.created_date),
                        updated_ms: ms(s.last_updated_date),
                    })
                    .collect(),
            })
            .collect(),
        domains: state
            .domains
            .values()
            .map(|d| DomainDoc {
                name: d.name.clone(),
                base_path_mappings: d
                    .base_path_mappings
                    .iter()
                    .map(|(b, m)| (b.clone(), (m.api_id.clone(), m.stage.clone())))
                    .collect(),
            })
            .collect(),
        plans: state.plans.clone(),
    };
    serde_json::to_string(&doc)
        .map_err(|e| LifecycleError::bad_request(format!("the state does not serialize: {e}")))
}

/// The state a stored document holds.
pub(super) fn from_document(text: &str) -> Result<State, LifecycleError> {
    let doc: Document = serde_json::from_str(text).map_err(|e| {
        LifecycleError::bad_request(format!("the stored lifecycle is not readable: {e}"))
    })?;
    let mut state = State {
        plans: doc.plans,
        ..State::default()
    };
    for a in doc.apis {
        let api = Api {
            id: a.id.clone(),
            name: a.name,
            definition: Arc::new(a.definition),
            created_date: time(a.created_ms),
        };
        let deployments = a
            .deployments
            .into_iter()
            .map(|d| Deployment {
                id: d.id,
                api_id: a.id.clone(),
                description: d.description,
                created_date: time(d.created_ms),
                definition: Arc::new(d.definition),
            })
            .collect();
        let stages = a
            .stages
            .into_iter()
            .map(|s| {
                let stage = Stage {
                    name: s.name.clone(),
                    api_id: a.id.clone(),
                    deployment_id: s.deployment_id,
                    description: s.description,
                    config: s.config,
                    canary: s.canary.map(|c| CanarySettings {
                        deployment_id: c.deployment_id,
                        percent_traffic: c.percent_traffic,
                        stage_variable_overrides: c.stage_variable_overrides,
                        use_stage_cache: c.use_stage_cache,
                        sticky: c.sticky.as_deref().and_then(parse_sticky),
                    }),
                    created_date: time(s.created_ms),
                    last_updated_date: time(s.updated_ms),
                };
                (s.name, stage)
            })
            .collect();
        state.apis.insert(
            a.id,
            ApiState {
                api,
                deployments,
                stages,
            },
        );
    }
    for d in doc.domains {
        let key = super::state::domain_key(&d.name);
        let domain = DomainName {
            name: d.name,
            base_path_mappings: d
                .base_path_mappings
                .into_iter()
                .map(|(b, (api, stage))| (b, BasePathMapping::new(api, stage)))
                .collect(),
        };
        state.domains.insert(key, domain);
    }
    Ok(state)
}
