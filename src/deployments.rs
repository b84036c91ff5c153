//! Where a lifecycle's state is kept between runs and shared between
//! processes: [`DeploymentStore`], with [`InMemoryDeploymentStore`] (shared
//! within one process), [`DirDeploymentStore`] in a directory (kept across
//! restarts) and, with feature `redis`, `tollgate::redis::RedisDeploymentStore`
//! (shared by every process on one Redis).
//!
//! A store keeps one versioned JSON document; the
//! [`Lifecycle`](crate::Lifecycle) writes and reads it
//! ([`Lifecycle::attach`](crate::Lifecycle::attach)):
//!
//! ```
//! use std::sync::Arc;
//! use tollgate::deployments::DirDeploymentStore;
//! use tollgate::{Config, Gateway};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("tollgate-doc-{}", std::process::id()));
//! let lifecycle = Gateway::builder(Config::from_yaml_str("routes: { /pets: [GET] }\nstages: { prod: {} }")?)
//!     .build_lifecycle()?;
//! lifecycle.attach(Arc::new(DirDeploymentStore::new(&dir)?)).await?;
//! assert_eq!(lifecycle.version().await, 1);
//! # std::fs::remove_dir_all(&dir)?; Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::{StoreError, StoreErrorKind};

/// Keeps a lifecycle's state (APIs, deployments with their definitions,
/// stages, domains, usage plans) as one versioned JSON document, so history
/// survives a restart and processes sharing the store serve the same
/// deployments.
///
/// The document holds no key, credential or pepper (definitions never do).
/// Versions count from 1; 0 means nothing is stored. Implementations:
/// [`DirDeploymentStore`] and, with feature `redis`,
/// `tollgate::redis::RedisDeploymentStore`. Without a store, a lifecycle
/// keeps its state in memory (the default).
#[async_trait]
pub trait DeploymentStore: Send + Sync + 'static {
    /// The stored version and document; `None` when nothing is stored.
    async fn load(&self) -> Result<Option<(u64, String)>, StoreError>;

    /// Stores `document` as version `expected + 1` if the stored version is
    /// still `expected` (compare and set); `Ok(false)` when another writer
    /// stored a newer one first (nothing is written then).
    async fn save(&self, expected: u64, document: &str) -> Result<bool, StoreError>;

    /// The stored version, cheaply (0: none). A lifecycle attached with a
    /// [`poll_interval`](Self::poll_interval) reads it that often and loads
    /// a newer document: its change feed.
    async fn version(&self) -> Result<u64, StoreError>;

    /// How often to look for changes made elsewhere; `None`: this process
    /// is the only writer.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
}

/// A [`DeploymentStore`] in memory: what several lifecycles of one process
/// share (each polls it every 50 ms). A lifecycle with no store attached
/// keeps its state in memory already; this store is for sharing it.
#[derive(Debug, Default)]
pub struct InMemoryDeploymentStore {
    stored: std::sync::Mutex<Option<(u64, String)>>,
}

impl InMemoryDeploymentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, String)>> {
        self.stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl DeploymentStore for InMemoryDeploymentStore {
    async fn load(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.lock().clone())
    }

    async fn save(&self, expected: u64, document: &str) -> Result<bool, StoreError> {
        let mut stored = self.lock();
        if stored.as_ref().map_or(0, |(v, _)| *v) != expected {
            return Ok(false);
        }
        let Some(next) = expected.checked_add(1) else {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                "the version is at its largest",
            ));
        };
        *stored = Some((next, document.to_owned()));
        Ok(true)
    }

    async fn version(&self) -> Result<u64, StoreError> {
        Ok(self.lock().as_ref().map_or(0, |(v, _)| *v))
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
}

/// A [`DeploymentStore`] in a directory: `lifecycle.json` (the document)
/// and `lifecycle.version`, each replaced whole by a rename, so a crash
/// leaves the old or the new, never a torn file.
///
/// Processes on one directory see each other's changes within the poll
/// interval (250 ms); their compare and set is not atomic across
/// processes, so give them one writer at a time (Redis' store is atomic).
#[derive(Debug, Clone)]
pub struct DirDeploymentStore {
    dir: PathBuf,
}

impl DirDeploymentStore {
    /// A store in `dir`, created when missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, &e))?;
        Ok(Self { dir })
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| io_error(&tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, &e))
    }

    fn read_version(&self) -> Result<u64, StoreError> {
        let path = self.dir.join("lifecycle.version");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Protocol,
                    format!("{}: not a version number", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error(&path, &e)),
        }
    }
}

fn io_error(path: &std::path::Path, e: &std::io::Error) -> StoreError {
    StoreError::unavailable(format!("{}: {e}", path.display()))
}

#[async_trait]
impl DeploymentStore for DirDeploymentStore {
    async fn load(&self) -> Result<Option<(u64, String)>, StoreError> {
        let version = self.read_version()?;
        if version == 0 {
            return Ok(None);
        }
        let path = self.dir.join("lifecycle.json");
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
        Ok(Some((version, text)))
    }

    async fn save(&self, expected: u64, document: &str) -> Result<bool, StoreError> {
        if self.read_version()? != expected {
            return Ok(false);
        }
        let Some(next) = expected.checked_add(1) else {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                "the version is at its largest",
            ));
        };
        // The document first: a reader that sees the new version finds it.
        self.replace("lifecycle.json", document.as_bytes())?;
        self.replace("lifecycle.version", next.to_string().as_bytes())?;
        Ok(true)
    }

    async fn version(&self) -> Result<u64, StoreError> {
        self.read_version()
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(250))
    }
}

impl fmt::Debug for dyn DeploymentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeploymentStore")
    }
}
