//! API Gateway's own management API (REST API `apigateway` 2015-07-09),
//! served by tollgate: the aws CLI, boto3 and anything else built on AWS's
//! service model manage a [`Lifecycle`] with `--endpoint-url`.
//!
//! [`Lifecycle::management`] returns a tower service; mount it on a
//! listener of its own (the petstore's `--admin-listen ADDR`). Every call
//! is SigV4-verified (service `apigateway`, the section's region) against
//! the config's `management.credentials`; the wire format (paths, query
//! bindings, JSON shapes, status codes, error types) is AWS's service
//! model, so botocore parses every answer without a custom handler.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::{Body, Config, Gateway};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lifecycle = Gateway::builder(Config::from_yaml_str(r#"
//! name: petstore
//! routes: { /pets: [GET] }
//! stages: { prod: {} }
//! management:
//!   credentials:
//!     - { access_key_id: AKIDADMIN, secret_access_key: admin-secret-example }
//! "#)?).build_lifecycle()?;
//! let management = lifecycle.management();
//!
//! // Unsigned: refused as AWS refuses it.
//! let res = management.clone().oneshot(Request::get("/restapis").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(res.headers()["x-amzn-errortype"], "MissingAuthenticationTokenException");
//! # Ok(()) }
//! ```
//!
//! # Operations
//!
//! | group | operations |
//! |---|---|
//! | APIs | CreateRestApi (`cloneFrom`), ImportRestApi, PutRestApi (`mode` merge or overwrite, `failonwarnings`, `basepath`), GetRestApi(s), UpdateRestApi (`/name`, `/description`), DeleteRestApi, GetResource(s), GetMethod, GetIntegration |
//! | deployments | CreateDeployment (`stageName`, `stageDescription`, `description`, `variables`, `canarySettings`), GetDeployment(s), DeleteDeployment |
//! | stages | CreateStage, GetStage(s), UpdateStage, DeleteStage, FlushStageCache, FlushStageAuthorizersCache |
//! | export | GetExport (`oas30`, `swagger`; `Accept: application/yaml` for YAML; `extensions=integrations`, `apigateway` or `authorizers` for the `x-amazon-apigateway-*` extensions) |
//! | keys | CreateApiKey, GetApiKey(s) (`nameQuery`), UpdateApiKey (`/name`, `/description`, `/enabled`), DeleteApiKey, ImportApiKeys (CSV) |
//! | plans | CreateUsagePlan, GetUsagePlan(s) (`keyId`), UpdateUsagePlan, DeleteUsagePlan, CreateUsagePlanKey, GetUsagePlanKey(s), DeleteUsagePlanKey, GetUsage, UpdateUsage (`replace /remaining`) |
//! | gateway responses | GetGatewayResponse(s), PutGatewayResponse, DeleteGatewayResponse: the API's `responses` (served from its next deployment); a type tollgate does not answer (`WAF_FILTERED`, ...) is `NotFoundException` |
//! | domains | CreateDomainName, GetDomainName(s), DeleteDomainName, CreateBasePathMapping, GetBasePathMapping(s), DeleteBasePathMapping |
//!
//! UpdateStage takes API Gateway's patch paths: `/deploymentId` (a
//! rollback), `/description`, `/variables/NAME` (replace, remove), the
//! promotion `copy`s (from `/canarySettings/deploymentId` to
//! `/deploymentId`, from `/canarySettings/stageVariableOverrides` to
//! `/variables`), `/canarySettings/percentTraffic`,
//! `/canarySettings/deploymentId`, `/canarySettings/useStageCache`,
//! `/canarySettings/stageVariableOverrides/NAME`, remove `/canarySettings`,
//! `/{resource}/{method}/throttling/rateLimit|burstLimit` and
//! `/{resource}/{method}/caching/enabled|ttlInSeconds` (resource paths
//! escaped, `/` as `~1`; `*/*` for the whole stage) and
//! `/cacheClusterEnabled`. Any other path is refused whole (400).
//!
//! Errors are API Gateway's: the status, `x-amzn-ErrorType`
//! (`NotFoundException`, `BadRequestException`, `ConflictException`, ...)
//! and `{"message": "..."}`. An unsigned call gets 403
//! `MissingAuthenticationTokenException`; a malformed signature
//! `IncompleteSignatureException` or `InvalidSignatureException`; an
//! unknown access key id `UnrecognizedClientException`; a wrong secret
//! `InvalidSignatureException`.
//!
//! # Where tollgate differs
//!
//! - **Ids.** An API's id is the lifecycle's (a config's API is its
//!   name in lower case); a usage plan's id is its name; an API key's is the
//!   key store's.
//! - **Key values.** A key's value is answered once, by CreateApiKey: keys
//!   are kept as digests, so GetApiKey's `includeValue` has no value to add.
//! - **Method settings of an imported document** (integrations,
//!   validators, ...) become the definition's API-level `methods`: a
//!   deployment snapshots them with the routes, so a rollback serves the
//!   old integrations too. A stage's own `methods` still override them.
//! - **Renaming an API** (UpdateRestApi `/name`) names its next
//!   deployment; a stage keeps serving its deployment under the old name
//!   (buckets and metrics are named by it), and no other API may take a
//!   name a deployment still has.
//! - **Methods the wrapped service answers** have no integration:
//!   GetMethod shows no `methodIntegration` and GetIntegration answers
//!   `NotFoundException`. Integrations read back are the OpenAPI export's
//!   `x-amazon-apigateway-integration` in the model's shape.
//! - **Gateway response types** are tollgate's: GetGatewayResponses lists
//!   every kind tollgate answers, its own included (`METHOD_NOT_ALLOWED`,
//!   `BACKEND_UNAVAILABLE`, `REQUEST_TIMEOUT`, ...), and API Gateway's
//!   `AUTHORIZER_FAILURE` and `WAF_FILTERED`, which it never answers, are
//!   `NotFoundException`. A config header given as plain text shows as
//!   the quoted literal it is (`'no-store'`).
//! - **Every answer** carries `x-amzn-RequestId`, as API Gateway's do.
//! - **The cache cluster** is in process: `cacheClusterEnabled` is whether
//!   any method caches; setting it to `false` turns the stage's caching
//!   off.
//!
//! # The usage page
//!
//! `GET /` answers an HTML page (no script, no external fetch) with, per
//! API and stage, requests, 4xx, 5xx, 429s by limit, the cache hit ratio
//! and p50/p99 latency (from a [`UsageBoard`] given to
//! [`Management::usage_board`], counting this process since it started),
//! and per key its plans, quota used and remaining, requests and when it
//! was last seen. A browser cannot sign SigV4, so the page takes HTTP Basic
//! authentication with a management credential: the access key id as the
//! user name, the secret access key as the password (compared in constant
//! time); anything else gets 401 with the Basic challenge. Serve the
//! listener over TLS, or on loopback only, since Basic sends the secret.
//!
//! # Audit
//!
//! Every change (every signed call but a `GET`, refused ones too; a call
//! refused on its signature changes nothing and is not recorded) is one
//! [`ChangeRecord`](crate::usage::ChangeRecord) notice to the usage sinks
//! of the lifecycle ([`UsageSink::notify`](crate::usage::UsageSink::notify);
//! the [`UsageBoard`] shows the latest on the usage page), and one log line
//! (target `tollgate::audit`, level info): who (principal and access key
//! id), what (method, path, status), when. No body goes either way, so no
//! key value or secret.

mod board;
mod config;
mod error;
mod ops;
mod page;
mod patch;
mod wire;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

pub use self::board::{KeySeen, StageFigures, UsageBoard};
pub use self::config::{DEFAULT_MAX_BODY, ManagementConfig};
use self::error::ApiError;
use crate::Body;
use crate::auth::sigv4::{
    Credential, CredentialStore, InMemoryCredentialStore, Verifier, VerifierSettings,
};
use crate::gateway::Lifecycle;

/// The management API as a tower service: see the [module docs](self).
///
/// Cloning is a pointer copy. The service reads each request's body whole
/// (at most `management.max_body`, 10 MiB by default, within 10 s), so
/// its signature can be checked, then answers; it never fails (`Error =
/// Infallible`).
#[derive(Clone)]
pub struct Management {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("lifecycle", &self.inner.lifecycle)
            .field("verifier", &self.inner.verifier)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) lifecycle: Lifecycle,
    verifier: Verifier,
    /// The callers, for the usage page's Basic login.
    pub(crate) credentials: Arc<dyn CredentialStore>,
    /// The usage page's traffic figures, when attached.
    pub(crate) board: std::sync::OnceLock<UsageBoard>,
    max_body: usize,
}

impl Inner {
    /// The one API's id while there is one (plans then name bare stages).
    pub(crate) fn only_api(&self) -> Option<String> {
        match self.lifecycle.apis().as_slice() {
            [only] => Some(only.id.clone()),
            _ => None,
        }
    }
}

impl Management {
    /// The management API of `lifecycle`, checking signatures against
    /// the config's `management` section (none: every call refused).
    pub fn new(lifecycle: Lifecycle) -> Self {
        let config = lifecycle.config().management.clone().unwrap_or_default();
        let store = InMemoryCredentialStore::new();
        for c in &config.credentials {
            let principal = c
                .principal
                .clone()
                .unwrap_or_else(|| c.access_key_id.clone());
            store.insert(Credential::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                principal,
            ));
        }
        Self::with_credentials(lifecycle, &config, Arc::new(store))
    }

    /// The management API of `lifecycle`, checking signatures against
    /// `store` (an IAM-like store of your own) with `config`'s region and
    /// body limit; `config.credentials` is not read.
    pub fn with_credentials(
        lifecycle: Lifecycle,
        config: &ManagementConfig,
        store: Arc<dyn CredentialStore>,
    ) -> Self {
        let settings = VerifierSettings::new(config.region.clone(), "apigateway");
        let verifier = Verifier::new(settings, store.clone(), lifecycle.clock().clone());
        Self {
            inner: Arc::new(Inner {
                lifecycle,
                verifier,
                credentials: store,
                board: std::sync::OnceLock::new(),
                max_body: config.max_body(),
            }),
        }
    }

    /// Shows `board`'s traffic figures on the usage page. Register the same
    /// board as a usage sink of the lifecycle (`Reporter::new`) so it sees
    /// the requests. The first board given stays.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tollgate::management::UsageBoard;
    /// use tollgate::usage::Reporter;
    /// use tollgate::{Config, Gateway};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // The reporter spawns its task, so it starts inside a Tokio runtime.
    /// let board = UsageBoard::new();
    /// let lifecycle = Gateway::builder(Config::from_yaml_str(
    ///     "routes: { /pets: [GET] }\nstages: { prod: {} }\n",
    /// )?)
    /// .reporter(Reporter::new(Arc::new(board.clone())))
    /// .build_lifecycle()?;
    /// let management = lifecycle.management().usage_board(board);
    /// # let _ = management; Ok(()) }
    /// ```
    pub fn usage_board(self, board: UsageBoard) -> Self {
        let _ = self.inner.board.set(board);
        self
    }
}

/// Percent-decodes one path segment or query part; `None` for invalid
/// UTF-8.
fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The time a body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

async fn handle<B>(inner: Arc<Inner>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (parts, body) = req.into_parts();
    // The usage page: a browser's Basic login, not SigV4.
    if parts.method == http::Method::GET && parts.uri.path() == "/" {
        return match page::login(&inner, &parts.headers).await {
            Some(principal) => page::render(&inner, &principal).await,
            None => page::challenge(),
        };
    }
    // Refused on its headers (unsigned, malformed, unknown access key,
    // stale) before a byte of the body is read: no credential, no memory.
    let prepared = match inner
        .verifier
        .prepare(parts.method.as_str(), &parts.uri, &parts.headers)
        .await
    {
        Ok(p) => p,
        Err(refusal) => return ApiError::from_refusal(&refusal).into_response(),
    };
    let limits = crate::body::BodyLimits {
        max: inner.max_body,
        timeout: Some(BODY_TIMEOUT),
    };
    let body = match crate::body::read_bounded(body, limits).await {
        Ok(b) => b,
        Err(crate::body::ReadError::TooLarge) => {
            return ApiError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequestException",
                format!("The request body is over {} bytes", inner.max_body),
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::bad_request("The request body could not be read").into_response();
        }
    };
    let identity = match inner.verifier.finish(
        prepared,
        parts.method.as_str(),
        &parts.uri,
        &parts.headers,
        &body,
    ) {
        Ok(id) => id,
        Err(refusal) => return ApiError::from_refusal(&refusal).into_response(),
    };
    let Some(segments) = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect::<Option<Vec<String>>>()
    else {
        return ApiError::not_found("Invalid request path").into_response();
    };
    let mut query = HashMap::new();
    for pair in parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (decode(k), decode(v)) {
            query.insert(k, v);
        }
    }
    let call = ops::Call {
        method: &parts.method,
        segments,
        query,
        accept: parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
        body,
    };
    let res = match ops::dispatch(&inner, &call).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    if parts.method != http::Method::GET {
        let now = crate::clock::Clock::unix_nanos(&**inner.lifecycle.clock());
        inner.lifecycle.notify(&crate::usage::Notice::Change(
            crate::usage::ChangeRecord::new(
                now,
                identity.principal.clone(),
                identity.access_key_id.clone(),
                parts.method.as_str(),
                parts.uri.path(),
                res.status().as_u16(),
            ),
        ));
        tracing::info!(
            target: "tollgate::audit",
            principal = %identity.principal,
            access_key_id = %identity.access_key_id,
            method = %parts.method,
            path = %parts.uri.path(),
            status = res.status().as_u16(),
            time_unix_nanos = now,
            "management change",
        );
    }
    res
}

impl<B> tower::Service<Request<B>> for Management
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut res = handle(inner, req).await;
            // As API Gateway's: botocore reads it into `ResponseMetadata`.
            if let Ok(id) = http::HeaderValue::from_str(&crate::RequestId::new().to_string()) {
                res.headers_mut().insert("x-amzn-requestid", id);
            }
            Ok(res)
        })
    }
}
