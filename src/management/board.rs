//! The usage board: a usage sink that keeps, per API and stage, the
//! figures the usage page shows (requests, 4xx, 5xx, 429s by limit, cache
//! hits and misses, latency percentiles) and, per key, its requests and
//! when it was last seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::cache::CacheStatus;
use crate::usage::{Notice, SinkError, UsageEvent, UsageSink};

/// Latency buckets: four per doubling from 1 µs, the last open-ended
/// (about 134 s and over). A percentile is its bucket's upper bound, so
/// within a fifth of the true value.
const BUCKETS: usize = 4 * 27 + 1;

/// The bucket of a latency in microseconds.
fn bucket(micros: u64) -> usize {
    // 4 * log2(micros + 1), by the bit length and the next two bits.
    let v = micros.saturating_add(1);
    let bits = 63 - u64::from(v.leading_zeros());
    let frac = if bits >= 2 {
        (v >> (bits - 2)) & 3
    } else {
        (v << (2 - bits)) & 3
    };
    usize::try_from(bits * 4 + frac).map_or(BUCKETS - 1, |b| b.min(BUCKETS - 1))
}

/// A bucket's upper bound in microseconds.
fn bucket_bound(b: usize) -> f64 {
    let bits = (b / 4) as f64;
    let frac = (b % 4) as f64;
    2f64.powf(bits) * (1.0 + (frac + 1.0) / 4.0) - 1.0
}

/// The figures of one API and stage.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct StageFigures {
    /// Requests, whatever their answer.
    pub requests: u64,
    /// Answers 400 to 499.
    pub client_errors: u64,
    /// Answers 500 and over.
    pub server_errors: u64,
    /// 429 answers by the limit that refused them (`THROTTLED`,
    /// `QUOTA_EXCEEDED`; `OTHER` for a 429 from the integration).
    pub too_many: BTreeMap<String, u64>,
    /// Requests a limit in `mode: shadow` would have refused, by the
    /// rejection it would have made; each was admitted.
    pub shadow: BTreeMap<String, u64>,
    /// Requests served from the cache (fresh or stale).
    pub cache_hits: u64,
    /// Requests a cache missed.
    pub cache_misses: u64,
    latencies: Vec<u64>,
}

impl StageFigures {
    /// Hits over hits and misses; `None` before a cached method is called.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let all = self.cache_hits + self.cache_misses;
        (all > 0).then(|| self.cache_hits as f64 / all as f64)
    }

    /// The latency at quantile `q` (0.5 for the median) in milliseconds,
    /// to within a fifth; `None` without requests.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latencies.iter().sum();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.latencies.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(bucket_bound(b) / 1000.0);
            }
        }
        None
    }
}

/// What the board knows of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySeen {
    /// Requests that presented the key and were accepted.
    pub requests: u64,
    /// The last of them, Unix nanoseconds.
    pub last_seen_unix_nanos: u64,
}

/// Notices kept for the page, the latest last.
const KEPT_NOTICES: usize = 50;

#[derive(Default)]
struct State {
    stages: HashMap<(Arc<str>, Arc<str>), StageFigures>,
    keys: HashMap<Arc<str>, KeySeen>,
    notices: std::collections::VecDeque<Notice>,
}

/// A [`UsageSink`] keeping the usage page's figures in memory, in this
/// process, since it started. Register it with a
/// [`Reporter`](crate::usage::Reporter) on the gateway and give it to
/// [`Management::usage_board`](super::Management::usage_board).
///
/// Cloning is a pointer copy. Memory: one entry per API and stage (about
/// 1 KiB with its latency buckets) and one per key seen (48 bytes).
#[derive(Clone, Default)]
pub struct UsageBoard {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for UsageBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("UsageBoard")
            .field("stages", &s.stages.len())
            .field("keys", &s.keys.len())
            .finish()
    }
}

impl UsageBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one event.
    pub fn record(&self, e: &UsageEvent) {
        let mut s = self.lock();
        if let Some(stage) = e.endpoint.as_ref().map(|ep| ep.stage.clone()) {
            let f = s.stages.entry((e.api.clone(), stage)).or_default();
            f.requests += 1;
            match e.status {
                429 => {
                    *f.too_many
                        .entry(e.rejection.map_or("OTHER", |k| k.as_str()).to_owned())
                        .or_default() += 1;
                    f.client_errors += 1;
                }
                400..=499 => f.client_errors += 1,
                500.. => f.server_errors += 1,
                _ => {}
            }
            if let Some(k) = e.shadow_rejection {
                *f.shadow.entry(k.as_str().to_owned()).or_default() += 1;
            }
            match e.cache {
                Some(CacheStatus::Hit | CacheStatus::Stale) => f.cache_hits += 1,
                Some(CacheStatus::Miss) => f.cache_misses += 1,
                _ => {}
            }
            if f.latencies.is_empty() {
                f.latencies = vec![0; BUCKETS];
            }
            let micros = u64::try_from(e.latency.as_micros()).unwrap_or(u64::MAX);
            f.latencies[bucket(micros)] += 1;
        }
        if let Some(key) = &e.api_key_id {
            let k = s.keys.entry(key.clone()).or_default();
            k.requests += 1;
            k.last_seen_unix_nanos = k.last_seen_unix_nanos.max(e.time_unix_nanos);
        }
    }

    /// The figures of each API (by name) and stage.
    pub fn stages(&self) -> BTreeMap<(String, String), StageFigures> {
        self.lock()
            .stages
            .iter()
            .map(|((a, s), f)| ((a.to_string(), s.to_string()), f.clone()))
            .collect()
    }

    /// What the board saw of the key `id`.
    pub fn key(&self, id: &str) -> Option<KeySeen> {
        self.lock().keys.get(id).copied()
    }

    /// The latest notices (changes, quota alerts), at most 50, oldest
    /// first.
    pub fn notices(&self) -> Vec<Notice> {
        self.lock().notices.iter().cloned().collect()
    }
}

#[async_trait]
impl UsageSink for UsageBoard {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        for e in batch {
            self.record(e);
        }
        Ok(())
    }

    async fn notify(&self, notices: &[Notice]) -> Result<(), SinkError> {
        let mut s = self.lock();
        for n in notices {
            if s.notices.len() == KEPT_NOTICES {
                s.notices.pop_front();
            }
            s.notices.push_back(n.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_quarter_and_bound_their_values() {
        for micros in [0u64, 1, 2, 3, 7, 100, 999, 1000, 12_345, 1 << 30, u64::MAX] {
            let b = bucket(micros);
            assert!(b < BUCKETS);
            if b < BUCKETS - 1 {
                assert!(bucket_bound(b) >= micros as f64, "{micros} in {b}");
                assert!(
                    bucket_bound(b) <= (micros as f64 + 1.0) * 1.25 + 1.0,
                    "{micros} in {b}"
                );
            }
        }
        assert!(bucket(1000) < bucket(2000));
    }
}
