//! The `throttle` and `throttle_options` sections, and a method's `throttle`.

use serde::Deserialize;

use std::sync::Arc;

use super::{DEFAULT_MAX_KEYS, GatewayLimits, InMemoryRateStore, Rate, RateStore, ThrottleLayer};
use crate::clock::Clock;
use crate::config::{Issues, Merged, PathBuf};
use crate::plans::PlanBook;
use crate::response::GatewayResponses;
use crate::store::FailMode;

/// Options of the throttle layer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct ThrottleOptions {
    /// Whether admitted responses carry `RateLimit-Policy` and `RateLimit`
    /// (429s always do). Default false, as API Gateway; see the
    /// [module docs](crate::throttle) for why.
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Requests per second, `0 ..= 1e9`, fractions allowed (`0.5` is one request every two seconds).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Bucket size: how many requests may arrive at once.
    #[serde(default)]
    pub burst: Option<u32>,
    /// `enforce` (the default) or `shadow`: see [`LimitMode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<LimitMode>,
}

impl ThrottleConfig {
    /// A complete limit.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: Some(rate),
            burst: Some(burst),
            mode: None,
        }
    }
}

/// Whether a limit refuses what is over it (`enforce`, the default) or
/// only reports it (`shadow`): a shadow limit is evaluated and counted as
/// if enforced, and a request over it is admitted, its usage event marked
/// with the would-be rejection (`shadowRejection`). For trying a limit
/// before enforcing it; beyond API Gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    /// Over the limit: refused (429).
    #[default]
    Enforce,
    /// Over the limit: admitted and reported.
    Shadow,
}

impl LimitMode {
    /// Whether this is [`Enforce`](Self::Enforce) (for serde's
    /// `skip_serializing_if`).
    pub fn is_enforce(&self) -> bool {
        *self == Self::Enforce
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

impl crate::config::Overlay for ThrottleConfig {
    /// A method override may name only `rate` or only `burst`; the other is
    /// kept from the layer below.
    fn overlay(&mut self, over: &Self) {
        self.rate = over.rate.or(self.rate);
        self.burst = over.burst.or(self.burst);
        self.mode = over.mode.or(self.mode);
    }
}

impl ThrottleConfig {
    /// The limit, when both fields are given (validation has made sure of it
    /// wherever a limit must stand alone).
    pub(crate) fn complete(self) -> Option<Rate> {
        let rate = Rate::new(self.rate?, self.burst?);
        Some(match self.mode {
            Some(LimitMode::Shadow) => rate.shadow(),
            _ => rate,
        })
    }
}

/// Resolves a method's throttle from its merged layers: both fields or
/// neither, reported at the deepest layer that named one.
pub(crate) fn resolve_method(merged: &Merged<ThrottleConfig>, issues: &mut Issues) -> Option<Rate> {
    let (rate, burst) = merged.value.map_or((None, None), |t| (t.rate, t.burst));
    check_combination(rate, burst, &merged.path.field("throttle"), issues);
    merged.value.and_then(ThrottleConfig::complete)
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
    /// The in-memory store these options ask for: `max_tracked_keys`
    /// buckets, `on_capacity`, and one fixed slot per endpoint (`0`: none,
    /// for a store several gateways share, which keys methods by name).
    pub(crate) fn memory_store(
        &self,
        clock: Arc<dyn Clock>,
        endpoints: usize,
    ) -> Arc<dyn RateStore> {
        Arc::new(
            InMemoryRateStore::with_max_keys(
                clock,
                self.max_tracked_keys.unwrap_or(DEFAULT_MAX_KEYS),
            )
            .on_capacity(self.on_capacity.unwrap_or_default())
            .with_endpoint_slots(endpoints),
        )
    }

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

impl ThrottleOptions {
    /// The gateway's throttle layer: its `limits` and the plans' limits,
    /// counted in `store` (default: an in-memory store tracking
    /// `max_tracked_keys` buckets beside one fixed slot per endpoint),
    /// refusing with `responses`.
    pub(crate) fn layer(
        &self,
        limits: GatewayLimits,
        plans: PlanBook,
        store: Option<Arc<dyn RateStore>>,
        clock: Arc<dyn Clock>,
        endpoints: usize,
        responses: GatewayResponses,
    ) -> ThrottleLayer {
        let store = store.unwrap_or_else(|| self.memory_store(clock, endpoints));
        ThrottleLayer::for_gateway(limits, plans, store)
            .responses(responses)
            .headers(self.headers.unwrap_or(false))
            .fail_mode(self.fail_mode.unwrap_or_default())
    }
}
