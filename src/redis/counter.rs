//! Quota counters in Redis.
//!
//! One string key per counter: `{NS:quota}:KIND:PLAN:KEY_ID:START`, where
//! `START` is the window's first Unix second. A new period is a new key, so
//! nothing resets counters at a period boundary: the old key simply
//! expires. Every quota key shares the hash tag `{NS:quota}`.

use std::fmt;

use ::redis::AsyncCommands;
use async_trait::async_trait;

use super::connection::RedisConnection;
use crate::plans::{Count, CounterKey, CounterKind, CounterStore};
use crate::store::StoreError;

/// Adds one below the limit: `{admitted, used}`. ARGV: limit, expiry (Unix
/// seconds; 0 for none).
///
/// Check and increment in one script, so gateways sharing a quota cannot
/// both take its last request. A refused request does not count: `used`
/// stays at the limit. The expiry is set again on every increment (same
/// value each time), so a key exists exactly while its period does.
pub(crate) const QUOTA: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return {1, used}
";

/// Adds a delta whatever the count. ARGV: delta, expiry (0 for none).
/// Used for the per-day usage counts (one per admitted request) and for
/// grants (API Gateway's UpdateUsage), where a negative delta gives a key
/// more requests this period: the count may go below zero.
pub(crate) const ADD: &str = r"
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return used
";

/// Quota and daily counters shared by every gateway on one Redis; see the
/// [module docs](super).
///
/// Every call is one round trip. The counts are exact across gateways,
/// with one caveat: a call that times out may or may not have counted
/// (Redis may have run it after the gateway stopped waiting), so under
/// Redis trouble a key can lose a request of its quota. When Redis fails
/// the meter follows its fail mode (open by default: the request is
/// admitted and not counted).
#[derive(Clone)]
pub struct RedisCounterStore {
    redis: RedisConnection,
}

impl fmt::Debug for RedisCounterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounterStore")
            .field("redis", &self.redis)
            .finish()
    }
}

/// Expiry for Redis: none past what it takes (far-future values, `i64::MAX`).
/// The cut is the year 3000 (32,503,680,000 s); a period that ends later
/// (an unbounded one) gets a key without expiry. 0 and negative: none.
fn expiry(expires: i64) -> i64 {
    if expires <= 0 || expires > 32_503_680_000 {
        0
    } else {
        expires
    }
}

impl RedisCounterStore {
    /// Counters on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    /// The Redis key of a counter; plan names and key ids go in as they
    /// are. On one server `{NS:quota}:KIND:PLAN:KEY_ID:START`, every
    /// counter in one slot; on a cluster `{NS:quota:KEY_ID}:KIND:PLAN:START`,
    /// so each API key's counters go to the master of its own slot (a
    /// call touches one counter, so nothing needs them together).
    pub fn key(&self, key: &CounterKey<'_>) -> String {
        let kind = match key.kind {
            CounterKind::Quota => "quota",
            CounterKind::Day => "day",
        };
        if self.redis.is_cluster() {
            return format!(
                "{{{}:quota:{}}}:{kind}:{}:{}",
                self.redis.namespace(),
                key.key_id,
                key.plan,
                key.start
            );
        }
        format!(
            "{{{}:quota}}:{kind}:{}:{}:{}",
            self.redis.namespace(),
            key.plan,
            key.key_id,
            key.start
        )
    }
}

/// `reset` sets the counter to zero and keeps its expiry (`SET ... KEEPTTL`,
/// Redis 6.0 and later); `get` of a missing key is 0.
#[async_trait]
impl CounterStore for RedisCounterStore {
    async fn increment(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Result<Count, StoreError> {
        let mut call = self.redis.scripts().quota.prepare_invoke();
        call.key(self.key(key)).arg(limit).arg(expiry(expires));
        let mut conn = self.redis.conn();
        let (admitted, used): (i64, i64) = self.redis.run(call.invoke_async(&mut conn)).await?;
        Ok(Count::new(admitted == 1, used))
    }

    async fn add(&self, key: &CounterKey<'_>, delta: i64, expires: i64) -> Result<i64, StoreError> {
        let mut call = self.redis.scripts().add.prepare_invoke();
        call.key(self.key(key)).arg(delta).arg(expiry(expires));
        let mut conn = self.redis.conn();
        self.redis.run(call.invoke_async(&mut conn)).await
    }

    async fn get(&self, key: &CounterKey<'_>) -> Result<i64, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.key(key);
        let v: Option<i64> = self.redis.run(async move { conn.get(k).await }).await?;
        Ok(v.unwrap_or(0))
    }

    async fn reset(&self, key: &CounterKey<'_>) -> Result<(), StoreError> {
        let mut conn = self.redis.conn();
        let k = self.key(key);
        self.redis
            .run(async move {
                ::redis::cmd("SET")
                    .arg(k)
                    .arg(0)
                    .arg("KEEPTTL")
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }
}
