//! Effective per-method settings, resolved once when the gateway is built.

use super::config::{
    Authorization, CacheConfig, IntegrationConfig, MethodSettingsConfig, ThrottleConfig,
};
pub use crate::cache::{CacheKeyParam, CacheSettings, DEFAULT_CACHE_TTL};
pub use crate::context::MethodSettings;
pub use crate::throttle::Rate;

/// The un-finished merge of settings layers: each field is the last value any
/// layer named.
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    pub(crate) throttle_rate: Option<f64>,
    pub(crate) throttle_burst: Option<u32>,
    pub(crate) cache: CacheConfig,
    /// `enabled` as the method's own `RESOURCE/METHOD` override gives it.
    pub(crate) cache_enabled_by_method: Option<bool>,
    pub(crate) api_key_required: Option<bool>,
    pub(crate) authorization: Option<Authorization>,
    pub(crate) authorizer: Option<String>,
    pub(crate) integration: Option<IntegrationConfig>,
    pub(crate) mapping: Option<crate::mapping::MappingConfig>,
}

impl Merged {
    /// Lays `over` on top of what is merged so far, field by field.
    pub(crate) fn apply(&mut self, over: &MethodSettingsConfig) {
        if let Some(ThrottleConfig { rate, burst }) = over.throttle {
            self.throttle_rate = rate.or(self.throttle_rate);
            self.throttle_burst = burst.or(self.throttle_burst);
        }
        if let Some(c) = &over.cache {
            self.cache.overlay(c);
        }
        if over.api_key_required.is_some() {
            self.api_key_required = over.api_key_required;
        }
        if over.authorization.is_some() {
            self.authorization = over.authorization;
        }
        if over.authorizer.is_some() {
            self.authorizer.clone_from(&over.authorizer);
        }
        if over.integration.is_some() {
            self.integration.clone_from(&over.integration);
        }
        if over.mapping.is_some() {
            self.mapping.clone_from(&over.mapping);
        }
    }
}
