//! Usage counts in Redis.
//!
//! Two hashes per window, field = key id, value = requests:
//! `{NS:usage}:day:YYYY-MM-DD` (UTC days, kept 90 days) and
//! `{NS:usage}:minute:START` (the minute's first Unix second, kept 2
//! days). A hash per window rather than a key per key id keeps the number
//! of Redis keys independent of the number of API keys.

use std::collections::HashMap;
use std::fmt;

use ::redis::AsyncCommands;
use async_trait::async_trait;
use time::Date;

use super::connection::RedisConnection;
use crate::store::StoreError;
use crate::usage::{SinkError, UsageCounts, UsageEvent, UsageSink, day_of};

/// How long a day's hash lives after its last write, in seconds (90 days).
const DAY_TTL_SECS: i64 = 90 * 86_400;
/// How long a minute's hash lives after its last write, in seconds (two
/// days, as the in-memory aggregate keeps).
const MINUTE_TTL_SECS: i64 = 2 * 86_400;

/// Counts requests per API key per day and per minute in Redis hashes, one
/// pipeline (`HINCRBY`, `EXPIRE`) per batch; every gateway on the Redis adds
/// to the same counts. Readable with [`key_day`](Self::key_day) and by
/// `Gateway::usage` when given to `GatewayBuilder::usage_records_from`.
///
/// Only requests with an accepted API key are counted (events without a
/// key id are skipped). Counts are summed per batch first, so a batch of
/// 512 events from 3 keys within one minute costs six `HINCRBY`s and their
/// `EXPIRE`s, in one round trip. The pipeline is not a transaction: if the call fails
/// midway, some increments may have landed and the reporter sends the
/// batch again, so under Redis trouble counts can run a little high
/// (at least once, as the [`Reporter`](crate::usage::Reporter) promises).
#[derive(Clone)]
pub struct RedisUsageSink {
    redis: RedisConnection,
}

impl fmt::Debug for RedisUsageSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsageSink")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisUsageSink {
    /// Counts on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    /// The hash of one UTC day (`Date` displays as `YYYY-MM-DD`).
    fn day_key(&self, day: Date) -> String {
        format!("{{{}:usage}}:day:{day}", self.redis.namespace())
    }

    /// The hash of the minute starting at `minute_start` (Unix seconds).
    fn minute_key(&self, minute_start: i64) -> String {
        format!("{{{}:usage}}:minute:{minute_start}", self.redis.namespace())
    }

    /// Requests of `key_id` in the minute starting at `minute_start` (Unix
    /// seconds, a multiple of 60; any other value finds nothing). 0 for a
    /// minute older than two days.
    pub async fn key_minute(&self, key_id: &str, minute_start: i64) -> Result<u64, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.minute_key(minute_start);
        let id = key_id.to_owned();
        let n: Option<u64> = self
            .redis
            .run(async move { conn.hget(k, id).await })
            .await?;
        Ok(n.unwrap_or(0))
    }
}

#[async_trait]
impl UsageCounts for RedisUsageSink {
    async fn key_day(&self, key_id: &str, day: Date) -> Result<u64, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.day_key(day);
        let id = key_id.to_owned();
        let n: Option<u64> = self
            .redis
            .run(async move { conn.hget(k, id).await })
            .await?;
        Ok(n.unwrap_or(0))
    }
}

#[async_trait]
impl UsageSink for RedisUsageSink {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        // Summed first: one HINCRBY per key and window, not per event.
        let mut days: HashMap<(Date, &str), i64> = HashMap::new();
        let mut minutes: HashMap<(i64, &str), i64> = HashMap::new();
        for e in batch {
            let Some(key) = e.api_key_id.as_deref() else {
                continue;
            };
            *days.entry((day_of(e.time_unix_nanos), key)).or_default() += 1;
            let minute = i64::try_from(e.time_unix_nanos / 60_000_000_000).unwrap_or(0) * 60;
            *minutes.entry((minute, key)).or_default() += 1;
        }
        if days.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for ((day, key), n) in &days {
            let k = self.day_key(*day);
            pipe.hincr(&k, *key, *n).ignore();
            pipe.expire(&k, DAY_TTL_SECS).ignore();
        }
        for ((minute, key), n) in &minutes {
            let k = self.minute_key(*minute);
            pipe.hincr(&k, *key, *n).ignore();
            pipe.expire(&k, MINUTE_TTL_SECS).ignore();
        }
        let mut conn = self.redis.conn();
        self.redis
            .run(async move { pipe.query_async::<()>(&mut conn).await })
            .await
            .map_err(|e| SinkError::new(e.to_string()))
    }
}
