//! Token buckets in Redis: GCRA in one Lua script.
//!
//! A bucket is one string key holding its theoretical arrival time (TAT),
//! the instant at which the bucket will be full again, in microseconds of
//! the server's clock. GCRA needs nothing else: no token count, no refill
//! timer. A check reads every bucket of the request, decides, and writes
//! all of them or none, inside one script, so it is atomic across gateways
//! (Redis runs one script at a time) and needs one round trip.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::connection::RedisConnection;
use crate::store::{StoreError, StoreErrorKind};
use crate::throttle::{Admission, Limit, RateStore};

/// The Lua script of [`RedisRateStore`], for inspection and benchmarks:
/// GCRA over every limit of a check, all or nothing, in microseconds of
/// the server's clock. ARGV holds, per key, the interval, the tolerance and
/// the spare tokens. Returns `{admitted, binding, remaining, reset, retry}`
/// (µs; -1 for "never").
///
/// Per key `i`: `interval` is the time one token takes to come back,
/// `tolerance` is `(burst - 1) * interval`, how far the TAT may run ahead
/// of now, and `spare` is `burst - 1`. A request is admitted by a bucket
/// when `max(TAT, now) - now <= tolerance`, and charges it one interval.
/// The first bucket that refuses ends the script with nothing written
/// (`binding` is its 0-based index, `retry` how long until it would
/// admit). An interval of 0 is a limit that admits nothing, with no retry
/// time. When all admit, `binding` names the bucket with the fewest
/// tokens left (the one whose `RateLimit` headers the client sees), and
/// each key is written with an expiry of its time to fullness plus a
/// second, so an idle bucket costs Redis nothing.
pub const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local best_i, best_rem, best_reset = 0, -1, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local spare = tonumber(ARGV[3 * i])
  if interval == 0 then
    return {0, i - 1, 0, -1, -1}
  end
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local ahead = tat - now
  if ahead < 0 then ahead = 0 end
  if ahead > tolerance then
    return {0, i - 1, 0, ahead, ahead - tolerance}
  end
  local reset = ahead + interval
  local remaining = spare
  if ahead > 0 then
    remaining = math.floor((tolerance - ahead) / interval)
  end
  tats[i] = now + reset
  if best_rem < 0 or remaining < best_rem or (remaining == best_rem and reset > best_reset) then
    best_i, best_rem, best_reset = i - 1, remaining, reset
  end
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1000)
end
return {1, best_i, best_rem, best_reset, 0}
";

/// The largest value sent to the script: Lua numbers are doubles, exact to
/// 2^53, and the script adds the server's time (under 2^51 µs today) to
/// what it is sent. Intervals and tolerances are clamped to it: a limit of
/// less than one request per 142 years behaves as that.
const MAX_US: u64 = 1 << 52;

/// Throttle buckets shared by every gateway on one Redis; see the
/// [module docs](super).
///
/// The server's `TIME` is the clock, so gateways whose clocks disagree
/// still share one bucket fairly; the gateway's own [`Clock`](crate::clock::Clock)
/// is not consulted (a test with a manual clock cannot move these
/// buckets). Precision is a microsecond: rates above 1,000,000 per second
/// are held to that. Every check is one `EVALSHA` round trip; when Redis
/// fails the throttle layer follows its fail mode (open by default: the
/// request is admitted unthrottled and the failure counted).
#[derive(Clone)]
pub struct RedisRateStore {
    redis: RedisConnection,
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisRateStore {
    /// Buckets on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    /// The Redis key of a bucket: `{NS}:rate:` and the bucket's scope. All
    /// of a namespace's buckets share the hash tag `{NS}`, so one script
    /// may touch the gateway-wide bucket and the key's together.
    pub fn key(&self, limit: &Limit<'_>) -> String {
        format!("{{{}}}:rate:{}", self.redis.namespace(), limit.key)
    }
}

/// A script time in microseconds; -1 ("never") becomes the longest
/// duration.
fn micros(v: i64) -> Duration {
    match u64::try_from(v) {
        Ok(us) => Duration::from_micros(us),
        // -1: never.
        Err(_) => Duration::from_nanos(u64::MAX),
    }
}

/// An empty set of limits admits without a call. A binding index outside
/// the limits sent is a [`StoreErrorKind::Protocol`] error (a script of
/// another version).
#[async_trait]
impl RateStore for RedisRateStore {
    async fn check(&self, limits: &[Limit<'_>]) -> Result<Admission, StoreError> {
        if limits.is_empty() {
            return Ok(Admission::new(true, 0, u32::MAX, Duration::ZERO, None));
        }
        let script = &self.redis.scripts().gcra;
        let mut call = script.prepare_invoke();
        for limit in limits {
            let nanos = limit.rate.interval_nanos();
            // At least 1 µs between tokens; 0 stays 0 (blocked).
            let interval = if nanos == 0 {
                0
            } else {
                nanos.div_ceil(1000).min(MAX_US)
            };
            let spare = u64::from(limit.rate.burst().saturating_sub(1));
            let tolerance = interval.saturating_mul(spare).min(MAX_US);
            call.key(self.key(limit))
                .arg(interval)
                .arg(tolerance)
                .arg(spare);
        }
        let mut conn = self.redis.conn();
        let (admitted, binding, remaining, reset, retry): (i64, i64, i64, i64, i64) =
            self.redis.run(call.invoke_async(&mut conn)).await?;
        let binding = usize::try_from(binding)
            .ok()
            .filter(|b| *b < limits.len())
            .ok_or_else(|| {
                StoreError::new(StoreErrorKind::Protocol, "redis: a bad binding index")
            })?;
        Ok(Admission::new(
            admitted == 1,
            binding,
            u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            micros(reset),
            (admitted != 1).then(|| micros(retry)),
        ))
    }
}
