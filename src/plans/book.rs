//! The usage plans a gateway enforces, swappable while it serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::Quota;
use crate::gateway::{Config, ConfigError, PlanConfig, validate};
use crate::throttle::Spec;

/// One plan, resolved for the layers that read it.
#[derive(Debug, Default)]
pub(crate) struct PlanDef {
    /// Stages the plan's keys may call.
    pub(crate) stages: Vec<Arc<str>>,
    /// One bucket per key.
    pub(crate) throttle: Option<Spec>,
    /// One bucket per key and method, by endpoint index.
    pub(crate) methods: Vec<Option<Spec>>,
    /// Requests per key per period.
    pub(crate) quota: Option<Quota>,
}

pub(crate) type Plans = HashMap<Arc<str>, PlanDef>;

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

    fn replace(&self, plans: Plans) {
        self.0.store(Arc::new(plans));
    }
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
#[derive(Debug, Clone)]
pub struct PlanManager {
    pub(crate) book: PlanBook,
    pub(crate) config: Arc<Mutex<Config>>,
}

impl PlanManager {
    fn change(&self, f: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = current.clone();
        f(&mut next);
        let resolved = validate::resolve(&next)?;
        self.book.replace(resolved.plans);
        *current = next;
        Ok(())
    }

    /// Creates or replaces the plan `name`. Keys already in it keep it.
    pub fn put(&self, name: &str, plan: PlanConfig) -> Result<(), ConfigError> {
        self.change(|c| {
            c.plans.insert(name.to_owned(), plan);
        })
    }

    /// Deletes the plan `name`; its keys are refused on its stages until
    /// attached to another plan. Whether there was such a plan.
    pub fn delete(&self, name: &str) -> Result<bool, ConfigError> {
        let mut existed = false;
        self.change(|c| {
            existed = c.plans.remove(name).is_some();
            for k in &mut c.keys {
                k.plans.retain(|p| p != name);
            }
        })?;
        Ok(existed)
    }

    /// The plan `name` as configured.
    pub fn get(&self, name: &str) -> Option<PlanConfig> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plans
            .get(name)
            .cloned()
    }

    /// Every plan's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plans
            .keys()
            .cloned()
            .collect()
    }
}
