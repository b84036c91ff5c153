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
//! values): `kind` (`k` or `f`), the sender (8 bytes, so a process skips
//! its own), the scope's length (2 bytes) and the scope, then the digest
//! (32 bytes) for `k`.
//!
//! Pub/sub is at most once: a message published while a subscriber is
//! disconnected is lost. So a subscriber flushes its followers' memory
//! every time it (re)subscribes, and a process never serves, for longer
//! than it takes to notice a dropped connection, an entry another process
//! invalidated.

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
}

/// One connection's subscription and the memory tiers it serves.
pub(crate) struct Invalidations {
    /// `NS:cache:invalidations`.
    channel: String,
    /// Where to subscribe: any node will do, tried in turn.
    urls: Box<[String]>,
    connect_timeout: Duration,
    /// This connection's own id: its messages are skipped when they come back.
    sender: [u8; 8],
    followers: Mutex<Vec<Follower>>,
    /// Whether the subscriber task runs.
    running: AtomicBool,
}

impl Invalidations {
    pub(crate) fn new(namespace: &str, urls: Box<[String]>, connect_timeout: Duration) -> Self {
        let mut sender = [0; 8];
        // A clash only costs a scan of the memory tier, never a wrong entry.
        let _ = getrandom::fill(&mut sender);
        Self {
            channel: format!("{namespace}:cache:invalidations"),
            urls,
            connect_timeout,
            sender,
            followers: Mutex::new(Vec::new()),
            running: AtomicBool::new(false),
        }
    }

    /// The channel messages go to.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// The message for an invalidation of the entry whose key has SHA-256
    /// `digest` (`None`: a flush) in `scope`.
    pub(crate) fn message(&self, scope: &str, digest: Option<&[u8; 32]>) -> Vec<u8> {
        let scope = &scope.as_bytes()[..scope.len().min(usize::from(u16::MAX))];
        let mut out = Vec::with_capacity(1 + 8 + 2 + scope.len() + 32);
        out.push(if digest.is_some() { KEY } else { FLUSH });
        out.extend_from_slice(&self.sender);
        out.extend_from_slice(&u16::try_from(scope.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(scope);
        if let Some(d) = digest {
            out.extend_from_slice(d);
        }
        out
    }

    /// Adds a memory tier for `scope`, and starts the subscriber when it is
    /// not running (on the current tokio runtime; outside one, nothing is
    /// followed and a warning says so).
    pub(crate) fn follow(self: &Arc<Self>, scope: Arc<str>, local: Weak<dyn CacheStore>) {
        self.followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Follower { scope, local });
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

    /// The live memory tiers of `scope` (all of them for `None`); drops
    /// the dead ones. Empty when none is left at all.
    fn locals(&self, scope: Option<&[u8]>) -> Vec<Arc<dyn CacheStore>> {
        let mut followers = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        followers.retain(|f| f.local.strong_count() > 0);
        followers
            .iter()
            .filter(|f| scope.is_none_or(|s| f.scope.as_bytes() == s))
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

    /// Applies one message to the memory tiers it names. A message that
    /// does not parse, or that this connection sent, is ignored.
    async fn apply(&self, message: &[u8]) {
        let Some((&kind, rest)) = message.split_first() else {
            return;
        };
        let Some((sender, rest)) = rest.split_first_chunk::<8>() else {
            return;
        };
        if *sender == self.sender {
            return;
        }
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
                for local in self.locals(Some(scope)) {
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
                for local in self.locals(Some(scope)) {
                    if let Err(e) = local.invalidate_matching(&matches).await {
                        tracing::warn!(error = %e, "cache invalidation from another process failed here");
                    }
                }
            }
            _ => {}
        }
    }
}

/// The subscriber: subscribe to the channel on a node, apply each message,
/// and when the connection ends, subscribe again (the next node, after
/// 200 ms). Every subscription first flushes the memory tiers it serves,
/// since messages sent while it was away are lost. Ends once no memory
/// tier is left to serve (checked every second).
async fn subscribe(this: Arc<Invalidations>) {
    let mut node = 0;
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
        if let Ok(client) = Client::open(url.as_str())
            && let Ok(Ok(mut pubsub)) =
                tokio::time::timeout(this.connect_timeout, client.get_async_pubsub()).await
            && pubsub.subscribe(&this.channel).await.is_ok()
        {
            for local in this.locals(None) {
                let _ = local.flush().await;
            }
            let mut messages = pubsub.on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(m) => this.apply(m.get_payload_bytes()).await,
                        None => break,
                    },
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if !this.any_alive() {
                            break;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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
        let there = Invalidations::new("ns", Box::new([]), Duration::from_secs(1));
        for (scope, store) in [("prod", &prod), ("dev", &dev)] {
            here.followers.lock().unwrap().push(Follower {
                scope: Arc::from(scope),
                local: Arc::downgrade(store),
            });
        }
        let digest: [u8; 32] = Sha256::digest(k1.as_bytes()).into();
        // Its own message is skipped.
        here.apply(&here.message("prod", Some(&digest))).await;
        assert!(prod.get(&k1).await.unwrap().is_some());
        // Another's: k1 of prod goes; k2, and dev, stay.
        here.apply(&there.message("prod", Some(&digest))).await;
        assert!(prod.get(&k1).await.unwrap().is_none());
        assert!(prod.get(&k2).await.unwrap().is_some());
        assert!(dev.get(&k1).await.unwrap().is_some());
        // A flush of dev.
        here.apply(&there.message("dev", None)).await;
        assert!(dev.get(&k2).await.unwrap().is_none());
        assert!(prod.get(&k2).await.unwrap().is_some());
        // Garbage does nothing, at every length.
        let m = there.message("prod", Some(&[7; 32]));
        for cut in 0..m.len() {
            here.apply(&m[..cut]).await;
        }
        assert!(prod.get(&k2).await.unwrap().is_some());
    }
}
