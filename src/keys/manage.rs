//! Managing keys: the one way records are made, changed and removed.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{KeyDigest, KeyHasher, KeyRecord, KeyStore, generate_key, is_valid_key};
use crate::clock::Clock;
use crate::plans::PlanBook;
use crate::secret::Secret;
use crate::store::{StoreError, StoreErrorKind};

/// Manages API keys in a [`KeyStore`]: create, import, rotate, disable,
/// delete, attach to plans. Config-file keys load through
/// [`import`](Self::import) as well.
///
/// Every refusal is a [`StoreError`] of kind
/// [`Conflict`](StoreErrorKind::Conflict) with a message for people (no
/// such id, no such plan, two plans on one stage, a value that is not a
/// key); a failing store passes its own error through. Messages never
/// quote a key value.
///
/// **Concurrency.** Each change reads the record, changes it and puts it
/// back: two changes of one key at the same moment (from two processes on
/// one Redis, say) may lose one of them, the last put winning. Changes
/// take effect in the store at once; processes that cache keys
/// ([`CachingKeyStore`](super::CachingKeyStore)) see them within their TTL,
/// except the one whose cache the change went through.
///
/// ```
/// use std::sync::Arc;
/// use tollgate::clock::SystemClock;
/// use tollgate::keys::{InMemoryKeyStore, KeyHasher, KeyManager, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(InMemoryKeyStore::new());
/// let keys = KeyManager::new(store.clone(), KeyHasher::sha256(), SystemClock);
/// let (record, value) = keys.create(NewKey::named("alice").plan("basic")).await?;
/// assert_eq!(value.expose().len(), 40); // shown once, never stored
/// let new_value = keys.rotate(&record.id).await?;
/// assert_ne!(new_value.expose(), value.expose());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct KeyManager {
    store: Arc<dyn KeyStore>,
    /// Must be the hasher of the layers that read the store, or keys made
    /// here are never found.
    hasher: KeyHasher,
    /// Stamps `created` on new records (the start of their quota periods).
    clock: Arc<dyn Clock>,
    /// A gateway's plans, to refuse a key two plans of one stage.
    plans: Option<PlanBook>,
}

/// A key to create or import.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewKey {
    /// A unique name.
    pub name: String,
    /// The value; generated (40 alphanumerics) when absent.
    pub value: Option<Secret>,
    /// The digest, for keys imported without their value (made with the
    /// manager's [`KeyHasher`]); ignored when `value` is given.
    pub digest: Option<KeyDigest>,
    /// Free text.
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// When the key stops working.
    pub expires: Option<OffsetDateTime>,
    /// Plans to attach, by name; the first that covers a stage is the one
    /// a request on that stage is counted under.
    pub plans: Vec<String>,
    /// Tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Whether the key may invalidate cache entries (`Cache-Control: max-age=0`).
    pub can_invalidate_cache: bool,
}

impl NewKey {
    /// A key named `name`, with a generated value.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// With this value (20 to 128 printable characters; checked when the
    /// key is stored, not here).
    pub fn value(mut self, value: Secret) -> Self {
        self.value = Some(value);
        self
    }

    /// Attached to `plan`.
    pub fn plan(mut self, plan: impl Into<String>) -> Self {
        self.plans.push(plan.into());
        self
    }
}

fn conflict(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, message)
}

impl KeyManager {
    /// A manager for `store`, hashing with `hasher`.
    pub fn new(store: Arc<dyn KeyStore>, hasher: KeyHasher, clock: impl Clock) -> Self {
        Self {
            store,
            hasher,
            clock: Arc::new(clock),
            plans: None,
        }
    }

    /// Checks plan attachments against `plans` from now on (a gateway's
    /// manager does; a manager on its own accepts any plan name).
    pub(crate) fn with_plans(mut self, plans: PlanBook) -> Self {
        self.plans = Some(plans);
        self
    }

    /// A key may be in several plans, at most one per stage, and only in plans that exist.
    fn check_plans(&self, plans: &[Arc<str>]) -> Result<(), StoreError> {
        let Some(book) = &self.plans else {
            return Ok(());
        };
        let book = book.load();
        let mut owner: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for plan in plans {
            let Some(def) = book.get(plan) else {
                return Err(conflict(format!("no plan `{plan}`")));
            };
            for stage in &def.stages {
                if let Some(other) = owner.insert(stage, plan) {
                    return Err(conflict(format!(
                        "plans `{other}` and `{plan}` both cover stage `{stage}` (a key may be in one plan per stage)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Creates a key and returns its record and value. The value is not kept
    /// anywhere: hand it to its owner now.
    ///
    /// A store error of kind `Unavailable` when the operating system has no
    /// randomness to give; no weaker key is made instead.
    pub async fn create(&self, key: NewKey) -> Result<(KeyRecord, Secret), StoreError> {
        let value = match &key.value {
            Some(v) => v.clone(),
            None => generate_key()
                .ok_or_else(|| StoreError::unavailable("no randomness to make a key from"))?,
        };
        let key = NewKey {
            value: Some(value.clone()),
            ..key
        };
        Ok((self.import(key).await?, value))
    }

    /// Stores a key whose value (or digest) is given, under a new id.
    ///
    /// Importing the same name twice makes two keys. Importing a value that
    /// a stored key already has is refused by the in-memory store
    /// ([`Conflict`](StoreErrorKind::Conflict)); API Gateway instead
    /// overwrites the older key.
    pub async fn import(&self, key: NewKey) -> Result<KeyRecord, StoreError> {
        let (digest, record) = prepare(key, &self.hasher, self.clock.utc())?;
        self.check_plans(&record.plans)?;
        self.store.put(digest, record.clone()).await?;
        Ok(record)
    }

    /// Imports keys from API Gateway's CSV format: a header line naming the
    /// columns (`Name,key,description,Enabled,usageplanIds`, in any order and
    /// case), then one key per line. `usageplanIds` separates plans with `;`.
    /// The format of every line (both required cells, a valid key, `Enabled`
    /// true or false in any case) is checked before any key is stored;
    /// plans and store conflicts are checked key by key as they are stored,
    /// so such an error leaves the keys before it stored.
    ///
    /// Differences from API Gateway's "API key file format": cells are not
    /// unquoted (a comma cannot appear in a cell, so a description has
    /// none), several plans are separated by `;` rather than a quoted
    /// comma list, and keys may be 20 characters rather than 30. Unknown
    /// columns are ignored, as there. Line numbers in errors count the
    /// header as line 1 and skip blank lines.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate::clock::SystemClock;
    /// use tollgate::keys::{InMemoryKeyStore, KeyHasher, KeyManager};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Arc::new(InMemoryKeyStore::new());
    /// let keys = KeyManager::new(store.clone(), KeyHasher::sha256(), SystemClock);
    /// let csv = "key,Name,Enabled,Notes\n\
    ///            demo-key-alice-0123456789,alice,TRUE,first\n\
    ///            demo-key-bob-0123456789ab,bob,false,\n";
    /// let imported = keys.import_csv(csv).await?;
    /// assert_eq!(imported.len(), 2);
    /// assert!(imported[0].enabled && !imported[1].enabled);
    /// assert_eq!(store.len(), 2);
    ///
    /// let err = keys.import_csv("Name,key\ncarol,too-short\n").await.unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "store conflict: CSV line 2: the key is not 20 to 128 printable characters",
    /// );
    /// # Ok(()) }
    /// ```
    pub async fn import_csv(&self, csv: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = lines
            .next()
            .map(|h| {
                h.split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let col = |name: &str| header.iter().position(|c| c == name);
        let (Some(name_col), Some(key_col)) = (col("name"), col("key")) else {
            return Err(conflict(
                "the CSV header must name the columns `Name` and `key`",
            ));
        };
        let (desc_col, enabled_col, plans_col) =
            (col("description"), col("enabled"), col("usageplanids"));
        let mut keys = Vec::new();
        for (i, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let cell = |c: Option<usize>| {
                c.and_then(|c| cells.get(c))
                    .copied()
                    .filter(|v| !v.is_empty())
            };
            let (Some(name), Some(value)) = (cell(Some(name_col)), cell(Some(key_col))) else {
                return Err(conflict(format!(
                    "CSV line {}: `Name` and `key` are required",
                    i + 2
                )));
            };
            if !is_valid_key(value) {
                return Err(conflict(format!(
                    "CSV line {}: the key is not 20 to 128 printable characters",
                    i + 2
                )));
            }
            let enabled = match cell(enabled_col).map(str::to_ascii_lowercase).as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => {
                    return Err(conflict(format!(
                        "CSV line {}: `Enabled` is true or false",
                        i + 2
                    )));
                }
            };
            keys.push(NewKey {
                name: name.to_owned(),
                value: Some(Secret::new(value)),
                description: cell(desc_col).map(str::to_owned),
                enabled: Some(enabled),
                plans: cell(plans_col)
                    .map(|p| p.split(';').map(|s| s.trim().to_owned()).collect())
                    .unwrap_or_default(),
                ..NewKey::default()
            });
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.import(k).await?);
        }
        Ok(out)
    }

    /// The digest and an owned copy of key `id`'s record; a
    /// [`Conflict`](StoreErrorKind::Conflict) when there is no such key.
    async fn record(&self, id: &str) -> Result<(KeyDigest, KeyRecord), StoreError> {
        match self.store.get_by_id(id).await? {
            Some((d, r)) => Ok((d, (*r).clone())),
            None => Err(conflict(format!("no key with id `{id}`"))),
        }
    }

    /// Read, change with `f`, check plans, put back under the same digest.
    /// Not atomic: see the type's docs on concurrency.
    async fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut KeyRecord),
    ) -> Result<KeyRecord, StoreError> {
        let (digest, mut record) = self.record(id).await?;
        f(&mut record);
        self.check_plans(&record.plans)?;
        self.store.put(digest, record.clone()).await?;
        Ok(record)
    }

    /// Gives the key a new value (same id, plans and usage); the old value
    /// stops working at once in the store, and in processes that cache keys
    /// once their entry for it is older than the cache's TTL. The record is
    /// kept as it is (`created` included, so quota periods do not move).
    pub async fn rotate(&self, id: &str) -> Result<Secret, StoreError> {
        let (_, record) = self.record(id).await?;
        let value = generate_key()
            .ok_or_else(|| StoreError::unavailable("no randomness to make a key from"))?;
        self.store
            .put(self.hasher.digest(value.expose()), record)
            .await?;
        Ok(value)
    }

    /// Disables a key (refused until enabled again).
    pub async fn disable(&self, id: &str) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.enabled = false).await
    }

    /// Renames a key (names need not be unique). Refused (`Conflict`) for
    /// an empty name or an unknown id.
    pub async fn rename(&self, id: &str, name: &str) -> Result<KeyRecord, StoreError> {
        if name.is_empty() {
            return Err(conflict("a key needs a name"));
        }
        self.update(id, |r| r.name = name.to_owned()).await
    }

    /// Replaces a key's description (`None` removes it).
    pub async fn describe(
        &self,
        id: &str,
        description: Option<String>,
    ) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.description = description).await
    }

    /// Enables a key.
    pub async fn enable(&self, id: &str) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.enabled = true).await
    }

    /// Attaches a key to a plan; attaching it again changes nothing. Refused
    /// when the manager knows the plans and the plan is unknown or shares a
    /// stage with another plan of the key.
    pub async fn attach(&self, id: &str, plan: &str) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| {
            if !r.plans.iter().any(|p| &**p == plan) {
                r.plans.push(Arc::from(plan));
            }
        })
        .await
    }

    /// Lets a key invalidate cache entries with `Cache-Control: max-age=0`
    /// (`true`), or stops it (`false`).
    pub async fn allow_cache_invalidation(
        &self,
        id: &str,
        allowed: bool,
    ) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.can_invalidate_cache = allowed).await
    }

    /// Detaches a key from a plan (nothing to do if it is not attached).
    pub async fn detach(&self, id: &str, plan: &str) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.plans.retain(|p| &**p != plan)).await
    }

    /// Deletes a key; `Ok(false)` when there was none with this id. Its
    /// quota counters and usage counts are not touched.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete(id).await
    }

    /// Every key's record.
    pub async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.store.list().await
    }
}

/// Checks a new key and makes its digest and record: the one path by which
/// keys enter a store, from the config file or the management API.
///
/// The value wins over a digest when both are given. The record gets a new
/// id and `created = now`. Refusals (all
/// [`Conflict`](StoreErrorKind::Conflict), none quoting the value): a value
/// that is not a key, neither value nor digest, an empty name. Plans are
/// not checked here: that needs the plan book (`KeyManager::check_plans`).
pub(crate) fn prepare(
    key: NewKey,
    hasher: &KeyHasher,
    now: OffsetDateTime,
) -> Result<(KeyDigest, KeyRecord), StoreError> {
    let digest = match (&key.value, key.digest) {
        (Some(v), _) if is_valid_key(v.expose()) => hasher.digest(v.expose()),
        (Some(_), _) => {
            return Err(conflict(
                "an API key is 20 to 128 printable ASCII characters without spaces",
            ));
        }
        (None, Some(d)) => d,
        (None, None) => return Err(conflict("a key needs a value or a digest")),
    };
    if key.name.is_empty() {
        return Err(conflict("a key needs a name"));
    }
    let mut record = KeyRecord::new(key.name, now);
    record.description = key.description;
    record.enabled = key.enabled.unwrap_or(true);
    record.expires = key.expires;
    record.plans = key
        .plans
        .into_iter()
        .map(|p| Arc::from(p.as_str()))
        .collect();
    record.tags = key.tags;
    record.can_invalidate_cache = key.can_invalidate_cache;
    Ok((digest, record))
}

/// A key of the config file's `keys` section. An `expires` that does not
/// parse is dropped: config validation has reported it already, and a
/// config with errors is not built.
impl From<&crate::keys::KeyConfig> for NewKey {
    fn from(k: &crate::keys::KeyConfig) -> Self {
        use time::format_description::well_known::Rfc3339;
        Self {
            name: k.name.clone(),
            value: k.value.clone(),
            digest: k.value_sha256.as_deref().and_then(KeyDigest::from_hex),
            description: k.description.clone(),
            enabled: Some(k.enabled),
            // Validation has checked the format.
            expires: k
                .expires
                .as_deref()
                .and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok()),
            plans: k.plans.clone(),
            tags: k.tags.clone(),
            can_invalidate_cache: k.can_invalidate_cache,
        }
    }
}
