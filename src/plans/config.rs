//! The `plans` section: usage plans and their quotas.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::book::{PlanDef, Plans};
use super::{Period, Quota};
use crate::config::{Issues, PathBuf};
use crate::context::PerEndpoint;
use crate::route::config::{MethodKey, RouteDef, RouteIndex, Routes, parse_method_key};
use crate::throttle::{LimitScope, Spec, ThrottleConfig};

/// A usage plan: which stages its keys may call, how fast and how much.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct PlanConfig {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Stages the plan's keys may call.
    #[serde(default)]
    pub stages: Vec<String>,
    /// One bucket per key across the plan's stages.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Requests per key per period.
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
    /// Per-method throttles inside the plan, keyed `RESOURCE/METHOD`.
    #[serde(default)]
    pub methods: BTreeMap<String, PlanMethodConfig>,
    /// Quota alert thresholds in percent of the limit (`[50, 80, 100]`):
    /// each fires once per key and period, as a
    /// [`QuotaAlert`](crate::usage::QuotaAlert) notice to the usage sinks.
    /// Needs a `quota`. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<u8>,
}

/// A plan's settings for one method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct PlanMethodConfig {
    /// One bucket per key for this method.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
}

impl QuotaConfig {
    /// `limit` requests per `period`, no offset.
    pub fn new(limit: u64, period: Period) -> Self {
        Self {
            limit,
            period,
            offset: 0,
            mode: crate::throttle::LimitMode::Enforce,
        }
    }
}

/// A quota: at most `limit` requests per key per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Requests per period, at least 1.
    pub limit: u64,
    /// The calendar period (UTC).
    pub period: Period,
    /// Requests subtracted from the limit in the first period, below `limit`. Default 0.
    #[serde(default)]
    pub offset: u64,
    /// `enforce` (the default) or `shadow`: counted and reported as a
    /// would-be rejection, but admitted.
    #[serde(
        default,
        skip_serializing_if = "crate::throttle::LimitMode::is_enforce"
    )]
    pub mode: crate::throttle::LimitMode,
}

/// Checks the `plans` section against the routes and stages it names. Every
/// method key must be one `RESOURCE/METHOD` (no wildcards: a plan's method
/// throttle is one bucket per key and method).
pub(crate) fn check_plans(
    plans: &BTreeMap<String, PlanConfig>,
    is_stage: impl Fn(&str) -> bool,
    routes: &[RouteDef],
    route_index: &RouteIndex<'_>,
    issues: &mut Issues,
) {
    let root = PathBuf::root().field("plans");
    for (name, plan) in plans {
        let path = root.field(name);
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            issues.push(
                &path,
                "a plan name is 1 to 128 characters, none of them control characters",
            );
        }
        for (i, s) in plan.stages.iter().enumerate() {
            if !is_stage(s) {
                issues.push(
                    &path.field("stages").index(i),
                    format!("unknown stage `{s}`"),
                );
            }
        }
        if let Some(t) = &plan.throttle {
            t.check_complete(&path.field("throttle"), issues);
        }
        if let Some(q) = &plan.quota {
            let qpath = path.field("quota");
            if q.limit == 0 {
                issues.push(&qpath.field("limit"), "must be > 0");
            }
            if q.offset >= q.limit && q.limit > 0 {
                issues.push(
                    &qpath.field("offset"),
                    format!("must be < limit ({})", q.limit),
                );
            }
        }
        for (i, p) in plan.alerts.iter().enumerate() {
            if !(1..=100).contains(p) {
                issues.push(&path.field("alerts").index(i), "a percentage, 1 to 100");
            }
        }
        if !plan.alerts.is_empty() && plan.quota.is_none() {
            issues.push(&path.field("alerts"), "alerts need a `quota`");
        }
        for (key, m) in &plan.methods {
            let mpath = path.field("methods").field(key);
            if let Err(msg) = parse_method_key(key, routes, route_index, false) {
                issues.push(&mpath, msg);
            }
            if let Some(t) = &m.throttle {
                t.check_complete(&mpath.field("throttle"), issues);
            }
        }
    }
}

/// Resolves checked plans for the layers that read them: each plan's stages,
/// per-key limit, quota, and per-key-and-method limits indexed by endpoint
/// (one bucket per key and method of each stage the plan covers).
pub(crate) fn resolve_plans(
    plans: &BTreeMap<String, PlanConfig>,
    routes: &Routes,
    route_index: &RouteIndex<'_>,
) -> Plans {
    let endpoints = routes.endpoint_count();
    plans
        .iter()
        .map(|(name, plan)| {
            // A plan without method throttles keeps an empty table: plans
            // times endpoints would otherwise be the config's memory.
            let mut methods = if plan.methods.is_empty() {
                Vec::new()
            } else {
                vec![None; endpoints]
            };
            for (key, m) in &plan.methods {
                let (Ok(MethodKey::Exact(ri, method)), Some(rate)) = (
                    parse_method_key(key, &routes.routes, route_index, false),
                    m.throttle.and_then(ThrottleConfig::complete),
                ) else {
                    continue;
                };
                let spec = Spec::new(LimitScope::ApiKeyMethod, rate);
                for stage in &routes.stages {
                    for e in stage.endpoints.get(ri).into_iter().flatten() {
                        if e.method == method {
                            methods[e.index] = Some(spec.clone());
                        }
                    }
                }
            }
            let def = PlanDef {
                stages: plan.stages.iter().map(|s| Arc::from(s.as_str())).collect(),
                throttle: plan
                    .throttle
                    .and_then(ThrottleConfig::complete)
                    .map(|r| Spec::new(LimitScope::ApiKey, r)),
                methods: PerEndpoint::from_values(methods),
                quota: plan.quota.map(|q| Quota::from(q).with_alerts(&plan.alerts)),
            };
            (Arc::from(name.as_str()), def)
        })
        .collect()
}
