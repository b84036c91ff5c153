//! One shared, self-reconnecting connection per Redis URL.
//!
//! Every store call goes through [`RedisConnection::run`], which adds the
//! three things a request path needs from a remote store: a deadline, an
//! error count, and a circuit breaker, so that a Redis that stopped
//! answering costs each request nothing rather than a timeout per store.
//!
//! The circuit has two states. Closed (`open_until == 0`): calls go
//! through. After a call fails at the connection (I/O error, dropped
//! connection, timeout) it opens for `circuit_open_for`: calls fail at
//! once with [`StoreErrorKind::Unavailable`]. When the window ends, the
//! first caller to claim it makes one real call (the probe) while the
//! others keep failing fast; success closes the circuit, failure opens it
//! for another window. An error *answered* by Redis (a script error, a
//! wrong type) is counted but does not open the circuit: the server is up.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use ::redis::{Client, Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, Value};

use super::pubsub::Invalidations;
use crate::clock::{Clock, SystemClock};
use crate::store::{StoreError, StoreErrorKind};

/// How stores talk to Redis.
///
/// `#[non_exhaustive]`: start from [`RedisOptions::default`] or
/// [`RedisOptions::namespace`] and set fields.
///
/// ```
/// use std::time::Duration;
/// use tollgate::redis::RedisOptions;
///
/// let mut options = RedisOptions::namespace("shop-prod");
/// options.timeout = Duration::from_millis(20); // a Redis in the same zone
/// assert_eq!(options.circuit_open_for, Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every key (and its hash tag). Default `tollgate`. Gateways
    /// that must share limits, keys and counts use the same namespace;
    /// separate environments on one Redis use different ones. It may not
    /// hold `{` or `}` (it is put inside hash tags): `connect` refuses it.
    pub namespace: String,
    /// The most one call may take, reconnection included. Default 50 ms.
    /// It is added to a request's latency whenever Redis stalls (until the
    /// circuit opens), so keep it near Redis's real round trip plus margin.
    pub timeout: Duration,
    /// The most one connection attempt may take. Default 1 s.
    pub connect_timeout: Duration,
    /// After a call times out or the connection fails, how long every call
    /// on this connection fails at once instead of waiting out its own
    /// timeout; then one call probes, and the first success closes the
    /// circuit again. So a request whose rate and quota checks both go to a
    /// Redis that stopped answering pays one timeout, not two, and while
    /// Redis stays down most requests pay none. Default 500 ms;
    /// `Duration::ZERO` turns it off. On a cluster the circuit is the
    /// connection's, not a master's: one master failing opens it for all.
    pub circuit_open_for: Duration,
    /// How many shares the throttle's buckets are spread over (see
    /// [`RedisRateStore`](super::RedisRateStore)). Default 0: automatic,
    /// 1 on one server (every limit exact, one hash slot) and 16 on a
    /// cluster (callers spread over 16 slots, chosen evenly over the slot
    /// space, so over every master of any even split; each shared limit,
    /// gateway-wide or per method, is enforced as 16 shares of a
    /// sixteenth). Set 1 on a cluster to keep shared limits exact at the
    /// price of one master doing every check; at most 256 (more is taken
    /// as 256).
    pub rate_shards: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            namespace: "tollgate".to_owned(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            circuit_open_for: Duration::from_millis(500),
            rate_shards: 0,
        }
    }
}

/// The shares a cluster's throttle buckets are spread over by default.
const CLUSTER_RATE_SHARDS: usize = 16;

/// The most shares [`RedisOptions::rate_shards`] may ask for.
const MAX_RATE_SHARDS: usize = 256;

/// Redis Cluster's hash slots.
pub(crate) const SLOTS: usize = 16_384;

/// The slot of `key` (its hash tag's, when it has one), as the Redis
/// Cluster specification ("Key distribution model") computes it: CRC16
/// (XMODEM: polynomial 0x1021, initial 0) of the part between the first
/// `{` and the next `}` when that part is not empty, else of the whole
/// key, modulo 16,384.
pub(crate) fn slot_of(key: &[u8]) -> usize {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for b in tagged {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    usize::from(crc) % SLOTS
}

/// One hash tag per throttle share, `NS:rN` with the smallest `N` whose
/// slot falls in the share's sixteenth (or whatever fraction) of the slot
/// space: share `k` of `n` is in slots `[k * 16384 / n, (k + 1) * 16384 / n)`.
/// A cluster splits its slots into contiguous ranges, one per master, so
/// shares evenly spaced over the slot space land evenly on the masters.
/// With one share the tag is the namespace itself (`{NS}`), the schema of
/// a single server.
fn shard_tags(namespace: &str, shards: usize) -> Box<[Arc<str>]> {
    if shards <= 1 {
        return Box::new([Arc::from(namespace)]);
    }
    (0..shards)
        .map(|k| {
            let (lo, hi) = (k * SLOTS / shards, (k + 1) * SLOTS / shards);
            // Each try lands in the range with probability `1 / shards`:
            // a few thousand tries at most, once per connection (the
            // namespace holds no brace, so the tags' slots are CRC16's
            // spread; the bound only guards that).
            (0u64..1_000_000)
                .map(|n| format!("{namespace}:r{n}"))
                .find(|tag| (lo..hi).contains(&slot_of(tag.as_bytes())))
                .map(Arc::from)
                .unwrap_or_else(|| Arc::from(namespace))
        })
        .collect()
}

/// A namespace goes inside hash tags: a brace in it would end the tag
/// early (every share in one slot) or start another.
fn check_namespace(namespace: &str) -> Result<(), StoreError> {
    if namespace.contains(['{', '}']) {
        return Err(StoreError::new(
            StoreErrorKind::Protocol,
            "redis: a namespace may not hold `{` or `}`",
        ));
    }
    Ok(())
}

/// The connection of one call: one server's, or a cluster's (which sends
/// each command to the master of its key's slot).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Runs `cmd` on the master of `key`'s slot: what a command without
    /// a key (`SCAN`) needs on a cluster to see one slot's keys. On one
    /// server, the server.
    pub(crate) async fn query_in_slot_of<T: FromRedisValue>(
        &mut self,
        cmd: Cmd,
        key: &str,
    ) -> RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let slot = u16::try_from(slot_of(key.as_bytes())).unwrap_or(0);
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                let value = c.route_command(cmd, route).await?;
                Ok(::redis::from_redis_value(value)?)
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisOptions {
    /// The defaults with `namespace`.
    pub fn namespace(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            ..Self::default()
        }
    }
}

/// The Lua scripts, loaded once per connection.
///
/// A [`Script`] knows its SHA-1 and is invoked with `EVALSHA`; when Redis
/// answers `NOSCRIPT` (a restart, a `SCRIPT FLUSH`, a failover to a
/// replica that never saw the load) the `redis` crate loads it and retries,
/// so nothing here has to track whether a script is loaded.
pub(crate) struct Scripts {
    pub(crate) gcra: Script,
    pub(crate) gcra_refund: Script,
    pub(crate) quota: Script,
    pub(crate) add: Script,
    pub(crate) put_key: Script,
    pub(crate) delete_key: Script,
    pub(crate) save_deployments: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            gcra: Script::new(super::rate::GCRA_SCRIPT),
            gcra_refund: Script::new(super::rate::GCRA_REFUND),
            quota: Script::new(super::counter::QUOTA),
            add: Script::new(super::counter::ADD),
            put_key: Script::new(super::keys::PUT_KEY),
            delete_key: Script::new(super::keys::DELETE_KEY),
            save_deployments: Script::new(super::deployments::SAVE),
        }
    }

    /// Every script, for loading at connect.
    fn all(&self) -> [&Script; 7] {
        [
            &self.gcra,
            &self.gcra_refund,
            &self.quota,
            &self.add,
            &self.put_key,
            &self.delete_key,
            &self.save_deployments,
        ]
    }
}

/// What every clone of a [`RedisConnection`] shares.
struct Inner {
    /// Multiplexed: every store and every request pipelines over this one
    /// connection (cloning it is cheap and shares it). It reconnects by
    /// itself after a failure; a cluster's also follows the slots as they
    /// move (`MOVED`, `ASK`).
    conn: Conn,
    namespace: String,
    /// The throttle's share tags, [`RedisOptions::rate_shards`] of them.
    rate_tags: Box<[Arc<str>]>,
    /// Cache invalidations to and from other processes (pub/sub).
    invalidations: Arc<Invalidations>,
    timeout: Duration,
    /// Failed calls (not fast failures); also the `tollgate_redis_errors`
    /// counter of the `metrics` crate.
    errors: AtomicU64,
    /// Calls refused while the circuit was open.
    fast_failures: AtomicU64,
    /// Until when (the clock's nanoseconds) calls fail at once; 0: closed.
    open_until: AtomicU64,
    /// The circuit's window in nanoseconds; 0: no circuit breaker.
    open_for: u64,
    /// Always the system clock, even in tests with a manual one: the
    /// circuit is about real time passing, not the gateway's notion of it.
    clock: SystemClock,
    scripts: Scripts,
}

/// A connection to one Redis server, shared by every store built on it
/// (clone it freely: clones share the connection and the error count).
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("namespace", &self.inner.namespace)
            .field("timeout", &self.inner.timeout)
            .field("cluster", &self.is_cluster())
            .field("rate_shards", &self.inner.rate_tags.len())
            .field("errors", &self.errors())
            .field("fast_failures", &self.fast_failures())
            .finish_non_exhaustive()
    }
}

/// A Redis error as a store error of kind `Unavailable`, named by its
/// category only.
fn store_error(e: &::redis::RedisError) -> StoreError {
    // The message names the failure, never a key or a value.
    StoreError::unavailable(format!("redis: {}", e.category()))
}

impl RedisConnection {
    /// Connects to `url` (`redis://127.0.0.1:6379`) and loads the scripts.
    ///
    /// Fails (rather than returning a connection that fails later) when
    /// the URL does not parse or the namespace holds a brace
    /// ([`StoreErrorKind::Protocol`]), or when
    /// Redis cannot be reached or the scripts cannot be loaded within
    /// `connect_timeout` (`Unavailable` or `Timeout`). Once made, the
    /// connection survives Redis going away and coming back. The URL
    /// (which may hold a password) is never put in an error.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        check_namespace(&options.namespace)?;
        let client = Client::open(url).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Protocol,
                format!("redis URL: {}", e.category()),
            )
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = tokio::time::timeout(
            options.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::timeout("redis: connecting timed out"))?
        .map_err(|e| store_error(&e))?;
        Self::ready(Conn::Single(conn), options, 1, Box::new([url.to_owned()])).await
    }

    /// Connects to a Redis Cluster through any of its nodes (`urls`, one
    /// or more `redis://HOST:PORT`; the rest of the cluster is found from
    /// them) and loads the scripts on every master.
    ///
    /// Every store works on it as on one server: each call goes to the
    /// master of its keys' slot, and the keys one call touches share a
    /// hash tag (the module docs' key schema). What spreads over the
    /// masters: the throttle's buckets ([`RedisOptions::rate_shards`],
    /// 16 by default here) and the quota counters (by API key id). What
    /// stays in one slot per namespace: API keys, credentials, usage
    /// counts and the lifecycle (each read rarely or batched), and cached
    /// responses per stage.
    ///
    /// Errors as [`connect`](Self::connect); an empty `urls`, or a
    /// namespace with a brace, is a `Protocol` error. A slot whose master is down fails its calls
    /// (`Unavailable`, then the circuit) until the master returns or a
    /// replica takes over; the connection finds the new topology by itself.
    pub async fn connect_cluster<'a>(
        urls: impl IntoIterator<Item = &'a str>,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        check_namespace(&options.namespace)?;
        let urls: Vec<&str> = urls.into_iter().collect();
        let nodes: Box<[String]> = urls.iter().map(|u| (*u).to_owned()).collect();
        if urls.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Protocol,
                "redis cluster: no node URL",
            ));
        }
        let client = ClusterClient::builder(urls)
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.timeout)
            .retries(1)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Protocol,
                    format!("redis cluster URL: {}", e.category()),
                )
            })?;
        let conn = tokio::time::timeout(options.connect_timeout, client.get_async_connection())
            .await
            .map_err(|_| StoreError::timeout("redis: connecting timed out"))?
            .map_err(|e| store_error(&e))?;
        Self::ready(Conn::Cluster(conn), options, CLUSTER_RATE_SHARDS, nodes).await
    }

    /// The connection made: its state, and the scripts loaded (on a
    /// cluster, `SCRIPT LOAD` goes to every master).
    async fn ready(
        conn: Conn,
        options: RedisOptions,
        default_shards: usize,
        urls: Box<[String]>,
    ) -> Result<Self, StoreError> {
        check_namespace(&options.namespace)?;
        let shards = match options.rate_shards {
            0 => default_shards,
            n => n.min(MAX_RATE_SHARDS),
        };
        let this = Self {
            inner: Arc::new(Inner {
                conn,
                rate_tags: shard_tags(&options.namespace, shards),
                invalidations: Arc::new(Invalidations::new(
                    &options.namespace,
                    urls,
                    options.connect_timeout,
                )),
                namespace: options.namespace,
                timeout: options.timeout,
                errors: AtomicU64::new(0),
                fast_failures: AtomicU64::new(0),
                open_until: AtomicU64::new(0),
                open_for: u64::try_from(options.circuit_open_for.as_nanos()).unwrap_or(u64::MAX),
                clock: SystemClock,
                scripts: Scripts::new(),
            }),
        };
        for script in this.inner.scripts.all() {
            let mut conn = this.inner.conn.clone();
            tokio::time::timeout(
                options.connect_timeout,
                script.prepare_invoke().load_async(&mut conn),
            )
            .await
            .map_err(|_| StoreError::timeout("redis: loading scripts timed out"))?
            .map_err(|e| store_error(&e))?;
        }
        Ok(this)
    }

    /// Whether this is a connection to a cluster
    /// ([`connect_cluster`](Self::connect_cluster)).
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.conn, Conn::Cluster(_))
    }

    /// Cache invalidations shared with other processes.
    pub(crate) fn invalidations(&self) -> &Arc<Invalidations> {
        &self.inner.invalidations
    }

    /// The throttle's share tags (one per [`RedisOptions::rate_shards`]).
    pub(crate) fn rate_tags(&self) -> &[Arc<str>] {
        &self.inner.rate_tags
    }

    /// Calls that failed or timed out since the connection was made
    /// (shared by every clone and every store on it).
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// [`RedisOptions::namespace`], the start of every key.
    pub(crate) fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.inner.scripts
    }

    /// A handle on the shared connection, for one call.
    pub(crate) fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    /// Calls refused at once because the circuit was open (see
    /// [`RedisOptions::circuit_open_for`]); not counted in [`errors`](Self::errors).
    pub fn fast_failures(&self) -> u64 {
        self.inner.fast_failures.load(Ordering::Relaxed)
    }

    /// Runs one call under the timeout; failures are counted. While the
    /// circuit is open the call is not made: it fails at once, except for
    /// one probe per `circuit_open_for`.
    ///
    /// `call` is only polled here, so a call refused by the open circuit
    /// is never sent. A timed-out call is dropped: whether Redis ran it is
    /// unknown (an `INCR` may have counted), which the stores accept as
    /// the price of a bounded wait.
    pub(crate) async fn run<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let inner = &*self.inner;
        let until = inner.open_until.load(Ordering::Acquire);
        if until != 0 {
            let now = inner.clock.unix_nanos();
            // Past the window, one caller wins the probe (and pushes the
            // window on for everyone else); the others fail at once.
            let probe = now >= until
                && inner
                    .open_until
                    .compare_exchange(
                        until,
                        now.saturating_add(inner.open_for),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
            if !probe {
                inner.fast_failures.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::unavailable(
                    "redis: unavailable (a recent call failed; retrying shortly)",
                ));
            }
        }
        let failed = match tokio::time::timeout(inner.timeout, call).await {
            Ok(Ok(v)) => {
                if until != 0 {
                    inner.open_until.store(0, Ordering::Release);
                }
                return Ok(v);
            }
            // A script or command error is Redis answering: no circuit.
            Ok(Err(e)) if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) => {
                inner.errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("tollgate_redis_errors").increment(1);
                return Err(store_error(&e));
            }
            Ok(Err(e)) => store_error(&e),
            Err(_) => StoreError::timeout("redis: the call timed out"),
        };
        inner.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tollgate_redis_errors").increment(1);
        if inner.open_for > 0 {
            let now = inner.clock.unix_nanos();
            inner
                .open_until
                .store(now.saturating_add(inner.open_for).max(1), Ordering::Release);
        }
        Err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // The specification's check value, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(slot_of(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        // A hash tag decides; an empty one does not.
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }

    #[test]
    fn shard_tags_spread_evenly_over_the_slots() {
        let tags = shard_tags("tollgate", 16);
        assert_eq!(tags.len(), 16);
        for (k, tag) in tags.iter().enumerate() {
            let slot = slot_of(tag.as_bytes());
            assert!((k * 1024..(k + 1) * 1024).contains(&slot), "{tag}: {slot}");
        }
        // Three masters of a default cluster (0-5460, 5461-10922, 10923-16383).
        let per_master = |tags: &[Arc<str>]| {
            let mut n = [0; 3];
            for t in tags {
                n[slot_of(t.as_bytes()) * 3 / SLOTS] += 1;
            }
            n
        };
        let n = per_master(&tags);
        assert!(n.iter().all(|n| (5..=6).contains(n)), "{n:?}");
        assert_eq!(&*shard_tags("tollgate", 1)[0], "tollgate");
    }

    #[test]
    fn a_namespace_with_a_brace_is_refused() {
        for ns in ["{tenant}", "a}b", "x{"] {
            let err = check_namespace(ns).unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::Protocol, "{ns}");
        }
        assert!(check_namespace("shop-prod:eu").is_ok());
    }
}
