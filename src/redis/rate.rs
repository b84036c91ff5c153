//! Token buckets in Redis: GCRA in one Lua script.
//!
//! A bucket is one string key holding its theoretical arrival time (TAT),
//! the instant at which the bucket will be full again, in microseconds of
//! the server's clock. GCRA needs nothing else: no token count, no refill
//! timer. A check reads every bucket of the request, decides, and writes
//! all of them or none, inside one script, so it is atomic across gateways
//! (Redis runs one script at a time) and needs one round trip.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::connection::{RedisConnection, SLOTS, slot_of};
use crate::store::{StoreError, StoreErrorKind};
use crate::throttle::{Admission, Limit, RateKey, RateStore};

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

/// Gives back what a check charged, for a check that ran as several
/// scripts (callers in several cluster shares) when a later one refused:
/// each key's TAT moves back by its interval (ARGV, µs, per key); a TAT
/// then at or before now is a full bucket, and its key is deleted.
pub(crate) const GCRA_REFUND: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local back = tat - tonumber(ARGV[i])
  if back > now then
    redis.call('SET', KEYS[i], string.format('%d', back), 'PX', math.floor((back - now) / 1000) + 1000)
  else
    redis.call('DEL', KEYS[i])
  end
end
return 1
";

/// The largest value sent to the script: Lua numbers are doubles, exact to
/// 2^53, and the script adds the server's time (under 2^51 µs today) to
/// what it is sent. Intervals and tolerances are clamped to it: a limit of
/// less than one request per 142 years behaves as that.
const MAX_US: u64 = 1 << 52;

/// Throttle buckets shared by every gateway on one Redis or one Redis
/// Cluster; see the [module docs](super).
///
/// The server's `TIME` is the clock, so gateways whose clocks disagree
/// still share one bucket fairly; the gateway's own [`Clock`](crate::clock::Clock)
/// is not consulted (a test with a manual clock cannot move these
/// buckets). Precision is a microsecond: rates above 1,000,000 per second
/// are held to that. Every check is one `EVALSHA` round trip; when Redis
/// fails the throttle layer follows its fail mode (open by default: the
/// request is admitted unthrottled and the failure counted).
///
/// # On a cluster: shares
///
/// A check's buckets must share a hash slot to be decided in one script.
/// With [`RedisOptions::rate_shards`](super::RedisOptions::rate_shards)
/// `n` (16 on a cluster, 1 on one server), the buckets live under `n`
/// hash tags spread evenly over the slots, and each check goes to one:
///
/// - the **caller's** share: the one its API key id falls in (CRC16 of the
///   id, as Redis hashes keys), else its client address's, else a
///   standalone layer's custom key's. A caller's own buckets (`key:ID`,
///   `key-method:ID:...`, `client:IP`, `custom:V`) are always in its share,
///   so they stay **exact** and their check **atomic**.
/// - a check with no caller bucket takes the shares in turn.
/// - **shared** buckets (gateway-wide, per method) are split: each share
///   holds `1/n` of the rate and of the burst (at least 1). Together the
///   shares never admit more than the limit (plus up to `n - 1` of burst
///   by rounding); one caller alone gets at most its share's `1/n`, and the
///   `RateLimit` headers of a shared limit show the share's tokens. Set
///   `rate_shards` to 1 where a shared limit must be exact for one caller.
/// - a check holding the buckets of two callers in different shares (an
///   API key's limit and a per-client one) runs one script per share, the
///   key's first; when a later one refuses, what the earlier ones charged
///   is given back by a second script. Between the two a concurrent check
///   may see one token fewer (so it can under-admit, never over-admit);
///   if giving back fails, the token stays spent.
#[derive(Clone)]
pub struct RedisRateStore {
    redis: RedisConnection,
    /// The share a check with no caller bucket takes next.
    next: Arc<AtomicUsize>,
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

/// Whose bucket a limit is: a caller's (with the identity that picks its
/// share and its rank: a key's before a client's before a custom one's),
/// or one shared by every caller.
fn caller<'a>(key: &RateKey<'a>) -> Option<(u8, &'a str)> {
    match key {
        RateKey::ApiKey(id) | RateKey::ApiKeyMethod(id, _) => Some((0, id)),
        RateKey::Client(_) => Some((1, "")),
        RateKey::Custom(v) => Some((2, v)),
        RateKey::Gateway | RateKey::Method(_) => None,
    }
}

/// The script's arguments for one limit: interval, tolerance and spare,
/// in microseconds and tokens; a shared limit split over `shares`.
fn args(limit: &Limit<'_>, shares: u64) -> (u64, u64, u64) {
    let nanos = limit.rate.interval_nanos();
    // At least 1 µs between tokens; 0 stays 0 (blocked).
    let interval = if nanos == 0 {
        0
    } else {
        nanos.div_ceil(1000).saturating_mul(shares).min(MAX_US)
    };
    let burst = (u64::from(limit.rate.burst()) / shares).max(1);
    let spare = burst - 1;
    let tolerance = interval.saturating_mul(spare).min(MAX_US);
    (interval, tolerance, spare)
}

impl RedisRateStore {
    /// Buckets on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            next: Arc::default(),
        }
    }

    /// The share (an index into the connection's share tags) of a caller
    /// identity: its slot's position in the slot space, so the same
    /// identity picks the same share in every process and version.
    fn share_of(&self, identity: &[u8]) -> usize {
        let n = self.redis.rate_tags().len();
        slot_of(identity) * n / SLOTS
    }

    /// Runs the script in share `share` over `limits`, or over those of
    /// them at the indices `group` (shared limits split when there is more
    /// than one share): `(admitted, binding, remaining, reset, retry)` as
    /// the script returns them, `binding` an index into `limits`.
    async fn run(
        &self,
        share: usize,
        limits: &[Limit<'_>],
        group: Option<&[usize]>,
    ) -> Result<(bool, usize, i64, i64, i64), StoreError> {
        let tags = self.redis.rate_tags();
        let n = tags.len() as u64;
        let tag = &tags[share % tags.len()];
        let script = &self.redis.scripts().gcra;
        let mut call = script.prepare_invoke();
        let mut count = 0;
        let mut add = |limit: &Limit<'_>| {
            let shares = if caller(&limit.key).is_some() { 1 } else { n };
            let (interval, tolerance, spare) = args(limit, shares);
            call.key(format!("{{{tag}}}:rate:{}", limit.key))
                .arg(interval)
                .arg(tolerance)
                .arg(spare);
            count += 1;
        };
        match group {
            None => limits.iter().for_each(&mut add),
            Some(group) => group.iter().for_each(|i| add(&limits[*i])),
        }
        let mut conn = self.redis.conn();
        let (admitted, binding, remaining, reset, retry): (i64, i64, i64, i64, i64) =
            self.redis.run(call.invoke_async(&mut conn)).await?;
        let binding = usize::try_from(binding)
            .ok()
            .filter(|b| *b < count)
            .map(|b| group.map_or(b, |g| g[b]))
            .ok_or_else(|| {
                StoreError::new(StoreErrorKind::Protocol, "redis: a bad binding index")
            })?;
        Ok((admitted == 1, binding, remaining, reset, retry))
    }

    /// Gives back one request's charge to the buckets at `members` of
    /// `limits` in share `share` (see [`GCRA_REFUND`]). A failure is
    /// counted by the connection and otherwise ignored: the charge stands.
    async fn refund(&self, share: usize, limits: &[Limit<'_>], members: &[usize]) {
        let tags = self.redis.rate_tags();
        let n = tags.len() as u64;
        let tag = &tags[share % tags.len()];
        let mut call = self.redis.scripts().gcra_refund.prepare_invoke();
        for i in members {
            let limit = &limits[*i];
            let shares = if caller(&limit.key).is_some() { 1 } else { n };
            let (interval, _, _) = args(limit, shares);
            call.key(format!("{{{tag}}}:rate:{}", limit.key))
                .arg(interval);
        }
        let mut conn = self.redis.conn();
        let _: Result<i64, _> = self.redis.run(call.invoke_async(&mut conn)).await;
    }

    /// The share a caller's bucket is in, and the caller's rank.
    fn caller_share(&self, key: &RateKey<'_>) -> Option<(u8, usize)> {
        let (rank, id) = caller(key)?;
        let share = match key {
            RateKey::Client(ip) => self.share_of(ip.to_string().as_bytes()),
            _ => self.share_of(id.as_bytes()),
        };
        Some((rank, share))
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
        let shares = self.redis.rate_tags().len();
        let to_admission =
            |(admitted, binding, remaining, reset, retry): (bool, usize, i64, i64, i64)| {
                Admission::new(
                    admitted,
                    binding,
                    u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    micros(reset),
                    (!admitted).then(|| micros(retry)),
                )
            };
        if shares == 1 {
            return self.run(0, limits, None).await.map(to_admission);
        }
        // Each limit's share: a caller's own; the shared ones go with the
        // first-ranked caller's, or with the next share in turn.
        let placed: Vec<Option<(u8, usize)>> =
            limits.iter().map(|l| self.caller_share(&l.key)).collect();
        let primary = placed
            .iter()
            .flatten()
            .min_by_key(|(rank, _)| *rank)
            .map_or_else(
                || self.next.fetch_add(1, Ordering::Relaxed) % shares,
                |(_, share)| *share,
            );
        let mut groups: Vec<(usize, Vec<usize>)> = vec![(primary, Vec::new())];
        for (i, place) in placed.iter().enumerate() {
            let share = place.map_or(primary, |(_, s)| s);
            match groups.iter_mut().find(|(s, _)| *s == share) {
                Some((_, members)) => members.push(i),
                None => groups.push((share, vec![i])),
            }
        }
        if let [(share, _)] = groups.as_slice() {
            return self.run(*share, limits, None).await.map(to_admission);
        }
        // Callers in several shares: one script each, the first-ranked
        // first; the first refusal decides, and what the shares before it
        // charged is given back.
        let mut best: Option<(usize, i64, i64)> = None;
        for (done, (share, members)) in groups.iter().enumerate() {
            let decided = match self.run(*share, limits, Some(members)).await {
                Ok(decided) => decided,
                Err(e) => {
                    for (share, members) in &groups[..done] {
                        self.refund(*share, limits, members).await;
                    }
                    return Err(e);
                }
            };
            let (admitted, binding, remaining, reset, _) = decided;
            if !admitted {
                for (share, members) in &groups[..done] {
                    self.refund(*share, limits, members).await;
                }
                return Ok(to_admission(decided));
            }
            if best.is_none_or(|(_, r, s)| remaining < r || (remaining == r && reset > s)) {
                best = Some((binding, remaining, reset));
            }
        }
        let (binding, remaining, reset) = best.unwrap_or((0, i64::MAX, 0));
        Ok(to_admission((true, binding, remaining, reset, 0)))
    }
}
