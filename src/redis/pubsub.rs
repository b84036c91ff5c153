//! Cache invalidations across processes: Redis pub/sub.
//!
//! Every process that keeps cached responses in memory in front of a
//! [`RedisCacheStore`](super::RedisCacheStore) subscribes, once per
//! connection, to the channel `NS:cache:invalidations`. An invalidation or
//! a flush made through the Redis tier is published there, and every other
//! process applies it to its own memory tier. On a cluster, `PUBLISH` is
//! broadcast to every node, so one subscription to any node hears all.
//!
//! A message names the stage (the tier's scope) and, for an invalidation,
//! the SHA-256 of the cache key, never the key (which may hold header
//! values): `kind` (`k` or `f`), the sending store's id (16 bytes: the
//! memory tier in front of the store that sent it has done its part, every
//! other one applies it, in this process or another), the scope's length
//! (2 bytes) and the scope, then the digest (32 bytes) for `k`.
//!
//! Pub/sub is at most once: a message published while a subscriber is
//! disconnected is lost. So a subscriber flushes its followers' memory
//! every time it (re)subscribes, and pings the server every 2 s (an answer
//! within the connect timeout, or it reconnects), so a connection that
//! died silently (a NAT's idle timeout) is noticed within seconds, not
//! never.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use ::redis::Client;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::cache::CacheStore;

/// What a message asks.
const KEY: u8 = b'k';
const FLUSH: u8 = b'f';

/// A memory tier that follows a scope's invalidations.
struct Follower {
    scope: Arc<str>,
    local: Weak<dyn CacheStore>,
    /// The id of the store it is in front of: that store's own messages
    /// are not applied to it (it has applied them already).
    id: [u8; 16],
}

/// A store's id for its messages: random, or, where the system has no
/// randomness to give, the process id, a counter and the time, which are
/// still unique among the processes on one Redis.
pub(crate) fn store_id() -> [u8; 16] {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut id = [0; 16];
    if getrandom::fill(&mut id).is_err() {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let now = crate::clock::Clock::unix_nanos(&crate::clock::SystemClock);
        id[..4].copy_from_slice(&std::process::id().to_be_bytes());
        id[4..8].copy_from_slice(&(n as u32).to_be_bytes());
        id[8..].copy_from_slice(&now.to_be_bytes());
    }
    id
}

/// One connection's subscription and the memory tiers it serves.
pub(crate) struct Invalidations {
    /// `NS:cache:invalidations`.
    channel: String,
    /// Where to subscribe: any node will do, tried in turn.
    urls: Box<[String]>,
    connect_timeout: Duration,
    followers: Mutex<Vec<Follower>>,
    /// Whether the subscriber task runs.
    running: AtomicBool,
}

impl Invalidations {
    pub(crate) fn new(namespace: &str, urls: Box<[String]>, connect_timeout: Duration) -> Self {
        Self {
            channel: format!("{namespace}:cache:invalidations"),
            urls,
            connect_timeout,
            followers: Mutex::new(Vec::new()),
            running: AtomicBool::new(false),
        }
    }

    /// The channel messages go to.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// The message of store `sender` for an invalidation of the entry
    /// whose key has SHA-256 `digest` (`None`: a flush) in `scope`.
    pub(crate) fn message(
        &self,
        sender: &[u8; 16],
        scope: &str,
        digest: Option<&[u8; 32]>,
    ) -> Vec<u8> {
        let scope = &scope.as_bytes()[..scope.len().min(usize::from(u16::MAX))];
        let mut out = Vec::with_capacity(1 + 16 + 2 + scope.len() + 32);
        out.push(if digest.is_some() { KEY } else { FLUSH });
        out.extend_from_slice(sender);
        out.extend_from_slice(&u16::try_from(scope.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(scope);
        if let Some(d) = digest {
            out.extend_from_slice(d);
        }
        out
    }

    /// Adds a memory tier for `scope`, in front of the store `id`, and
    /// starts the subscriber when it is not running (on the current tokio
    /// runtime; outside one, nothing is followed and a warning says so).
    pub(crate) fn follow(
        self: &Arc<Self>,
        scope: Arc<str>,
        local: Weak<dyn CacheStore>,
        id: [u8; 16],
    ) {
        self.followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Follower { scope, local, id });
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(subscribe(self.clone()));
            }
            Err(_) => {
                self.running.store(false, Ordering::Release);
                tracing::warn!(
                    "redis cache tier built outside a tokio runtime: other processes' invalidations are not followed"
                );
            }
        }
    }

    /// The live memory tiers of `scope` (all of them for `None`), but the
    /// one in front of store `sender`; drops the dead ones.
    fn locals(&self, scope: Option<&[u8]>, sender: Option<&[u8; 16]>) -> Vec<Arc<dyn CacheStore>> {
        let mut followers = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        followers.retain(|f| f.local.strong_count() > 0);
        followers
            .iter()
            .filter(|f| scope.is_none_or(|s| f.scope.as_bytes() == s))
            .filter(|f| sender != Some(&f.id))
            .filter_map(|f| f.local.upgrade())
            .collect()
    }

    fn any_alive(&self) -> bool {
        let mut followers = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        followers.retain(|f| f.local.strong_count() > 0);
        !followers.is_empty()
    }

    /// Applies one message to the memory tiers it names, but the one in
    /// front of the store that sent it. A message that does not parse is
    /// ignored.
    async fn apply(&self, message: &[u8]) {
        let Some((&kind, rest)) = message.split_first() else {
            return;
        };
        let Some((sender, rest)) = rest.split_first_chunk::<16>() else {
            return;
        };
        let Some((len, rest)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return;
        }
        let (scope, rest) = rest.split_at(len);
        match kind {
            FLUSH if rest.is_empty() => {
                for local in self.locals(Some(scope), Some(sender)) {
                    if let Err(e) = local.flush().await {
                        tracing::warn!(error = %e, "cache flush from another process failed here");
                    }
                }
            }
            KEY => {
                let Ok(digest) = <[u8; 32]>::try_from(rest) else {
                    return;
                };
                let matches = move |k: &crate::cache::CacheKey| {
                    Sha256::digest(k.as_bytes()).as_slice() == digest
                };
                for local in self.locals(Some(scope), Some(sender)) {
                    if let Err(e) = local.invalidate_matching(&matches).await {
                        tracing::warn!(error = %e, "cache invalidation from another process failed here");
                    }
                }
            }
            _ => {}
        }
    }
}

/// How often the subscriber pings its server.
const PING_EVERY: Duration = Duration::from_secs(2);

/// The subscriber: subscribe to the channel on a node, apply each message,
/// and when the connection ends or a ping goes unanswered, subscribe again
/// (the next node, after a wait that doubles from 200 ms to 5 s while it
/// keeps failing). Every subscription first flushes the memory tiers it
/// serves, since messages sent while it was away are lost. Ends once no
/// memory tier is left to serve.
async fn subscribe(this: Arc<Invalidations>) {
    let mut node = 0;
    let mut wait = Duration::from_millis(200);
    loop {
        if !this.any_alive() || this.urls.is_empty() {
            this.running.store(false, Ordering::Release);
            // One may have been added between the check and the store.
            if this.any_alive() && !this.running.swap(true, Ordering::AcqRel) {
                continue;
            }
            return;
        }
        let url = &this.urls[node % this.urls.len()];
        node += 1;
        match listen(&this, url).await {
            Ok(()) => wait = Duration::from_millis(200),
            Err(why) => {
                tracing::warn!(
                    reason = why,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "cache invalidations: cannot subscribe; other processes' invalidations wait"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// One subscription on `url`, until it fails or no follower is left:
/// `Ok` when it was made (and later ended), `Err` naming why it was not.
async fn listen(this: &Invalidations, url: &str) -> Result<(), &'static str> {
    let client = Client::open(url).map_err(|_| "bad URL")?;
    let limit = this.connect_timeout;
    let mut pubsub = tokio::time::timeout(limit, client.get_async_pubsub())
        .await
        .map_err(|_| "connecting timed out")?
        .map_err(|_| "cannot connect")?;
    tokio::time::timeout(limit, pubsub.subscribe(&this.channel))
        .await
        .map_err(|_| "SUBSCRIBE timed out")?
        .map_err(|_| "SUBSCRIBE refused (an ACL without pub/sub?)")?;
    for local in this.locals(None, None) {
        let _ = local.flush().await;
    }
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(m) => this.apply(m.get_payload_bytes()).await,
                None => return Ok(()),
            },
            _ = ping.tick() => {
                if !this.any_alive() {
                    return Ok(());
                }
                let answered = tokio::time::timeout(this.connect_timeout, sink.ping::<String>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheKey, CachedResponse, MokaCacheStore};
    use bytes::Bytes;

    #[tokio::test]
    async fn messages_from_elsewhere_reach_the_followers_of_their_scope_only() {
        let entry = Arc::new(CachedResponse::new(
            http::StatusCode::OK,
            http::HeaderMap::new(),
            Bytes::from_static(b"x"),
            1,
            Duration::from_secs(60),
        ));
        let (k1, k2) = (
            CacheKey::from_parts([&b"a"[..]]),
            CacheKey::from_parts([&b"b"[..]]),
        );
        let prod: Arc<dyn CacheStore> = Arc::new(MokaCacheStore::default());
        let dev: Arc<dyn CacheStore> = Arc::new(MokaCacheStore::default());
        for store in [&prod, &dev] {
            store.put(k1.clone(), entry.clone()).await.unwrap();
            store.put(k2.clone(), entry.clone()).await.unwrap();
        }
        let here = Invalidations::new("ns", Box::new([]), Duration::from_secs(1));
        let (prod_id, dev_id, elsewhere) = (store_id(), store_id(), store_id());
        assert_ne!(prod_id, dev_id);
        for (scope, store, id) in [("prod", &prod, prod_id), ("dev", &dev, dev_id)] {
            here.followers.lock().unwrap().push(Follower {
                scope: Arc::from(scope),
                local: Arc::downgrade(store),
                id,
            });
        }
        let digest: [u8; 32] = Sha256::digest(k1.as_bytes()).into();
        // The tier in front of the sending store is skipped.
        here.apply(&here.message(&prod_id, "prod", Some(&digest)))
            .await;
        assert!(prod.get(&k1).await.unwrap().is_some());
        // Another store's (on this connection or elsewhere): k1 of prod
        // goes; k2, and dev, stay.
        here.apply(&here.message(&elsewhere, "prod", Some(&digest)))
            .await;
        assert!(prod.get(&k1).await.unwrap().is_none());
        assert!(prod.get(&k2).await.unwrap().is_some());
        assert!(dev.get(&k1).await.unwrap().is_some());
        // A flush of dev.
        here.apply(&here.message(&elsewhere, "dev", None)).await;
        assert!(dev.get(&k2).await.unwrap().is_none());
        assert!(prod.get(&k2).await.unwrap().is_some());
        // Garbage does nothing, at every length.
        let m = here.message(&elsewhere, "prod", Some(&[7; 32]));
        for cut in 0..m.len() {
            here.apply(&m[..cut]).await;
        }
        assert!(prod.get(&k2).await.unwrap().is_some());
    }
}
