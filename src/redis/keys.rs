//! API key records and SigV4 credentials in Redis.
//!
//! A key record lives at `{NS:keys}:digest:HEX` (JSON), found by digest on
//! the request path; `{NS:keys}:id:ID` maps its id to the digest, for
//! management; `{NS:keys}:all` is the set of ids, for listing. Writes
//! change the three together in one script; reads are plain `GET`s. All
//! share the hash tag `{NS:keys}`, so the scripts may touch them together
//! on a cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ::redis::AsyncCommands;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::connection::RedisConnection;
use crate::auth::sigv4::{Credential, CredentialStore};
use crate::keys::{KeyDigest, KeyRecord, KeyStore};
use crate::secret::Secret;
use crate::store::{StoreError, StoreErrorKind};

/// Stores a record: KEYS digest key, id key, id set; ARGV JSON, id, digest
/// hex, digest key prefix. A key rotated to a new digest loses the old one.
///
/// Atomic: a reader sees the old record or the new, and after a rotation
/// the old digest is gone in the same step. The old digest's key is built
/// from ARGV, not declared in KEYS; it shares the `{NS:keys}` hash tag, so
/// it is in the same slot.
///
/// A digest that belongs to another id is refused, as [`KeyStore::put`]
/// requires (returns 0, nothing written): two keys with one value would
/// otherwise share one record, and the other id would be left pointing at
/// this key. The owner is read from the stored record's `id` (Redis's
/// bundled `cjson`). Returns 1 when stored.
pub(crate) const PUT_KEY: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, rec = pcall(cjson.decode, current)
  if ok and type(rec) == 'table' and rec.id ~= ARGV[2] then
    return 0
  end
end
local old = redis.call('GET', KEYS[2])
if old and old ~= ARGV[3] then
  redis.call('DEL', ARGV[4] .. old)
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
";

/// Deletes a record: KEYS id key, id set; ARGV digest key prefix, id.
/// Returns 1 when there was a record, 0 when the id was unknown. Atomic,
/// like [`PUT_KEY`].
pub(crate) const DELETE_KEY: &str = r"
local d = redis.call('GET', KEYS[1])
if not d then
  return 0
end
redis.call('DEL', ARGV[1] .. d)
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
";

/// Redis answered, but with something tollgate cannot read (a record
/// written by another version, or by hand).
fn protocol(what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Protocol, format!("redis: {what}"))
}

/// A key record as stored (JSON). Times are RFC 3339 strings, readable in
/// `redis-cli`. Fields added later must be `#[serde(default)]`, so that
/// records written by an older gateway still read.
#[derive(Serialize, Deserialize)]
struct KeyWire {
    id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    enabled: bool,
    created: String,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    plans: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    can_invalidate_cache: bool,
}

/// A time as RFC 3339. One that cannot be written (such as a year past 9999)
/// becomes the empty string, and its record then fails to read back as a
/// [`StoreErrorKind::Protocol`] error rather than failing the write.
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| protocol("a record with a bad time"))
}

impl KeyWire {
    fn from_record(r: &KeyRecord) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            description: r.description.clone(),
            enabled: r.enabled,
            created: rfc3339(r.created),
            expires: r.expires.map(rfc3339),
            plans: r.plans.iter().map(ToString::to_string).collect(),
            tags: r.tags.clone(),
            can_invalidate_cache: r.can_invalidate_cache,
        }
    }

    fn into_record(self) -> Result<KeyRecord, StoreError> {
        let mut r = KeyRecord::new(self.name, parse_time(&self.created)?);
        r.id = Arc::from(self.id.as_str());
        r.description = self.description;
        r.enabled = self.enabled;
        r.expires = self.expires.as_deref().map(parse_time).transpose()?;
        r.plans = self.plans.iter().map(|p| Arc::from(p.as_str())).collect();
        r.tags = self.tags;
        r.can_invalidate_cache = self.can_invalidate_cache;
        Ok(r)
    }
}

/// A stored record, or a `Protocol` error. A record that does not read is a
/// store failure, not an unknown key: the layer answers by its fail mode,
/// and the error never quotes the JSON.
fn decode(json: &str) -> Result<Arc<KeyRecord>, StoreError> {
    serde_json::from_str::<KeyWire>(json)
        .map_err(|_| protocol("a key record that does not parse"))?
        .into_record()
        .map(Arc::new)
}

/// API key records shared by every gateway on one Redis; see the
/// [module docs](super). Put a [`CachingKeyStore`](crate::keys::CachingKeyStore)
/// in front: with Redis away, cached keys keep working while they last.
///
/// A lookup by digest is one `GET`. Management reads cost more:
/// [`get_by_id`](KeyStore::get_by_id) is two `GET`s, and
/// [`list`](KeyStore::list) is `SMEMBERS` and two `MGET`s (every key
/// record in memory at once), sorted by name. Neither is a snapshot: a
/// record deleted or rotated between the round trips is left out.
///
/// Records hold no key values, only digests; but without a
/// [`KeyHasher::peppered`](crate::keys::KeyHasher::peppered) hasher, who
/// can read Redis can test guesses against them offline.
#[derive(Clone)]
pub struct RedisKeyStore {
    redis: RedisConnection,
}

impl fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyStore")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisKeyStore {
    /// Records on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    /// `{NS:keys}`: the hash tag (and prefix) of every key of this store.
    fn tag(&self) -> String {
        format!("{{{}:keys}}", self.redis.namespace())
    }

    fn digest_key(&self, hex: &str) -> String {
        format!("{}:digest:{hex}", self.tag())
    }

    fn id_key(&self, id: &str) -> String {
        format!("{}:id:{id}", self.tag())
    }

    fn all_key(&self) -> String {
        format!("{}:all", self.tag())
    }
}

#[async_trait]
impl KeyStore for RedisKeyStore {
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.digest_key(&digest.to_hex());
        let json: Option<String> = self.redis.run(async move { conn.get(k).await }).await?;
        json.as_deref().map(decode).transpose()
    }

    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.id_key(id);
        let hex: Option<String> = self.redis.run(async move { conn.get(k).await }).await?;
        let Some(hex) = hex else { return Ok(None) };
        let digest = KeyDigest::from_hex(&hex).ok_or_else(|| protocol("a bad digest"))?;
        Ok(self.get(&digest).await?.map(|r| (digest, r)))
    }

    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(&KeyWire::from_record(&record))
            .map_err(|_| protocol("cannot encode a record"))?;
        let hex = digest.to_hex();
        let mut call = self.redis.scripts().put_key.prepare_invoke();
        call.key(self.digest_key(&hex))
            .key(self.id_key(&record.id))
            .key(self.all_key())
            .arg(json)
            .arg(&*record.id)
            .arg(&hex)
            .arg(self.digest_key(""));
        let mut conn = self.redis.conn();
        match self.redis.run(call.invoke_async::<i64>(&mut conn)).await? {
            0 => Err(StoreError::new(
                StoreErrorKind::Conflict,
                "another key has the same value",
            )),
            _ => Ok(()),
        }
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut call = self.redis.scripts().delete_key.prepare_invoke();
        call.key(self.id_key(id))
            .key(self.all_key())
            .arg(self.digest_key(""))
            .arg(id);
        let mut conn = self.redis.conn();
        let n: i64 = self.redis.run(call.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        let mut conn = self.redis.conn();
        let all = self.all_key();
        let ids: Vec<String> = self
            .redis
            .run(async move { conn.smembers(all).await })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let id_keys: Vec<String> = ids.iter().map(|id| self.id_key(id)).collect();
        let mut conn = self.redis.conn();
        let digests: Vec<Option<String>> = self
            .redis
            .run(async move {
                ::redis::cmd("MGET")
                    .arg(id_keys)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let digest_keys: Vec<String> = digests
            .iter()
            .flatten()
            .map(|hex| self.digest_key(hex))
            .collect();
        if digest_keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.conn();
        let records: Vec<Option<String>> = self
            .redis
            .run(async move {
                ::redis::cmd("MGET")
                    .arg(digest_keys)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut out: Vec<Arc<KeyRecord>> = records
            .iter()
            .flatten()
            .map(|j| decode(j))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// SigV4 credentials as stored (JSON). The secret is in clear: verifying a
/// signature needs it (SigV4 is an HMAC: the verifier needs the signer's
/// secret). Protect that Redis as you would a secrets store: an ACL user,
/// TLS, no shared access.
#[derive(Serialize, Deserialize)]
struct CredentialWire {
    access_key_id: String,
    secret: String,
    principal: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    can_invalidate_cache: bool,
}

/// SigV4 credentials shared by every gateway on one Redis, by access key id;
/// see the [module docs](super). Put a
/// [`CachingCredentialStore`](crate::auth::sigv4::CachingCredentialStore) in front.
///
/// One `GET` per lookup, at `{NS:creds}:ACCESS_KEY_ID`. A credential
/// deleted or replaced here is still honoured by caching gateways until
/// their cache entry expires.
#[derive(Clone)]
pub struct RedisCredentialStore {
    redis: RedisConnection,
}

impl fmt::Debug for RedisCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCredentialStore")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisCredentialStore {
    /// Credentials on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    /// The Redis key of an access key id's credentials.
    fn key(&self, access_key_id: &str) -> String {
        format!("{{{}:creds}}:{access_key_id}", self.redis.namespace())
    }

    /// Stores `credential` (replacing any with its access key id). One
    /// `SET`; no expiry.
    pub async fn put(&self, credential: &Credential) -> Result<(), StoreError> {
        let wire = CredentialWire {
            access_key_id: credential.access_key_id.clone(),
            secret: credential.secret.expose().to_owned(),
            principal: credential.principal.clone(),
            session_token: credential
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            can_invalidate_cache: credential.can_invalidate_cache,
        };
        let json =
            serde_json::to_string(&wire).map_err(|_| protocol("cannot encode credentials"))?;
        let mut conn = self.redis.conn();
        let k = self.key(&credential.access_key_id);
        self.redis
            .run(async move { conn.set::<_, _, ()>(k, json).await })
            .await
    }

    /// Deletes the credentials of `access_key_id`; whether there were any.
    pub async fn delete(&self, access_key_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.key(access_key_id);
        let n: i64 = self.redis.run(async move { conn.del(k).await }).await?;
        Ok(n > 0)
    }
}

#[async_trait]
impl CredentialStore for RedisCredentialStore {
    async fn get(&self, access_key_id: &str) -> Result<Option<Arc<Credential>>, StoreError> {
        let mut conn = self.redis.conn();
        let k = self.key(access_key_id);
        let json: Option<String> = self.redis.run(async move { conn.get(k).await }).await?;
        let Some(json) = json else { return Ok(None) };
        let w: CredentialWire =
            serde_json::from_str(&json).map_err(|_| protocol("credentials that do not parse"))?;
        let mut c = Credential::new(w.access_key_id, Secret::new(w.secret), w.principal)
            .allow_cache_invalidation(w.can_invalidate_cache);
        if let Some(t) = w.session_token {
            c = c.with_session_token(Secret::new(t));
        }
        Ok(Some(Arc::new(c)))
    }
}
