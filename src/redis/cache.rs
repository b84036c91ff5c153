//! Cached responses in Redis: a tier every gateway process shares.
//!
//! Entries are stored in a small binary encoding (see [`encode`]) under
//! the SHA-256 of the cache key, so a key of any length (paths, query
//! strings, header values) makes a Redis key of fixed length, and no
//! request data appears in Redis key names.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::AsyncCommands;
use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::connection::RedisConnection;
use crate::cache::{CacheKey, CacheStore, CachedResponse, MAX_ENTRY_BODY};
use crate::store::StoreError;

/// The encoding's version byte. A reader meets an entry of another version
/// as a miss, so a change of format needs no migration: old entries age
/// out.
const VERSION: u8 = 1;

/// Cached responses in Redis, under `{NS:cache:SCOPE}` (the scope is the
/// stage in a gateway). Each entry is kept until it expires plus a
/// retention (2 h by default, for stale-if-error). Put it behind the
/// in-memory store with [`TieredCacheStore`](crate::cache::TieredCacheStore):
/// processes share what any of them fetched. A malformed entry reads as a
/// miss.
///
/// Redis does the expiring: an entry is written with `PSETEX` for its
/// freshness plus the retention, and freshness is judged by the cache
/// layer from the stored times, so the Redis key outliving freshness is
/// what lets a stale entry be served when the integration fails. An entry
/// is one `GET` or one `PSETEX`; a body travels whole, so a tier of big
/// responses costs Redis bandwidth on every miss of a process's own cache.
///
/// Consistency: an [`invalidate`](CacheStore::invalidate) or a
/// [`flush`](CacheStore::flush) deletes in Redis and is published on the
/// channel `NS:cache:invalidations` (Redis pub/sub; on a cluster, heard by
/// every node). Every process whose memory tier this store
/// [follows](CacheStore::follow) (each [`TieredCacheStore`](crate::cache::TieredCacheStore)
/// in front of it) drops the entry, or flushes the stage, as soon as the
/// message arrives: a round trip on loopback, well under the second a
/// test allows. The message names the stage and the SHA-256 of the key,
/// never the key. Pub/sub delivers at most once: a process that loses its
/// subscription flushes its memory tiers when it subscribes again, so a
/// message it missed cannot leave it serving an invalidated entry.
#[derive(Clone)]
pub struct RedisCacheStore {
    redis: RedisConnection,
    /// `{NS:cache:SCOPE}:`, shared by every entry of the scope: one hash
    /// tag per stage.
    prefix: Arc<str>,
    /// The scope (stage), as invalidation messages name it.
    scope: Arc<str>,
    /// This store's id in its messages: the memory tier in front of it
    /// does not apply them (it has already).
    id: [u8; 16],
    /// How long past its freshness an entry is kept.
    retain: Duration,
}

impl fmt::Debug for RedisCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheStore")
            .field("prefix", &self.prefix)
            .field("retain", &self.retain)
            .finish_non_exhaustive()
    }
}

/// The entry as bytes, big-endian: version (u8), status (u16), stored and
/// expiry times (u64 Unix nanoseconds each), header count (u32), then per
/// header its name length (u16), name, value length (u32) and value, then
/// the body to the end. Repeated headers stay repeated and in order.
fn encode(entry: &CachedResponse) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(entry.weight() + 32);
    out.put_u8(VERSION);
    out.put_u16(entry.status().as_u16());
    out.put_u64(entry.stored_at());
    out.put_u64(entry.expires_at());
    out.put_u32(u32::try_from(entry.headers().len()).unwrap_or(u32::MAX));
    for (name, value) in entry.headers() {
        let n = name.as_str().as_bytes();
        out.put_u16(u16::try_from(n.len()).unwrap_or(u16::MAX));
        out.put_slice(n);
        out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        out.put_slice(value.as_bytes());
    }
    out.put_slice(entry.body());
    out.to_vec()
}

/// The entry back, or `None` for anything that does not decode exactly: a
/// short buffer, another version, an invalid status or header, expiry
/// before storage, a body over [`MAX_ENTRY_BODY`]. Every length is checked
/// before it is read, so garbage in Redis cannot make it panic (a unit
/// test truncates an entry at every byte).
fn decode(raw: &[u8]) -> Option<CachedResponse> {
    let mut b = raw;
    if b.remaining() < 1 + 2 + 8 + 8 + 4 || b.get_u8() != VERSION {
        return None;
    }
    let status = StatusCode::from_u16(b.get_u16()).ok()?;
    let stored_at = b.get_u64();
    let expires_at = b.get_u64();
    let count = b.get_u32();
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        if b.remaining() < 2 {
            return None;
        }
        let n = usize::from(b.get_u16());
        if b.remaining() < n + 4 {
            return None;
        }
        let name = HeaderName::from_bytes(&b[..n]).ok()?;
        b.advance(n);
        let v = usize::try_from(b.get_u32()).ok()?;
        if b.remaining() < v {
            return None;
        }
        let value = HeaderValue::from_bytes(&b[..v]).ok()?;
        b.advance(v);
        headers.append(name, value);
    }
    if b.remaining() > MAX_ENTRY_BODY {
        return None;
    }
    let body = Bytes::copy_from_slice(b);
    let ttl = Duration::from_nanos(expires_at.checked_sub(stored_at)?);
    Some(CachedResponse::new(status, headers, body, stored_at, ttl))
}

impl RedisCacheStore {
    /// Entries on `redis`, under scope `scope` (a stage), kept 2 h past
    /// their freshness. A gateway makes one per stage; two stages sharing
    /// a scope would share entries.
    pub fn new(redis: RedisConnection, scope: &str) -> Self {
        let prefix = format!("{{{}:cache:{scope}}}:", redis.namespace());
        Self {
            redis,
            prefix: Arc::from(prefix),
            scope: Arc::from(scope),
            id: super::pubsub::store_id(),
            retain: Duration::from_secs(7200),
        }
    }

    /// Keeps entries `retain` past their expiry (the longest stale grace).
    /// It must cover the longest `stale_if_error` of the stages it serves;
    /// the default 2 h covers the longest a config allows (an hour), and
    /// longer only costs Redis memory.
    pub fn retain(mut self, retain: Duration) -> Self {
        self.retain = retain;
        self
    }

    /// `prefix` and the SHA-256 of the cache key in hex: 64 characters
    /// whatever the request.
    fn key(&self, key: &CacheKey) -> String {
        self.key_of(&Sha256::digest(key.as_bytes()).into())
    }

    /// `prefix` and `digest` in hex.
    fn key_of(&self, digest: &[u8; 32]) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        out.push_str(&crate::hex::encode(digest));
        out
    }

    /// Tells the other memory tiers (see the type's docs). A failure is
    /// logged, not returned: the entry is gone from Redis already, and a
    /// Redis user whose ACL has no `PUBLISH` still invalidates there.
    async fn publish(&self, digest: Option<&[u8; 32]>) {
        let invalidations = self.redis.invalidations();
        let message = invalidations.message(&self.id, &self.scope, digest);
        let channel = invalidations.channel().to_owned();
        let mut conn = self.redis.conn();
        if let Err(e) = self
            .redis
            .run(async move { conn.publish::<_, _, ()>(channel, message).await })
            .await
        {
            tracing::warn!(error = %e, "cache invalidation not published: other processes keep their copies until they expire");
        }
    }
}

/// [`flush`](CacheStore::flush) walks the scope's keys with `SCAN` and
/// `UNLINK`s each page (1,000 keys a step, each step under the timeout):
/// it does not block Redis, but is not atomic, and entries written while
/// it runs may survive it.
#[async_trait]
impl CacheStore for RedisCacheStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<CachedResponse>>, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.key(key);
        let raw: Option<Vec<u8>> = self.redis.run(async move { conn.get(k).await }).await?;
        Ok(raw.as_deref().and_then(decode).map(Arc::new))
    }

    async fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) -> Result<(), StoreError> {
        let fresh = entry.expires_at().saturating_sub(entry.stored_at()) / 1_000_000;
        let ttl_ms = fresh
            .saturating_add(u64::try_from(self.retain.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        let value = encode(&entry);
        let mut conn = self.redis.conn();
        let k = self.key(&key);
        self.redis
            .run(async move { conn.pset_ex::<_, _, ()>(k, value, ttl_ms).await })
            .await
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        let mut conn = self.redis.conn();
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let k = self.key_of(&digest);
        self.redis
            .run(async move { conn.del::<_, ()>(k).await })
            .await?;
        self.publish(Some(&digest)).await;
        Ok(())
    }

    fn follow(&self, local: Weak<dyn CacheStore>) {
        self.redis
            .invalidations()
            .follow(self.scope.clone(), local, self.id);
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // SCAN in steps, each under the timeout: a big cache takes several calls.
        let pattern = format!("{}*", self.prefix.replace('{', "\\{").replace('}', "\\}"));
        let mut cursor: u64 = 0;
        loop {
            let mut conn = self.redis.conn();
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            // On a cluster, the master of the scope's slot: every entry
            // of the scope shares its hash tag.
            let prefix = self.prefix.clone();
            let (next, keys): (u64, Vec<String>) = self
                .redis
                .run(async move { conn.query_in_slot_of(scan, &prefix).await })
                .await?;
            if !keys.is_empty() {
                let mut conn = self.redis.conn();
                self.redis
                    .run(async move {
                        ::redis::cmd("UNLINK")
                            .arg(keys)
                            .query_async::<()>(&mut conn)
                            .await
                    })
                    .await?;
            }
            if next == 0 {
                self.publish(None).await;
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_encoding_and_garbage_is_a_miss() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let e = CachedResponse::new(
            StatusCode::CREATED,
            h,
            Bytes::from_static(b"{\"id\":1}"),
            1_800_000_000_000_000_000,
            Duration::from_secs(60),
        );
        let back = decode(&encode(&e)).unwrap();
        assert_eq!(back.status(), StatusCode::CREATED);
        assert_eq!(back.headers(), e.headers());
        assert_eq!(back.body(), e.body());
        assert_eq!(
            (back.stored_at(), back.expires_at()),
            (e.stored_at(), e.expires_at())
        );
        let raw = encode(&e);
        // Every truncation decodes to something or nothing, never a panic.
        for cut in 0..raw.len() {
            let _ = decode(&raw[..cut]);
        }
        assert!(decode(b"").is_none());
        assert!(decode(&[9, 0, 200]).is_none());
    }
}
