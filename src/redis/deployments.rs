//! A lifecycle's state in Redis: one document and its version, changed by
//! compare and set, polled by every process (the change feed).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::connection::RedisConnection;
use crate::deployments::DeploymentStore;
use crate::store::StoreError;

/// Stores the document as version `expected + 1` if the stored version is
/// still `expected`: 1, else 0. KEYS: version, document; ARGV: expected,
/// document.
pub(crate) const SAVE: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], v + 1)
return 1
";

/// A lifecycle's deployments, stages, domains and plans in Redis, shared by
/// every process on it: a change made in one (compare and set, so two
/// processes never overwrite each other's) is served by the others within
/// the poll interval (250 ms; the lifecycle's change feed).
///
/// Keys: `{NS:lifecycle}:version` (a counter) and `{NS:lifecycle}:document`
/// (JSON; no secret: definitions hold none). No expiry.
#[derive(Clone)]
pub struct RedisDeploymentStore {
    redis: RedisConnection,
    every: Duration,
}

impl fmt::Debug for RedisDeploymentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDeploymentStore")
            .field("redis", &self.redis)
            .field("poll_interval", &self.every)
            .finish()
    }
}

impl RedisDeploymentStore {
    /// The store on `redis`, polled every 250 ms.
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            every: Duration::from_millis(250),
        }
    }

    /// Polls every `every` instead (at least 10 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    fn keys(&self) -> (String, String) {
        let ns = self.redis.namespace();
        (
            format!("{{{ns}:lifecycle}}:version"),
            format!("{{{ns}:lifecycle}}:document"),
        )
    }
}

#[async_trait]
impl DeploymentStore for RedisDeploymentStore {
    async fn load(&self) -> Result<Option<(u64, String)>, StoreError> {
        let (version, document) = self.keys();
        let mut conn = self.redis.conn();
        // One MGET: the version and the document it numbers, together.
        let (v, doc): (Option<u64>, Option<String>) = self
            .redis
            .run(async move {
                ::redis::cmd("MGET")
                    .arg(version)
                    .arg(document)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (v, doc) {
            (Some(v), Some(doc)) if v > 0 => Some((v, doc)),
            _ => None,
        })
    }

    async fn save(&self, expected: u64, document: &str) -> Result<bool, StoreError> {
        let (version, key) = self.keys();
        let mut call = self.redis.scripts().save_deployments.prepare_invoke();
        call.key(version).key(key).arg(expected).arg(document);
        let mut conn = self.redis.conn();
        let saved: i64 = self.redis.run(call.invoke_async(&mut conn)).await?;
        Ok(saved == 1)
    }

    async fn version(&self) -> Result<u64, StoreError> {
        let (version, _) = self.keys();
        let mut conn = self.redis.conn();
        let v: Option<u64> = self
            .redis
            .run(async move {
                ::redis::cmd("GET")
                    .arg(version)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(v.unwrap_or(0))
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.every)
    }
}
