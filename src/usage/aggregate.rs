//! The in-memory aggregating sink.
//!
//! Counts, not events: memory grows with keys, endpoints and days, not with
//! traffic. It answers `UsageRecords::get_usage` for plans without a
//! quota, and per-endpoint and per-status questions for a dashboard; for
//! anything longer-lived, send events to a
//! [`MetricsSink`](super::MetricsSink) or a collector as well.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use http::Method;
use time::Date;

use super::event::{UsageEvent, day_of};
use super::reporter::{SinkError, UsageSink};
use crate::context::Endpoint;

/// Counts of one stage, resource and method. `count` includes every
/// outcome (rejections, 499s, panics); the others are subsets of it. A
/// request the cache bypassed or served stale counts as neither hit nor
/// miss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointCounts {
    /// Requests.
    pub count: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// Cache misses.
    pub cache_misses: u64,
}

/// Everything counted, behind the sink's one lock.
#[derive(Default)]
struct Counts {
    /// Requests with an accepted key, per key id and UTC day. Never pruned:
    /// one entry per key per day it was used.
    key_day: HashMap<(Arc<str>, Date), u64>,
    /// The same per minute (the minute's first Unix second), pruned to
    /// [`MINUTES_KEPT`].
    key_minute: HashMap<(Arc<str>, i64), u64>,
    /// By endpoint index and method (an `ANY` endpoint serves several).
    /// Indexes are unique within one gateway: gateways built from other
    /// configs that share this sink may merge endpoints of equal index.
    endpoint: HashMap<(usize, Method), (Arc<Endpoint>, EndpointCounts)>,
    /// Indexed by status / 100, clamped to 5.
    status_class: [u64; 6],
    /// All requests per UTC day; never pruned.
    day: HashMap<Date, u64>,
    /// All requests per minute, pruned with `key_minute`.
    minute: HashMap<i64, u64>,
    total: u64,
    /// The latest minute seen: pruning runs only when it moves on.
    newest_minute: i64,
}

/// Minutes of per-minute counts kept (two days). Pruning runs when a new
/// minute starts and the map holds more than this many minutes, so it
/// costs one pass per minute at most.
const MINUTES_KEPT: i64 = 2 * 24 * 60;

/// Counts usage in memory: per API key per day and per minute, per stage,
/// resource and method, per status class, per day and per minute. Query it
/// any time; per-minute counts are kept two days.
///
/// A [`Gateway`](crate::Gateway) built with
/// [`usage_records_from`](crate::GatewayBuilder::usage_records_from)
/// answers `UsageRecords::get_usage` from it for plans without a quota (the
/// meter counts only what a quota needs).
///
/// One mutex guards the counts. It is taken once per batch by the
/// reporter's task, not per request, and briefly by each query, so
/// queries do not slow the request path. Counts live as long as the sink
/// and die with the process; per-day counts are never pruned (a few dozen
/// bytes per key per day).
#[derive(Default)]
pub struct AggregatingSink {
    counts: Mutex<Counts>,
}

impl fmt::Debug for AggregatingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregatingSink")
            .field("total", &self.total())
            .finish_non_exhaustive()
    }
}

/// The first Unix second of the minute holding `unix_nanos`.
fn minute_of(unix_nanos: u64) -> i64 {
    i64::try_from(unix_nanos / 60_000_000_000).unwrap_or(i64::MAX) * 60
}

impl AggregatingSink {
    /// An empty aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts, even after a panic elsewhere poisoned the lock: a panic
    /// while counting loses at most part of one batch, which is better than
    /// every later query failing.
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `events` (what the sink does with each batch). Callable
    /// directly, to replay events or to test.
    pub fn add(&self, events: &[UsageEvent]) {
        let mut c = self.lock();
        for e in events {
            let day = day_of(e.time_unix_nanos);
            let minute = minute_of(e.time_unix_nanos);
            c.total += 1;
            *c.day.entry(day).or_default() += 1;
            *c.minute.entry(minute).or_default() += 1;
            let class = usize::from(e.status_class()).min(5);
            c.status_class[class] += 1;
            if let Some(key) = &e.api_key_id {
                *c.key_day.entry((key.clone(), day)).or_default() += 1;
                *c.key_minute.entry((key.clone(), minute)).or_default() += 1;
            }
            if let Some(ep) = &e.endpoint {
                let (_, counts) = c
                    .endpoint
                    .entry((ep.index(), e.method.clone()))
                    .or_insert_with(|| (ep.clone(), EndpointCounts::default()));
                counts.count += 1;
                match e.status_class() {
                    4 => counts.client_errors += 1,
                    5 => counts.server_errors += 1,
                    _ => {}
                }
                match e.cache {
                    Some(crate::cache::CacheStatus::Hit) => counts.cache_hits += 1,
                    Some(crate::cache::CacheStatus::Miss) => counts.cache_misses += 1,
                    _ => {}
                }
            }
            if minute > c.newest_minute {
                c.newest_minute = minute;
                let oldest = minute - MINUTES_KEPT * 60;
                if c.minute.len() as i64 > MINUTES_KEPT {
                    c.minute.retain(|m, _| *m > oldest);
                    c.key_minute.retain(|(_, m), _| *m > oldest);
                }
            }
        }
    }

    /// Requests of key `key_id` on `day` (UTC).
    pub fn key_day(&self, key_id: &str, day: Date) -> u64 {
        self.lock()
            .key_day
            .get(&(Arc::from(key_id), day))
            .copied()
            .unwrap_or(0)
    }

    /// Requests of key `key_id` in the minute starting at `minute_start`
    /// (Unix seconds, a multiple of 60).
    pub fn key_minute(&self, key_id: &str, minute_start: i64) -> u64 {
        self.lock()
            .key_minute
            .get(&(Arc::from(key_id), minute_start))
            .copied()
            .unwrap_or(0)
    }

    /// Counts of one stage, resource template and method (the template as
    /// configured, `/pets/{petId}`, not a request path). Zero for an
    /// endpoint never called. Scans every endpoint entry: for dashboards,
    /// not hot loops.
    pub fn endpoint(&self, stage: &str, resource: &str, method: &Method) -> EndpointCounts {
        self.lock()
            .endpoint
            .iter()
            .filter(|((_, m), (e, _))| {
                m == method && e.stage() == stage && e.resource() == resource
            })
            .fold(EndpointCounts::default(), |mut all, (_, (_, c))| {
                all.count += c.count;
                all.client_errors += c.client_errors;
                all.server_errors += c.server_errors;
                all.cache_hits += c.cache_hits;
                all.cache_misses += c.cache_misses;
                all
            })
    }

    /// Requests answered with a status of `class` (2 for 2xx, ... 5 for 5xx).
    /// Clients that left before any response count under 4 (status 499).
    pub fn status_class(&self, class: u16) -> u64 {
        self.lock()
            .status_class
            .get(usize::from(class))
            .copied()
            .unwrap_or(0)
    }

    /// Requests on `day` (UTC).
    pub fn day(&self, day: Date) -> u64 {
        self.lock().day.get(&day).copied().unwrap_or(0)
    }

    /// Requests in the minute starting at `minute_start` (Unix seconds).
    pub fn minute(&self, minute_start: i64) -> u64 {
        self.lock().minute.get(&minute_start).copied().unwrap_or(0)
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.lock().total
    }
}

/// Per-key daily counts that [`UsageRecords`](crate::plans::UsageRecords)
/// can read for plans without a quota (`GatewayBuilder::usage_records_from`).
///
/// Implemented by [`AggregatingSink`] (this process's requests) and, with
/// feature `redis`, `tollgate::redis::RedisUsageSink` (every process's).
#[async_trait]
pub trait UsageCounts: Send + Sync + 'static {
    /// Requests of `key_id` on `day` (UTC).
    async fn key_day(&self, key_id: &str, day: Date) -> Result<u64, crate::store::StoreError>;
}

#[async_trait]
impl UsageCounts for AggregatingSink {
    async fn key_day(&self, key_id: &str, day: Date) -> Result<u64, crate::store::StoreError> {
        Ok(AggregatingSink::key_day(self, key_id, day))
    }
}

#[async_trait]
impl UsageSink for AggregatingSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        self.add(batch);
        Ok(())
    }
}
