//! The `throttle` and `throttle_options` sections, and a method's `throttle`.

use serde::Deserialize;

use crate::store::FailMode;

/// Options of the throttle layer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ThrottleOptions {
    /// Whether admitted responses carry `RateLimit-Policy` and `RateLimit`
    /// (429s always do). Default true.
    #[serde(default)]
    pub headers: Option<bool>,
    /// What to do when the rate store fails. Default `open`.
    #[serde(default)]
    pub fail_mode: Option<FailMode>,
    /// Most buckets the in-memory store tracks, at least 1. Default 1,000,000.
    #[serde(default)]
    pub max_tracked_keys: Option<usize>,
    /// What a request with a new key (client address, API key) gets when
    /// the in-memory store already tracks `max_tracked_keys`: `reject`
    /// (default: 429 `THROTTLED`, `Retry-After: 1`) or `admit` (untracked).
    /// Either way it is counted (`InMemoryRateStore::untracked`).
    #[serde(default)]
    pub on_capacity: Option<crate::throttle::OnCapacity>,
    /// One bucket per client IP, across the gateway. Both fields required.
    #[serde(default)]
    pub per_client: Option<ThrottleConfig>,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// A token-bucket limit: a steady `rate` in requests per second and a `burst`.
///
/// In a method override either field may be left out to keep the stage's
/// value; everywhere else both are required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Requests per second, `0 ..= 1e9`, fractions allowed (`0.5` is one request every two seconds).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Bucket size: how many requests may arrive at once.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl ThrottleConfig {
    /// A complete limit.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: Some(rate),
            burst: Some(burst),
        }
    }
}
