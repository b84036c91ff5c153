//! Redis backends (feature `redis`): many gateway processes share one set of
//! limits, quota counters, API keys, credentials and usage counts, on one
//! Redis server or a Redis Cluster.
//!
//! One [`RedisConnection`] per Redis URL (a multiplexed, self-reconnecting
//! `ConnectionManager`), or per cluster ([`RedisConnection::connect_cluster`],
//! redis-rs's `cluster-async` client), is shared by every store built on it. Each call is
//! bounded by a timeout (50 ms by default); a call that fails or times out is
//! a [`StoreError`](crate::store::StoreError) of kind `Unavailable` (or
//! `Timeout`), counted in [`RedisConnection::errors`], and the layer above
//! follows its [`FailMode`](crate::store::FailMode). When Redis comes back,
//! the connection comes back by itself.
//!
//! # When Redis is down
//!
//! After the first failed call the connection's circuit opens
//! ([`RedisOptions::circuit_open_for`]), so requests stop waiting on Redis
//! at all until a probe succeeds. What they see then, with each layer's
//! default fail mode:
//!
//! | store | requests meanwhile |
//! |---|---|
//! | [`RedisRateStore`] | the throttle fails open: admitted, not throttled |
//! | [`RedisCounterStore`] | the meter fails open: admitted, not counted against the quota |
//! | [`RedisKeyStore`] | keys fresh in a [`CachingKeyStore`](crate::keys::CachingKeyStore) still work (all known keys, in resilient mode); others get 503 (the key layer fails closed) |
//! | [`RedisCredentialStore`] | credentials fresh in a [`CachingCredentialStore`](crate::auth::sigv4::CachingCredentialStore) still work; others get 503 |
//! | [`RedisUsageSink`] | nothing: the reporter retries the batch, then queues, then drops and counts |
//! | [`RedisCacheStore`] | a miss in the shared tier; each process's memory still serves |
//!
//! Nothing is queued to replay later: quota used during an outage is not
//! counted afterwards, and limits start again from what Redis holds.
//!
//! - [`RedisRateStore`]: GCRA in one Lua script, all limits of a check at
//!   once, with the server's `TIME` as the clock (gateways whose clocks
//!   disagree still agree), in microseconds (Lua numbers are doubles: every
//!   value stays under 2^53). A bucket's key expires once the bucket is full
//!   again. A bucket refills at most once per microsecond: rates above
//!   1,000,000 per second are held to that.
//! - [`RedisCounterStore`]: quota check-and-increment in one script; keys
//!   by plan, key id and period start, expiring with the period.
//! - [`RedisKeyStore`] and [`RedisCredentialStore`]: records by digest and
//!   by access key id; put a [`CachingKeyStore`](crate::keys::CachingKeyStore)
//!   (or [`CachingCredentialStore`](crate::auth::sigv4::CachingCredentialStore))
//!   in front. The [`KeyManager`](crate::keys::KeyManager) works against them.
//! - [`RedisUsageSink`]: per key per day and per minute counts, `HINCRBY` in
//!   one pipeline per batch.
//! - [`RedisDeploymentStore`]: a [`Lifecycle`](crate::Lifecycle)'s APIs,
//!   deployments, stages, domains and plans, changed by compare and set and
//!   polled by every process, so a deployment made in one is served by all
//!   within a second.
//! - [`RedisCacheStore`]: cached responses, a second tier behind each
//!   process's in-memory cache ([`TieredCacheStore`](crate::cache::TieredCacheStore);
//!   in a gateway, [`GatewayBuilder::cache_tier`](crate::GatewayBuilder::cache_tier)).
//!
//! Scripts are loaded when the connection is made (`SCRIPT LOAD`), so calls
//! use `EVALSHA`; after a Redis restart the first call reloads them.
//!
//! Key schema (`NS` is [`RedisOptions::namespace`], `tollgate` by default):
//!
//! | key | type | TTL |
//! |---|---|---|
//! | `{NS}:rate:SCOPE`; on a cluster `{NS:rN}:rate:SCOPE` (see [`RedisRateStore`]) | string: the bucket's TAT, µs | until the bucket is full + 1 s |
//! | `{NS:quota}:KIND:PLAN:KEY_ID:START`; on a cluster `{NS:quota:KEY_ID}:KIND:PLAN:START` | string: a counter | the period's end |
//! | `{NS:keys}:digest:HEX` | string: a key record, JSON | none |
//! | `{NS:keys}:id:ID` | string: the digest hex | none |
//! | `{NS:keys}:all` | set of key ids | none |
//! | `{NS:creds}:ACCESS_KEY_ID` | string: credentials, JSON (the secret in clear: SigV4 needs it) | none |
//! | `{NS:usage}:day:YYYY-MM-DD` | hash: key id → requests | 90 days |
//! | `{NS:usage}:minute:UNIX_MINUTE_START` | hash: key id → requests | 2 days |
//! | `{NS:cache:STAGE}:SHA256_OF_CACHE_KEY` | string: a cached response (binary) | its TTL + 2 h |
//! | `{NS:lifecycle}:version` | string: the lifecycle's version | none |
//! | `{NS:lifecycle}:document` | string: the lifecycle's state, JSON (definitions, no secrets) | none |
//!
//! The braces are Redis Cluster hash tags: the keys one call touches share a
//! slot. On one server every rate key of a namespace is in one slot and
//! every limit is exact. On a cluster the throttle's buckets are spread
//! over [`RedisOptions::rate_shards`] tags by caller (shared limits split
//! into shares; [`RedisRateStore`] says what stays exact), and quota
//! counters by API key id; keys, credentials, usage counts and the
//! lifecycle keep one slot per namespace, cached responses one per stage.
//!
//! Cache invalidations and flushes are also published on the channel
//! `NS:cache:invalidations`, so every process's memory tier in front of a
//! [`RedisCacheStore`] follows them (see its docs).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tollgate::redis::{RedisConnection, RedisCounterStore, RedisOptions, RedisRateStore};
//! use tollgate::{Config, Gateway};
//!
//! let redis = RedisConnection::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
//! let gateway = Gateway::builder(Config::from_path("gateway.yaml")?)
//!     .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
//!     .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
//!     .build()?;
//! # let _ = gateway; Ok(()) }
//! ```

mod cache;
mod connection;
mod counter;
mod deployments;
mod keys;
mod pubsub;
mod rate;
mod usage;

pub use cache::RedisCacheStore;
pub use connection::{RedisConnection, RedisOptions};
pub use counter::RedisCounterStore;
pub use deployments::RedisDeploymentStore;
pub use keys::{RedisCredentialStore, RedisKeyStore};
pub use rate::{GCRA_SCRIPT, RedisRateStore};
pub use usage::RedisUsageSink;
