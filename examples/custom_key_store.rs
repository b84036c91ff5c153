//! API keys kept in your own storage: a `KeyStore` over a JSON file.
//!
//! ```text
//! cargo run --example custom_key_store
//! ```
//!
//! The same shape fits a database table or a 3scale-like authorization
//! service: implement the six methods over it, put a `CachingKeyStore` in
//! front (found keys cached 300 s, unknown ones 10 s, last known answers
//! served while the backend is down), and hand it to the gateway with
//! `GatewayBuilder::key_store`. The file holds digests, never key values.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tollgate::clock::SystemClock;
use tollgate::keys::{CachingKeyStore, KeyDigest, KeyRecord, KeyStore, NewKey};
use tollgate::store::StoreError;
use tollgate::{Body, Config, Gateway};
use tower::{ServiceExt, service_fn};

/// One line of the file: a digest and what we know of its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    digest: String,
    id: String,
    name: String,
    enabled: bool,
    created_unix: i64,
    plans: Vec<String>,
}

impl Row {
    fn record(&self) -> KeyRecord {
        let created = OffsetDateTime::from_unix_timestamp(self.created_unix)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut r = KeyRecord::new(self.name.clone(), created);
        r.id = Arc::from(self.id.as_str());
        r.enabled = self.enabled;
        r.plans = self.plans.iter().map(|p| Arc::from(p.as_str())).collect();
        r
    }
}

/// A key store that reads and rewrites a JSON file.
#[derive(Debug)]
struct JsonFileKeyStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl JsonFileKeyStore {
    async fn rows(&self) -> Result<Vec<Row>, StoreError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::unavailable(format!("bad key file: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::unavailable(format!(
                "cannot read the key file: {e}"
            ))),
        }
    }

    async fn save(&self, rows: &[Row]) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec_pretty(rows).map_err(|e| StoreError::unavailable(e.to_string()))?;
        tokio::fs::write(&self.path, json)
            .await
            .map_err(|e| StoreError::unavailable(format!("cannot write: {e}")))
    }
}

#[async_trait]
impl KeyStore for JsonFileKeyStore {
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let hex = digest.to_hex();
        Ok(self
            .rows()
            .await?
            .iter()
            .find(|r| r.digest == hex)
            .map(|r| Arc::new(r.record())))
    }

    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        let rows = self.rows().await?;
        Ok(rows
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| KeyDigest::from_hex(&r.digest).map(|d| (d, Arc::new(r.record())))))
    }

    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        let _guard = self.lock.lock().await;
        let mut rows = self.rows().await?;
        let hex = digest.to_hex();
        if rows.iter().any(|r| r.digest == hex && r.id != *record.id) {
            return Err(StoreError::new(
                tollgate::store::StoreErrorKind::Conflict,
                "duplicate key value",
            ));
        }
        rows.retain(|r| r.id != *record.id);
        rows.push(Row {
            digest: hex,
            id: record.id.to_string(),
            name: record.name,
            enabled: record.enabled,
            created_unix: record.created.unix_timestamp(),
            plans: record.plans.iter().map(|p| p.to_string()).collect(),
        });
        self.save(&rows).await
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let _guard = self.lock.lock().await;
        let mut rows = self.rows().await?;
        let before = rows.len();
        rows.retain(|r| r.id != id);
        self.save(&rows).await?;
        Ok(rows.len() != before)
    }

    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        Ok(self
            .rows()
            .await?
            .iter()
            .map(|r| Arc::new(r.record()))
            .collect())
    }
}

const CONFIG: &str = r#"
routes: { /hello: [GET] }
stages: { prod: { settings: { api_key_required: true } } }
plans: { basic: { stages: [prod], quota: { limit: 1000, period: day } } }
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("tollgate-keys-{}.json", std::process::id()));
    let file = Arc::new(JsonFileKeyStore {
        path: path.clone(),
        lock: Mutex::new(()),
    });
    let store = Arc::new(CachingKeyStore::new(file, SystemClock).resilient(true));
    let gateway = Gateway::builder(Config::from_yaml_str(CONFIG)?)
        .key_store(store)
        .build()?;

    // Keys created through the gateway's manager land in the file, hashed.
    let (record, value) = gateway
        .key_manager()
        .create(NewKey::named("alice").plan("basic"))
        .await?;
    println!(
        "created key {} for {}; the file holds only its digest:",
        record.id, record.name
    );
    println!("{}", tokio::fs::read_to_string(&path).await?);

    let svc = gateway.service(service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("hello\n")))
    }));
    let with_key = Request::get("/prod/hello")
        .header("x-api-key", value.expose())
        .body(Body::empty())?;
    let res = svc.clone().oneshot(with_key).await?;
    println!("with the key: {}", res.status());
    assert_eq!(res.status(), StatusCode::OK);
    let without = svc
        .oneshot(Request::get("/prod/hello").body(Body::empty())?)
        .await?;
    println!("without it:   {}", without.status());
    assert_eq!(without.status(), StatusCode::FORBIDDEN);

    tokio::fs::remove_file(&path).await?;
    Ok(())
}
