//! The `plans` section: usage plans and their quotas.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Period;
use crate::throttle::ThrottleConfig;

/// A usage plan: which stages its keys may call, how fast and how much.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
}

/// A plan's settings for one method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
        }
    }
}

/// A quota: at most `limit` requests per key per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Requests per period, at least 1.
    pub limit: u64,
    /// The calendar period (UTC).
    pub period: Period,
    /// Requests subtracted from the limit in the first period, below `limit`. Default 0.
    #[serde(default)]
    pub offset: u64,
}
