//! The Pet Store backend and its server, shared by `examples/petstore.rs`,
//! the TCP tests and the load benchmark.
//!
//! The backend is deliberately ordinary: an in-memory map behind a mutex,
//! JSON in and out. Every call it answers carries `x-petstore-invocation: N`,
//! N counting the calls that reached it, so a gateway cache hit is visible;
//! behind a gateway, also `x-petstore-stage-variables: k=v;k=v` (the
//! stage's variables, sorted), so what a stage passes is visible too.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tollgate::auth::authorizer::{AuthorizerContext, AuthorizerRequest, Verdict};
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Gateway};
use tower::{Service, ServiceExt};

/// The largest request body the pet store reads.
const MAX_BODY: usize = 64 * 1024;
/// How long the pet store waits for a whole request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// One pet, as the AWS Pet Store sample has them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pet {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub price: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPet {
    #[serde(rename = "type")]
    kind: String,
    price: f64,
}

/// The in-memory pet store.
#[derive(Debug)]
pub struct PetStore {
    pets: Mutex<BTreeMap<u64, Pet>>,
    next_id: AtomicU64,
    invocations: AtomicU64,
}

impl PetStore {
    /// A store with the three pets of the AWS sample.
    pub fn new() -> Arc<Self> {
        let pets = [(1, "dog", 249.99), (2, "cat", 124.99), (3, "fish", 0.99)]
            .into_iter()
            .map(|(id, kind, price)| {
                (
                    id,
                    Pet {
                        id,
                        kind: kind.to_owned(),
                        price,
                    },
                )
            })
            .collect();
        Arc::new(Self {
            pets: Mutex::new(pets),
            next_id: AtomicU64::new(4),
            invocations: AtomicU64::new(0),
        })
    }

    /// How many requests reached the backend.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// Answers one request. `stage_prefixed`: the path still starts with
    /// `/{stage}` (bare mode, no gateway in front).
    pub async fn handle<B>(&self, req: Request<B>, stage_prefixed: bool) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<tollgate::body::BoxError>,
    {
        let n = self.invocations.fetch_add(1, Ordering::Relaxed) + 1;
        // Behind a gateway: the stage's variables, sorted, so that what a
        // stage (or, later, a canary) passes is visible from outside.
        let variables = req
            .extensions()
            .get::<tollgate::RequestContext>()
            .map(|c| c.endpoint().stage_variables())
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";")
            });
        let mut res = self.route(req, stage_prefixed).await;
        res.headers_mut()
            .insert("x-petstore-invocation", HeaderValue::from(n));
        if let Some(v) = variables.and_then(|v| HeaderValue::from_str(&v).ok()) {
            res.headers_mut().insert("x-petstore-stage-variables", v);
        }
        res
    }

    async fn route<B>(&self, req: Request<B>, stage_prefixed: bool) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<tollgate::body::BoxError>,
    {
        let path = req.uri().path();
        let path = if stage_prefixed {
            // Skip `/{stage}`: a bare server's only routing work.
            path.get(1..)
                .and_then(|p| p.find('/').map(|i| &p[i..]))
                .unwrap_or("/")
        } else {
            path
        };
        let mut segments = path.trim_matches('/').split('/');
        let (first, second, mut third) = (segments.next(), segments.next(), segments.next());
        // The backend of the VTL-mapped `PUT /pets/{petId}/legacy` is the
        // pet's PUT: the gateway's templates translate both ways.
        if third == Some("legacy") && req.method() == Method::PUT {
            third = None;
        }
        match (first, second, third) {
            (Some("pets"), None, None) => match *req.method() {
                Method::GET => {
                    let wanted = query_param(req.uri().query(), "type");
                    let pets = self.lock();
                    let list: Vec<&Pet> = pets
                        .values()
                        .filter(|p| wanted.as_deref().is_none_or(|t| p.kind == t))
                        .collect();
                    json(StatusCode::OK, &list)
                }
                Method::POST => {
                    let new = match read_pet(req.into_body()).await {
                        Ok(p) => p,
                        Err((status, text)) => return message(status, &text),
                    };
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let pet = Pet {
                        id,
                        kind: new.kind,
                        price: new.price,
                    };
                    self.lock().insert(id, pet.clone());
                    let mut res = json(StatusCode::CREATED, &pet);
                    if let Ok(v) = HeaderValue::try_from(format!("/pets/{id}")) {
                        res.headers_mut().insert(LOCATION, v);
                    }
                    res
                }
                _ => message(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            },
            // The backend of the mapped `/pets/{petId}/summary`: the whole
            // pet; the gateway's response template shrinks it.
            (Some("pets"), Some(id), Some("summary")) if req.method() == Method::GET => {
                match id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| self.lock().get(&id).cloned())
                {
                    Some(p) => json(StatusCode::OK, &p),
                    None => message(StatusCode::NOT_FOUND, &format!("no pet with id `{id}`")),
                }
            }
            (Some("pets"), Some(id), None) => {
                let Ok(id) = id.parse::<u64>() else {
                    return message(StatusCode::NOT_FOUND, &format!("no pet with id `{id}`"));
                };
                match *req.method() {
                    Method::GET => match self.lock().get(&id) {
                        Some(p) => json(StatusCode::OK, p),
                        None => not_found(id),
                    },
                    Method::PUT => {
                        let new = match read_pet(req.into_body()).await {
                            Ok(p) => p,
                            Err((status, text)) => return message(status, &text),
                        };
                        match self.lock().get_mut(&id) {
                            Some(p) => {
                                p.kind = new.kind;
                                p.price = new.price;
                                json(StatusCode::OK, p)
                            }
                            None => not_found(id),
                        }
                    }
                    Method::DELETE => match self.lock().remove(&id) {
                        Some(p) => json(StatusCode::OK, &p),
                        None => not_found(id),
                    },
                    _ => message(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                }
            }
            (Some("whoami"), None, None) => {
                let who = req.extensions().get::<AuthorizerContext>();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "principal": who.map(|c| c.principal_id.clone()),
                        "context": who.map(|c| c.context.clone()),
                    }),
                )
            }
            _ => message(StatusCode::NOT_FOUND, "no such resource"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Pet>> {
        // A panic while holding the lock cannot leave a map half-updated.
        self.pets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads and checks a pet from a JSON body; a rejection says why.
async fn read_pet<B>(body: B) -> Result<NewPet, (StatusCode, String)>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<tollgate::body::BoxError>,
{
    // Copied into one buffer as it arrives (a client sending one byte at a
    // time must not pin a read buffer per byte), within a size and a time.
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            // The gateway's `limits.max_body` ends a streamed body in a
            // length error: that is a 413, as axum's extractors answer.
            let frame = frame.map_err(|e| {
                let e: tollgate::body::BoxError = e.into();
                if e.is::<http_body_util::LengthLimitError>() {
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the body is over the gateway's limit".to_owned(),
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        "the body could not be read".to_owned(),
                    )
                }
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > MAX_BODY {
                    return Err((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the body is over 64 KiB".to_owned(),
                    ));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf)
    };
    let bytes = tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err((
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time".to_owned(),
            ))
        })?;
    let pet: NewPet = serde_json::from_slice(&bytes)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid pet JSON: {e}")))?;
    if pet.kind.is_empty() || pet.kind.len() > 64 {
        return Err((
            StatusCode::BAD_REQUEST,
            "`type` must be 1 to 64 characters".to_owned(),
        ));
    }
    if !(pet.price.is_finite() && pet.price >= 0.0) {
        return Err((
            StatusCode::BAD_REQUEST,
            "`price` must be a number >= 0".to_owned(),
        ));
    }
    Ok(pet)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn message(status: StatusCode, text: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "message": text }))
}

fn not_found(id: u64) -> Response<Body> {
    message(StatusCode::NOT_FOUND, &format!("no pet with id {id}"))
}

/// The gateway of the example: the config at `path`, and the toy bearer
/// authorizer its `dev` stage names (`Authorization: Bearer letmein`).
pub fn build_gateway(path: &std::path::Path) -> Result<Gateway, tollgate::ConfigError> {
    build_gateway_with(path, Vec::new())
}

/// The same, reporting usage to `reporters`.
pub fn build_gateway_with(
    path: &std::path::Path,
    reporters: Vec<tollgate::usage::Reporter>,
) -> Result<Gateway, tollgate::ConfigError> {
    let config = tollgate::Config::from_path(path)?;
    let mut builder = Gateway::builder(config);
    for r in reporters {
        builder = builder.reporter(r);
    }
    authorizers(builder).build()
}

/// The config at `config`, with the export at `openapi` imported into it
/// when given (as [`build_openapi_gateway`] does).
pub fn load_config(
    config: &std::path::Path,
    openapi: Option<&std::path::Path>,
    stage: Option<&str>,
) -> Result<tollgate::Config, String> {
    let existing =
        tollgate::Config::from_path(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let Some(openapi) = openapi else {
        return Ok(existing);
    };
    let document =
        std::fs::read_to_string(openapi).map_err(|e| format!("{}: {e}", openapi.display()))?;
    let mut options = tollgate::openapi::ImportOptions::default();
    // The functions `authorizers` registers: an aws_proxy naming one calls it.
    options.functions.insert("echo".to_owned());
    if let Some(s) = stage {
        options.stage = s.to_owned();
    }
    tollgate::openapi::import_into(&existing, &document, &options)
        .map(|i| i.config)
        .map_err(|e| format!("{}: {e}", openapi.display()))
}

/// The config at `config` with the API Gateway export at `openapi`
/// imported into it (its routes and the stage's methods replaced; keys,
/// plans and stage variables kept), as a gateway reporting to
/// `reporters`, and what the import did not honour.
pub fn build_openapi_gateway(
    config: &std::path::Path,
    openapi: &std::path::Path,
    stage: Option<&str>,
    reporters: Vec<tollgate::usage::Reporter>,
) -> Result<(Gateway, Vec<tollgate::openapi::ImportWarning>), String> {
    let existing =
        tollgate::Config::from_path(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let document =
        std::fs::read_to_string(openapi).map_err(|e| format!("{}: {e}", openapi.display()))?;
    let mut options = tollgate::openapi::ImportOptions::default();
    // The functions `authorizers` registers: an aws_proxy naming one calls it.
    options.functions.insert("echo".to_owned());
    if let Some(s) = stage {
        options.stage = s.to_owned();
    }
    let imported = tollgate::openapi::import_into(&existing, &document, &options)
        .map_err(|e| format!("{}: {e}", openapi.display()))?;
    let mut builder = Gateway::builder(imported.config);
    for r in reporters {
        builder = builder.reporter(r);
    }
    let gateway = authorizers(builder)
        .build()
        .map_err(|e| format!("{}: {e}", openapi.display()))?;
    Ok((gateway, imported.warnings))
}

/// The config at `path` as a gateway, its stage canaries left out: what
/// the welcome lines and `--check`'s count read when a lifecycle serves.
pub fn gateway_without_canaries(path: &std::path::Path) -> Result<Gateway, tollgate::ConfigError> {
    let mut config = tollgate::Config::from_path(path)?;
    for stage in config.stages.values_mut() {
        stage.canary = None;
    }
    authorizers(Gateway::builder(config)).build()
}

/// The example's lifecycle (`--watch`): the config at `path` as one API
/// whose stages can be redeployed while it serves, reporting to
/// `reporters`.
pub fn build_lifecycle_with(
    path: &std::path::Path,
    reporters: Vec<tollgate::usage::Reporter>,
) -> Result<tollgate::Lifecycle, tollgate::ConfigError> {
    let config = tollgate::Config::from_path(path)?;
    let mut builder = Gateway::builder(config);
    for r in reporters {
        builder = builder.reporter(r);
    }
    authorizers(builder).build_lifecycle()
}

/// Attaches the store a config's `deployments` names: a directory; Redis
/// only with `--redis` (`on_redis`: attached already).
pub async fn attach_configured_store(
    path: &std::path::Path,
    lifecycle: &tollgate::Lifecycle,
    on_redis: bool,
) -> Result<(), String> {
    use tollgate::gateway::DeploymentStoreConfig;
    let config = tollgate::Config::from_path(path).map_err(|e| e.to_string())?;
    match config.deployments.map(|d| d.store) {
        Some(DeploymentStoreConfig::Dir(dir)) => {
            let store = tollgate::deployments::DirDeploymentStore::new(&dir)
                .map_err(|e| format!("deployments.store.dir: {e}"))?;
            lifecycle
                .attach(Arc::new(store))
                .await
                .map_err(|e| e.to_string())
        }
        Some(DeploymentStoreConfig::Redis) if !on_redis => {
            Err("deployments.store: redis needs --redis URL".to_owned())
        }
        _ => Ok(()),
    }
}

/// Watches the config at `path` for `--watch`: every 250 ms (and at once
/// on SIGHUP) its bytes are compared with the last read; a change is parsed
/// and applied with [`Lifecycle::reload`](tollgate::Lifecycle::reload) (a
/// changed definition becomes a new deployment). An invalid file is
/// reported on stderr, every problem with its path, and the previous config
/// keeps serving. Runs until the process ends.
///
/// Without `poll` (a lifecycle served without `--watch`), only SIGHUP
/// reloads.
pub async fn watch(path: PathBuf, lifecycle: tollgate::Lifecycle, poll: bool) {
    let mut files = watched_files(&path);
    let mut last = snapshot(&files);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = match hangup.as_mut() {
            Some(h) => tokio::select! {
                _ = tick.tick() => false,
                _ = h.recv() => true,
            },
            None => {
                tick.tick().await;
                false
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tick.tick().await;
            false
        };
        if !forced && !poll {
            continue;
        }
        let now = snapshot(&files);
        if !forced && now == last {
            continue;
        }
        last = now;
        let shown = path.display();
        match tollgate::Config::from_path(&path) {
            Err(e) => eprintln!(
                "{shown}: not reloaded, the previous config keeps serving:
{e}"
            ),
            Ok(config) => match lifecycle.reload(config).await.inspect(|_| {
                // The files the config names now are watched from now on.
                files = watched_files(&path);
                last = snapshot(&files);
            }) {
                Err(e) => eprintln!(
                    "{shown}: not reloaded, the previous config keeps serving:
{e}"
                ),
                Ok(done) => {
                    if done.deployments.is_empty() {
                        println!("{shown}: reloaded, definitions unchanged");
                    }
                    for d in &done.deployments {
                        println!("{shown}: reloaded, API {} deployment {}", d.api_id, d.id);
                    }
                    if !done.stages.is_empty() {
                        println!("  stages changed: {}", done.stages.join(", "));
                    }
                    if !done.needs_restart.is_empty() {
                        println!(
                            "  changed, applied at the next start: {}",
                            done.needs_restart.join(", ")
                        );
                    }
                }
            },
        }
    }
}

/// The config at `path` and the files it names (stage canaries' configs,
/// each API's config): what `--watch` compares.
fn watched_files(path: &std::path::Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    if let Ok(config) = tollgate::Config::from_path(path) {
        files.extend(
            config
                .stages
                .values()
                .filter_map(|s| s.canary.as_ref()?.config.clone())
                .map(PathBuf::from),
        );
        files.extend(
            config
                .apis
                .values()
                .filter_map(|a| a.config.clone())
                .map(PathBuf::from),
        );
    }
    files
}

/// What the watched files hold now: a regular file's bytes (at most 16 MiB,
/// the config limit; a larger or special file reads as its length alone,
/// for the parser to refuse), `None` for one that cannot be read.
fn snapshot(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            if !meta.is_file() || meta.len() > 16 << 20 {
                return Some(meta.len().to_le_bytes().to_vec());
            }
            std::fs::read(f).ok()
        })
        .collect()
}

/// The gateway with every store in Redis (`--redis URL`, feature `redis`):
/// limits, quotas, keys (cached, served from the cache while Redis is away),
/// credentials and usage counts, shared by every process on that Redis.
#[cfg(feature = "redis")]
pub async fn build_redis_gateway(
    path: &std::path::Path,
    url: &str,
    reporters: Vec<tollgate::usage::Reporter>,
) -> Result<Gateway, String> {
    let (builder, _) = redis_builder(path, url, reporters).await?;
    let gateway = builder.build().map_err(|e| e.to_string())?;
    // The config's keys go into Redis (the same digests every process loads).
    gateway
        .load_config_keys()
        .await
        .map_err(|e| e.to_string())?;
    Ok(gateway)
}

/// The same stores for a lifecycle (`--redis URL --watch`), its APIs,
/// deployments, stages and plans in Redis too: a deployment made in one
/// process (a reload of its file) is served by every process on that Redis
/// within a second; a process that starts serves what Redis holds.
#[cfg(feature = "redis")]
pub async fn build_redis_lifecycle(
    path: &std::path::Path,
    url: &str,
    reporters: Vec<tollgate::usage::Reporter>,
) -> Result<tollgate::Lifecycle, String> {
    let (builder, redis) = redis_builder(path, url, reporters).await?;
    let in_dir = tollgate::Config::from_path(path).is_ok_and(|c| {
        matches!(
            c.deployments.map(|d| d.store),
            Some(tollgate::gateway::DeploymentStoreConfig::Dir(_))
        )
    });
    let lifecycle = builder.build_lifecycle().map_err(|e| e.to_string())?;
    if !in_dir {
        lifecycle
            .attach(Arc::new(tollgate::redis::RedisDeploymentStore::new(redis)))
            .await
            .map_err(|e| e.to_string())?;
    }
    lifecycle
        .load_config_keys()
        .await
        .map_err(|e| e.to_string())?;
    Ok(lifecycle)
}

/// A builder on the config at `path` with every store in Redis at `url`.
#[cfg(feature = "redis")]
async fn redis_builder(
    path: &std::path::Path,
    url: &str,
    mut reporters: Vec<tollgate::usage::Reporter>,
) -> Result<
    (
        tollgate::gateway::GatewayBuilder,
        tollgate::redis::RedisConnection,
    ),
    String,
> {
    use tollgate::auth::sigv4::{CachingCredentialStore, Credential};
    use tollgate::clock::SystemClock;
    use tollgate::keys::CachingKeyStore;
    use tollgate::redis::{
        RedisConnection, RedisCounterStore, RedisCredentialStore, RedisKeyStore, RedisOptions,
        RedisRateStore, RedisUsageSink,
    };
    let config = tollgate::Config::from_path(path).map_err(|e| e.to_string())?;
    // `--redis-cluster A,B,C` arrives as `cluster:A,B,C`.
    let redis = match url.strip_prefix("cluster:") {
        Some(nodes) => {
            RedisConnection::connect_cluster(nodes.split(','), RedisOptions::namespace("petstore"))
                .await
                .map_err(|e| format!("--redis-cluster {}: {e}", redacted(nodes)))?
        }
        None => RedisConnection::connect(url, RedisOptions::namespace("petstore"))
            .await
            .map_err(|e| format!("--redis {}: {e}", redacted(url)))?,
    };
    let credentials = RedisCredentialStore::new(redis.clone());
    for c in &config.credentials {
        let principal = c
            .principal
            .clone()
            .unwrap_or_else(|| c.access_key_id.clone());
        let cred = Credential::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            principal,
        )
        .allow_cache_invalidation(c.can_invalidate_cache);
        credentials.put(&cred).await.map_err(|e| e.to_string())?;
    }
    let usage = Arc::new(RedisUsageSink::new(redis.clone()));
    reporters.push(tollgate::usage::Reporter::new(usage.clone()));
    let keys = CachingKeyStore::new(Arc::new(RedisKeyStore::new(redis.clone())), SystemClock)
        .resilient(true);
    let mut builder = Gateway::builder(config)
        .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
        .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
        .key_store(Arc::new(keys))
        .credential_store(Arc::new(CachingCredentialStore::new(
            Arc::new(credentials),
            SystemClock,
        )))
        .usage_records_from(usage);
    // Cached responses: each stage's memory cache in front of a Redis tier
    // every petstore on this Redis shares (invalidations reach them all).
    let tier = redis.clone();
    builder = builder.cache_tier(move |stage| {
        Arc::new(tollgate::redis::RedisCacheStore::new(tier.clone(), stage))
            as Arc<dyn tollgate::cache::CacheStore>
    });
    for r in reporters {
        builder = builder.reporter(r);
    }
    Ok((authorizers(builder), redis))
}

pub fn authorizers(
    builder: tollgate::gateway::GatewayBuilder,
) -> tollgate::gateway::GatewayBuilder {
    builder
        .authorizer("bearer", |req: AuthorizerRequest| async move {
            Ok(match req.identity("header.Authorization") {
                Some("Bearer letmein") => {
                    Verdict::allow("demo-user").with_context("tier", "bronze")
                }
                _ => Verdict::deny("anonymous"),
            })
        })
        // A Lambda proxy function in process (`integration: { type: lambda,
        // function: echo }`): it answers with the event it received.
        .lambda("echo", echo)
}

/// The `echo` Lambda function: API Gateway's event back, as JSON.
pub async fn echo(
    event: aws_lambda_events::apigw::ApiGatewayProxyRequest,
) -> Result<aws_lambda_events::apigw::ApiGatewayProxyResponse, serde_json::Error> {
    let mut res = aws_lambda_events::apigw::ApiGatewayProxyResponse::default();
    res.status_code = 200;
    res.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res.body = Some(aws_lambda_events::encodings::Body::Text(
        serde_json::to_string(&event)?,
    ));
    Ok(res)
}

/// Command-line options of the example.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub listen: SocketAddr,
    pub bare: bool,
    pub upstream: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    /// `--emf PATH`: CloudWatch Embedded Metric Format lines appended to
    /// PATH (`-` for stdout).
    pub emf: Option<PathBuf>,
    pub quiet: bool,
    /// `--redis URL`, or `--redis-cluster A,B,C` as `cluster:A,B,C`.
    pub redis: Option<String>,
    pub check: bool,
    pub watch: bool,
    /// `--openapi FILE`: an API Gateway export imported into the config.
    pub openapi: Option<PathBuf>,
    /// `--stage NAME`: the stage an imported API's methods go on.
    pub stage: Option<String>,
    /// `--export oas30|swagger`: print the stage as OpenAPI and exit.
    pub export: Option<tollgate::openapi::ExportType>,
    /// `--yaml`: `--export` writes YAML.
    pub yaml: bool,
    /// `--admin-listen ADDR`: serve the management API there.
    pub admin_listen: Option<SocketAddr>,
}

impl Options {
    pub const USAGE: &'static str = "usage: petstore [--config PATH] [--listen ADDR] [--bare] [--upstream URL]\n\
        \x20 --config PATH   gateway config (default examples/petstore.yaml)\n\
        \x20 --listen ADDR   address to listen on (default 127.0.0.1:8080)\n\
        \x20 --bare          serve the pet store with no gateway in front (for benchmarks)\n\
        \x20 --upstream URL  proxy to this base URL (the path after the stage appended,\n\
        \x20                 the query kept) instead of the in-memory store\n\
        \x20 --metrics-listen ADDR  serve Prometheus metrics at http://ADDR/metrics\n\
        \x20 --emf PATH      append CloudWatch Embedded Metric Format lines (API Gateway's\n\
        \x20                 metrics per stage, resource and method) to PATH; `-` is stdout\n\
        \x20 --admin-listen ADDR  serve API Gateway's management API (aws CLI, boto3 with\n\
        \x20                 --endpoint-url http://ADDR), signed with `management.credentials`\n\
        \x20 --quiet         no access log lines on stdout\n\
        \x20 --redis URL     keep limits, quotas, keys, credentials and usage in Redis\n\
        \x20                 (built with --features redis)\n\
        \x20 --redis-cluster URL,URL,...  the same on a Redis Cluster, found from these\n\
        \x20                 nodes (limits and quotas spread over its masters)\n\
        \x20 --check         validate the config (every problem with its path) and exit:\n\
        \x20                 0 when it is valid, 1 when it is not\n\
        \x20 --watch         re-read the config when it changes (and on SIGHUP): a changed\n\
        \x20                 definition becomes a new deployment; an invalid file is\n\
        \x20                 reported and the previous config keeps serving\n\
        \x20 --openapi FILE  import an API Gateway export (OpenAPI 3.0 or Swagger 2.0)\n\
        \x20                 into the config (its routes and methods replace the\n\
        \x20                 config's; keys, plans and stage variables stay); every\n\
        \x20                 part not honoured is printed with its path\n\
        \x20 --stage NAME    the stage the imported methods go on (default prod), and\n\
        \x20                 the stage --export writes\n\
        \x20 --export TYPE   print the stage as OpenAPI (`oas30` or `swagger`) with API\n\
        \x20                 Gateway's extensions, JSON (YAML with --yaml), and exit\n\
        \x20 --yaml          --export writes YAML";

    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut opts = Self {
            config: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/petstore.yaml"
            )),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            bare: false,
            upstream: None,
            metrics_listen: None,
            emf: None,
            quiet: false,
            redis: None,
            check: false,
            watch: false,
            openapi: None,
            stage: None,
            export: None,
            yaml: false,
            admin_listen: None,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--config" => opts.config = args.next().ok_or("--config needs a path")?.into(),
                "--listen" => {
                    let v = args.next().ok_or("--listen needs an address")?;
                    opts.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
                }
                "--bare" => opts.bare = true,
                "--upstream" => {
                    opts.upstream = Some(args.next().ok_or("--upstream needs a URL")?);
                }
                "--metrics-listen" => {
                    let v = args.next().ok_or("--metrics-listen needs an address")?;
                    opts.metrics_listen = Some(
                        v.parse()
                            .map_err(|e| format!("--metrics-listen {v}: {e}"))?,
                    );
                }
                "--admin-listen" => {
                    let v = args.next().ok_or("--admin-listen needs an address")?;
                    opts.admin_listen =
                        Some(v.parse().map_err(|e| format!("--admin-listen {v}: {e}"))?);
                }
                "--emf" => opts.emf = Some(args.next().ok_or("--emf needs a path")?.into()),
                "--quiet" => opts.quiet = true,
                "--check" => opts.check = true,
                "--watch" => opts.watch = true,
                "--redis" => opts.redis = Some(args.next().ok_or("--redis needs a URL")?),
                "--redis-cluster" => {
                    let nodes = args.next().ok_or("--redis-cluster needs URL,URL,...")?;
                    opts.redis = Some(format!("cluster:{nodes}"));
                }
                "--openapi" => {
                    opts.openapi = Some(args.next().ok_or("--openapi needs a file")?.into());
                }
                "--stage" => opts.stage = Some(args.next().ok_or("--stage needs a name")?),
                "--export" => {
                    opts.export = Some(match args.next().as_deref() {
                        Some("oas30") => tollgate::openapi::ExportType::Oas30,
                        Some("swagger") => tollgate::openapi::ExportType::Swagger,
                        _ => return Err("--export needs `oas30` or `swagger`".to_owned()),
                    });
                }
                "--yaml" => opts.yaml = true,
                "-h" | "--help" => return Err(Self::USAGE.to_owned()),
                other => return Err(format!("unknown argument `{other}`\n{}", Self::USAGE)),
            }
        }
        Ok(opts)
    }
}

/// How long a client may take to send a request's headers: 10 s, the
/// `header_timeout_ms` of the edge design.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes hyper buffers for a request line and its headers: 96
/// KiB, a quarter of hyper's default (about 400 KiB), so a slow client
/// holds less. It stays above hyper's 64 KiB URI limit, so an overlong URI
/// still gets its 414; a head larger than this gets 431 and the
/// connection closed (hyper checks between reads, so a head a read's worth
/// over may still be taken). Bodies stream past it.
pub const HEADER_BUF_LIMIT: usize = 96 << 10;

/// How long a shut-down server waits for the requests in flight to be
/// answered before it gives up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM (what `kill`, systemd
/// and container runtimes send): the pet store's signal to stop.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: call it before saying the server is ready, so that a
/// signal sent right after that finds them (instead of the default action,
/// which ends the process with nothing flushed).
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                () = wait_for(interrupt.as_mut()) => {}
                () = wait_for(terminate.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The next delivery of `signal`; never, when it could not be installed.
#[cfg(unix)]
async fn wait_for(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// `url` (or a comma-separated list of them) with any user and password
/// replaced by `***`, for messages: a Redis URL may carry its password.
pub fn redacted(urls: &str) -> String {
    urls.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Serves `svc` on `listener` until `shutdown` resolves. With
/// `client_addr`, each request carries the connection's peer address as a
/// [`ClientAddr`] (for per-client limits).
///
/// On `shutdown` it stops accepting, lets every request in flight finish
/// (each open connection closes once its current response is written, an
/// idle one at once) and returns when they have, or after
/// [`DRAIN_TIMEOUT`]. So when it returns, every response a client received
/// has been recorded for usage, and the caller can flush the reporters.
pub async fn serve<S>(
    listener: TcpListener,
    svc: S,
    client_addr: bool,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    tokio::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let svc = svc.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
                    if client_addr {
                        req.extensions_mut().insert(ClientAddr(peer));
                    }
                    req
                });
                let svc = TowerToHyperService::new(svc);
                // A client has HEADER_READ_TIMEOUT to send its headers
                // (hyper answers 408 and closes past it) and
                // HEADER_BUF_LIMIT bytes for them (431 past it); bodies
                // read whole are bounded by the gateway's body timeout
                // and `limits.max_body`.
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(HEADER_BUF_LIMIT)
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// Serves `gateway` on `listener` until `shutdown` resolves: in front of
/// the in-memory pet store, or, with `upstream` (`--upstream URL`), of an
/// HTTP integration to that URL. Every request carries its connection's
/// peer address as a [`ClientAddr`], whatever the logging: per-client
/// limits, the access log's client and the `X-Forwarded-For` an HTTP
/// integration appends all read it. `Err` when `upstream` is not a URL the
/// integration can serve.
pub async fn serve_gateway(
    listener: TcpListener,
    gateway: &Gateway,
    store: Arc<PetStore>,
    upstream: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    match upstream {
        Some(url) => {
            let integration = tollgate::integration::HttpIntegration::forward_to(url)
                .map_err(|e| format!("--upstream {url}: {e}"))?
                .responses(gateway.responses().clone());
            serve(listener, gateway.service(integration), true, shutdown).await;
        }
        None => serve(listener, gateway_service(gateway, store), true, shutdown).await,
    }
    Ok(())
}

/// Serves `lifecycle` (`--watch`) on `listener` until `shutdown`, as
/// [`serve_gateway`] serves a gateway.
pub async fn serve_lifecycle(
    listener: TcpListener,
    lifecycle: &tollgate::Lifecycle,
    responses: tollgate::GatewayResponses,
    store: Arc<PetStore>,
    upstream: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    match upstream {
        Some(url) => {
            let integration = tollgate::integration::HttpIntegration::forward_to(url)
                .map_err(|e| format!("--upstream {url}: {e}"))?
                .responses(responses);
            serve(listener, lifecycle.service(integration), true, shutdown).await;
        }
        None => {
            let inner = tower::service_fn(move |req: Request<Body>| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(store.handle(req, false).await) }
            });
            serve(listener, lifecycle.service(inner), true, shutdown).await;
        }
    }
    Ok(())
}

/// The pet store behind the gateway built from `config`.
pub fn gateway_service(
    gateway: &Gateway,
    store: Arc<PetStore>,
) -> tollgate::GatewayService<
    impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
> {
    gateway.service(tower::service_fn(move |req: Request<Body>| {
        let store = store.clone();
        async move { Ok::<_, Infallible>(store.handle(req, false).await) }
    }))
}

/// The pet store alone, routing `/{stage}/pets...` itself.
pub fn bare_service(
    store: Arc<PetStore>,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let store = store.clone();
        async move { Ok::<_, Infallible>(store.handle(req, true).await) }
    })
}
