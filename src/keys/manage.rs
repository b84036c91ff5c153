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
    hasher: KeyHasher,
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
    /// The digest, for keys imported without their value.
    pub digest: Option<KeyDigest>,
    /// Free text.
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// When the key stops working.
    pub expires: Option<OffsetDateTime>,
    /// Plans to attach.
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

    /// With this value (20 to 128 printable characters).
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

    /// Stores a key whose value (or digest) is given.
    pub async fn import(&self, key: NewKey) -> Result<KeyRecord, StoreError> {
        let (digest, record) = prepare(key, &self.hasher, self.clock.utc())?;
        self.check_plans(&record.plans)?;
        self.store.put(digest, record.clone()).await?;
        Ok(record)
    }

    /// Imports keys from API Gateway's CSV format: a header line naming the
    /// columns (`Name,key,description,Enabled,usageplanIds`, in any order and
    /// case), then one key per line. `usageplanIds` separates plans with `;`.
    /// Every line is checked before any key is stored.
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

    async fn record(&self, id: &str) -> Result<(KeyDigest, KeyRecord), StoreError> {
        match self.store.get_by_id(id).await? {
            Some((d, r)) => Ok((d, (*r).clone())),
            None => Err(conflict(format!("no key with id `{id}`"))),
        }
    }

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
    /// stops working at once.
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

    /// Enables a key.
    pub async fn enable(&self, id: &str) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.enabled = true).await
    }

    /// Attaches a key to a plan.
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

    /// Detaches a key from a plan.
    pub async fn detach(&self, id: &str, plan: &str) -> Result<KeyRecord, StoreError> {
        self.update(id, |r| r.plans.retain(|p| &**p != plan)).await
    }

    /// Deletes a key.
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
