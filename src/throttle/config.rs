//! The `throttle` and `throttle_options` sections, and a method's `throttle`.

use serde::Deserialize;

use crate::config::{Issues, PathBuf};
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

/// The most a rate may be: one request per nanosecond.
pub(crate) const MAX_RATE: f64 = 1e9;

impl ThrottleConfig {
    /// Checks the fields this limit names (a method override may name one).
    pub(crate) fn check_fields(&self, path: &PathBuf, issues: &mut Issues) {
        if let Some(rate) = self.rate {
            let rpath = path.field("rate");
            if rate.is_nan() {
                issues.push(&rpath, "must be a number, not NaN");
            } else if rate < 0.0 {
                issues.push(&rpath, format!("must be >= 0 (got {rate})"));
            } else if rate > MAX_RATE {
                issues.push(&rpath, "must be <= 1000000000 (one request per nanosecond)");
            }
        }
    }

    /// Checks a limit that must stand alone (gateway-wide, plans, per client).
    pub(crate) fn check_complete(&self, path: &PathBuf, issues: &mut Issues) {
        self.check_fields(path, issues);
        check_combination(self.rate, self.burst, path, issues);
    }
}

/// Checks a rate and burst together, as they end up after the overlay.
pub(crate) fn check_combination(
    rate: Option<f64>,
    burst: Option<u32>,
    path: &PathBuf,
    issues: &mut Issues,
) {
    match (rate, burst) {
        (None, None) => {}
        (Some(_), None) => issues.push(&path.field("burst"), "is required"),
        (None, Some(_)) => issues.push(&path.field("rate"), "is required"),
        (Some(rate), Some(burst)) if rate.is_finite() => {
            if rate == 0.0 && burst > 0 {
                issues.push(
                    &path.field("rate"),
                    "must be > 0 when burst is > 0 (rate 0 with burst 0 blocks every request)",
                );
            } else if rate > 0.0 && burst == 0 {
                issues.push(
                    &path.field("burst"),
                    "must be > 0 when rate is > 0 (an empty bucket admits nothing)",
                );
            }
        }
        (Some(_), Some(_)) => {} // already reported by check_fields
    }
}

impl ThrottleOptions {
    /// Checks the options and returns the trusted proxies, parsed.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) -> Vec<ipnet::IpNet> {
        if let Some(t) = &self.per_client {
            t.check_complete(&path.field("per_client"), issues);
        }
        if self.max_tracked_keys == Some(0) {
            issues.push(&path.field("max_tracked_keys"), "must be at least 1");
        }
        let mut nets = Vec::new();
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            match p
                .parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(n) => nets.push(n),
                Err(_) => issues.push(
                    &path.field("trusted_proxies").index(i),
                    format!("`{p}` is not an IP address or CIDR block"),
                ),
            }
        }
        nets
    }
}
