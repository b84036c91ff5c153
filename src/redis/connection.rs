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

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisResult, Script};

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
    /// separate environments on one Redis use different ones.
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
    /// `Duration::ZERO` turns it off.
    pub circuit_open_for: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            namespace: "tollgate".to_owned(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            circuit_open_for: Duration::from_millis(500),
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
            quota: Script::new(super::counter::QUOTA),
            add: Script::new(super::counter::ADD),
            put_key: Script::new(super::keys::PUT_KEY),
            delete_key: Script::new(super::keys::DELETE_KEY),
            save_deployments: Script::new(super::deployments::SAVE),
        }
    }

    /// Every script, for loading at connect.
    fn all(&self) -> [&Script; 6] {
        [
            &self.gcra,
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
    /// itself after a failure.
    conn: ConnectionManager,
    namespace: String,
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
    /// the URL does not parse ([`StoreErrorKind::Protocol`]), or when
    /// Redis cannot be reached or the scripts cannot be loaded within
    /// `connect_timeout` (`Unavailable` or `Timeout`). Once made, the
    /// connection survives Redis going away and coming back. The URL
    /// (which may hold a password) is never put in an error.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
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
        let this = Self {
            inner: Arc::new(Inner {
                conn,
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
    pub(crate) fn conn(&self) -> ConnectionManager {
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
