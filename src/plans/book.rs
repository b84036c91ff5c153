//! The usage plans a gateway enforces, swappable while it serves.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{PlanConfig, Quota};
use crate::config::ConfigError;
use crate::context::PerEndpoint;
use crate::keys::KeyConfig;
use crate::throttle::Spec;

/// One plan, resolved for the layers that read it.
#[derive(Debug, Default)]
pub(crate) struct PlanDef {
    /// Stages the plan's keys may call.
    pub(crate) stages: Vec<Arc<str>>,
    /// One bucket per key.
    pub(crate) throttle: Option<Spec>,
    /// One bucket per key and method.
    pub(crate) methods: PerEndpoint<Spec>,
    /// Requests per key per period.
    pub(crate) quota: Option<Quota>,
}

pub(crate) type Plans = HashMap<Arc<str>, PlanDef, foldhash::fast::RandomState>;

/// The plans, shared by the key, throttle and meter layers: read without a
/// lock on every request, replaced whole when a plan changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlanBook(Arc<ArcSwap<Plans>>);

impl PlanBook {
    pub(crate) fn new(plans: Plans) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(plans)))
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Plans>> {
        self.0.load()
    }

    pub(crate) fn load_full(&self) -> Arc<Plans> {
        self.0.load_full()
    }

    pub(crate) fn replace(&self, plans: Plans) {
        self.0.store(Arc::new(plans));
    }
}

/// A change to the plans and the keys attached to them.
pub(crate) type PlanChange<'a> =
    &'a mut dyn FnMut(&mut BTreeMap<String, PlanConfig>, &mut [KeyConfig]);

/// Where a [`PlanManager`] reads the configured plans and makes changes: the
/// gateway's whole config, re-checked on every change (a plan names stages
/// and methods, so it is valid only against the rest of the config).
pub(crate) trait PlanSource: Send + Sync {
    /// Applies `change` to a copy of the config and checks it whole. Valid:
    /// the copy becomes the config and its resolved plans replace `book`'s,
    /// both under one lock, so concurrent changes are served in the order
    /// they were committed. Invalid: nothing changes and the error names
    /// every problem.
    fn change(&self, change: PlanChange<'_>, book: &PlanBook) -> Result<(), ConfigError>;

    /// The configured plans.
    fn plans(&self) -> BTreeMap<String, PlanConfig>;
}

/// Creates, replaces and deletes a gateway's usage plans while it serves.
/// Every change is checked with the config's own rules (a plan's stages,
/// throttles, quota and methods must be valid for the gateway's routes and
/// stages) before it takes effect.
///
/// ```
/// use tollgate::gateway::{PlanConfig, QuotaConfig, ThrottleConfig};
/// use tollgate::plans::Period;
/// use tollgate::{Config, Gateway};
///
/// let gw = Gateway::new(Config::from_yaml_str("routes: { /a: [GET] }\nstages: { prod: {} }\n")?)?;
/// let mut gold = PlanConfig::default();
/// gold.stages = vec!["prod".into()];
/// gold.throttle = Some(ThrottleConfig::new(100.0, 50));
/// gold.quota = Some(QuotaConfig::new(10_000, Period::Month));
/// gw.plans().put("gold", gold)?;
/// assert_eq!(gw.plans().names(), vec!["gold"]);
///
/// let mut bad = PlanConfig::default();
/// bad.stages = vec!["staging".into()];
/// let err = gw.plans().put("bad", bad).unwrap_err();
/// assert!(err.to_string().contains("plans.bad.stages[0]: unknown stage `staging`"));
/// # Ok::<(), tollgate::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct PlanManager {
    pub(crate) book: PlanBook,
    pub(crate) source: Arc<dyn PlanSource>,
}

impl fmt::Debug for PlanManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanManager")
            .field("plans", &self.source.plans().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PlanManager {
    fn change(&self, change: PlanChange<'_>) -> Result<(), ConfigError> {
        self.source.change(change, &self.book)
    }

    /// Creates or replaces the plan `name`. Keys already in it keep it.
    pub fn put(&self, name: &str, plan: PlanConfig) -> Result<(), ConfigError> {
        self.change(&mut |plans, _| {
            plans.insert(name.to_owned(), plan.clone());
        })
    }

    /// Deletes the plan `name`; its keys are refused on its stages until
    /// attached to another plan. Whether there was such a plan.
    pub fn delete(&self, name: &str) -> Result<bool, ConfigError> {
        let mut existed = false;
        self.change(&mut |plans, keys| {
            existed = plans.remove(name).is_some();
            for k in keys.iter_mut() {
                k.plans.retain(|p| p != name);
            }
        })?;
        Ok(existed)
    }

    /// The plan `name` as configured.
    pub fn get(&self, name: &str) -> Option<PlanConfig> {
        self.source.plans().remove(name)
    }

    /// Every plan's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.source.plans().into_keys().collect()
    }
}
