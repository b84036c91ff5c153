//! Custom authorizers, like API Gateway's Lambda authorizers: your code
//! decides, tollgate caches the verdict.
//!
//! An [`Authorizer`] receives the request's identity sources (the headers,
//! query parameters and stage variables its config names) and returns a
//! [`Verdict`]: allow or deny, a principal id, a map of context values for
//! the inner service, and optionally a usage identifier key (API Gateway's
//! `usageIdentifierKey`) that the API key layer then uses as the caller's key.
//!
//! Behind a [`Gateway`](crate::Gateway), methods with
//! `authorization: authorizer` and `authorizer: NAME` are checked:
//!
//! | case | answer |
//! |---|---|
//! | an identity source missing or empty | 401 `UNAUTHORIZED`, the authorizer is not called |
//! | deny | 403 `ACCESS_DENIED` |
//! | deny with a [`Refusal`] ([`Verdict::refuse`]) | the refusal's gateway response and message |
//! | allow | the request goes on with an [`AuthorizerContext`] in its extensions |
//! | the authorizer fails | `fail_mode`: `closed` (default) 503, `open` admits without a context |
//!
//! Verdicts are cached per authorizer and identity-source values for `ttl`
//! seconds (default 300, at most 3600, 0 off); each request a cached allow
//! lets through is told to [`Authorizer::cached`]. An authorizer with a
//! `threescale` section is 3scale's, built by the gateway
//! ([`threescale`](crate::threescale)).
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
//! use tollgate::{Body, Config, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_yaml_str(r#"
//! routes: { /me: [GET] }
//! stages: { prod: { settings: { authorization: authorizer, authorizer: bearer } } }
//! authorizers: { bearer: { identity_sources: [header.Authorization], ttl: 60 } }
//! "#)?;
//! let gateway = Gateway::builder(config)
//!     .authorizer("bearer", |req: AuthorizerRequest| async move {
//!         Ok(match req.identity("header.Authorization") {
//!             Some("Bearer letmein") => Verdict::allow("user-1"),
//!             _ => Verdict::deny("anonymous"),
//!         })
//!     })
//!     .build()?;
//! let svc = gateway.service(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//! }));
//! let ok = svc.clone().oneshot(Request::get("/prod/me").header("authorization", "Bearer letmein").body(Body::empty())?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! let denied = svc.clone().oneshot(Request::get("/prod/me").header("authorization", "Bearer nope").body(Body::empty())?).await?;
//! assert_eq!(denied.status(), StatusCode::FORBIDDEN);
//! let missing = svc.oneshot(Request::get("/prod/me").body(Body::empty())?).await?;
//! assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! # Settings
//!
//! The root section `authorizers`, by name. A method uses one with
//! `authorization: authorizer` and `authorizer: NAME` (see
//! [`auth`](crate::auth)); its code is registered under the same name with
//! [`GatewayBuilder::authorizer`](crate::GatewayBuilder::authorizer).
//!
//! ```yaml
//! authorizers:
//!   bearer:
//!     identity_sources: [header.Authorization, stageVariables.realm]
//!     ttl: 60              # seconds; 0 calls the authorizer on every request
//!     fail_mode: closed    # the default
//! ```
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `identity_sources` | | required | at least one of `header.NAME`, `querystring.NAME`, `stageVariables.NAME`; their values together are the cache key |
//! | `ttl` | seconds | `300` | 0 to 3600, API Gateway's default and maximum ([`configure-api-gateway-lambda-authorization-with-console`](https://docs.aws.amazon.com/apigateway/latest/developerguide/configure-api-gateway-lambda-authorization-with-console.html)); 0 turns caching off |
//! | `fail_mode` | | `closed` | `open` or `closed` |
//!
//! # Failure modes
//!
//! The table above says what a client gets. An authorizer fails when it returns
//! an error ([`StoreError`]); failures are counted in
//! [`AuthorizerLayer::failures`] and are not cached, allow and deny verdicts
//! are. A failure, failing closed, is `AUTHORIZER_CONFIGURATION_ERROR`: under
//! `responses_profile: http` (the default) answered 503 `BACKEND_UNAVAILABLE`,
//! under `aws` 500 `{"message":null}` with `x-amzn-ErrorType:
//! AuthorizerConfigurationException`, as API Gateway answers
//! ([`supported-gateway-response-types`](https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)). Config mistakes are refused when
//! the config is read or built:
//!
//! ```text
//! authorizers.a.ttl: must be <= 3600 seconds (got 5000)
//! authorizers.b.identity_sources[0]: `cookie.x` is not an identity source (header.NAME, querystring.NAME, stageVariables.NAME)
//! authorizers.bearer: no implementation is registered for it (GatewayBuilder::authorizer)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::auth::Authorization;
use crate::body::{Body, BoxError};
use crate::clock::Clock;
use crate::context::{RequestContext, RequestHead, UsageIdentifierKey};
use crate::gate::{self, Finish, GateFuture};
use crate::response::{GatewayResponseKind, GatewayResponses};
use crate::secret::Secret;
use crate::store::{FailMode, StoreError};
use crate::ttl_cache::TtlCache;

/// What an authorizer is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizerRequest {
    /// Identity source (as configured, e.g. `header.Authorization`) to value.
    pub identity: BTreeMap<String, String>,
    /// The stage called.
    pub stage: String,
    /// The resource template called (`/pets/{petId}`).
    pub resource: String,
    /// The method (`GET`, or `ANY` for an ANY method).
    pub method: String,
}

impl AuthorizerRequest {
    /// The value of one identity source.
    pub fn identity(&self, source: &str) -> Option<&str> {
        self.identity.get(source).map(String::as_str)
    }
}

/// What an authorizer decides.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// Whether the call may go on.
    pub allow: bool,
    /// Who the caller is.
    pub principal_id: String,
    /// Values passed to the inner service in the [`AuthorizerContext`].
    pub context: BTreeMap<String, String>,
    /// The API key to meter the caller with (API Gateway's `usageIdentifierKey`).
    pub usage_identifier_key: Option<Secret>,
    /// How a deny is answered: `None` is 403 `ACCESS_DENIED`, as API
    /// Gateway answers an authorizer's `Deny`. See [`Verdict::refuse`].
    pub refusal: Option<Refusal>,
}

/// A deny answered with another gateway response than `ACCESS_DENIED`:
/// an authorizer that knows the key is unknown, or that the caller is over
/// a limit kept elsewhere (3scale's, say), answers as API Gateway's own key
/// and limit checks do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The gateway response (its status, headers and template apply).
    pub kind: GatewayResponseKind,
    /// The message instead of the kind's default, unless the config
    /// overrides the kind's message. At most 256 characters are used;
    /// control, formatting and separator characters are dropped.
    pub message: Option<String>,
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verdict")
            .field("allow", &self.allow)
            .field("principal_id", &self.principal_id)
            .field("context", &self.context)
            .field("usage_identifier_key", &self.usage_identifier_key)
            .field("refusal", &self.refusal)
            .finish()
    }
}

impl Verdict {
    /// Allow `principal_id`.
    pub fn allow(principal_id: impl Into<String>) -> Self {
        Self {
            allow: true,
            principal_id: principal_id.into(),
            context: BTreeMap::new(),
            usage_identifier_key: None,
            refusal: None,
        }
    }

    /// Deny `principal_id`.
    pub fn deny(principal_id: impl Into<String>) -> Self {
        Self {
            allow: false,
            ..Self::allow(principal_id)
        }
    }

    /// Deny `principal_id`, answered with the gateway response `kind`
    /// (`INVALID_API_KEY`, `QUOTA_EXCEEDED`, ...) and, if given, `message`
    /// instead of its default one.
    pub fn refuse(
        principal_id: impl Into<String>,
        kind: GatewayResponseKind,
        message: Option<String>,
    ) -> Self {
        Self {
            refusal: Some(Refusal { kind, message }),
            ..Self::deny(principal_id)
        }
    }

    /// With a context value for the inner service.
    pub fn with_context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.insert(key.into(), value.into());
        self
    }

    /// With the API key to meter the caller with.
    pub fn with_usage_identifier_key(mut self, key: Secret) -> Self {
        self.usage_identifier_key = Some(key);
        self
    }
}

/// Decides whether a request may go on.
///
/// An async closure is one; a type of your own implements it with the
/// `async_trait` attribute (add `async-trait = "0.1"` to your dependencies):
///
/// ```
/// use std::collections::HashSet;
/// use tollgate::auth::authorizer::{Authorizer, AuthorizerRequest, Verdict};
/// use tollgate::store::StoreError;
///
/// /// Bearer tokens known in advance, each naming its user.
/// struct Tokens(HashSet<String>);
///
/// #[async_trait::async_trait]
/// impl Authorizer for Tokens {
///     async fn authorize(&self, request: AuthorizerRequest) -> Result<Verdict, StoreError> {
///         let token = request
///             .identity("header.Authorization")
///             .and_then(|v| v.strip_prefix("Bearer "));
///         Ok(match token {
///             Some(t) if self.0.contains(t) => Verdict::allow(t).with_context("plan", "gold"),
///             _ => Verdict::deny("anonymous"),
///         })
///     }
/// }
///
/// let config = tollgate::Config::from_yaml_str(r#"
/// routes: { /pets: [GET] }
/// stages: { prod: { settings: { authorization: authorizer, authorizer: tokens } } }
/// authorizers: { tokens: { identity_sources: [header.Authorization] } }
/// "#)?;
/// let gateway = tollgate::Gateway::builder(config)
///     .authorizer("tokens", Tokens(HashSet::from(["t0k3n".to_owned()])))
///     .build()?;
/// # let _ = gateway;
/// # Ok::<(), tollgate::ConfigError>(())
/// ```
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// The verdict for `request`. An error follows the authorizer's fail mode.
    async fn authorize(&self, request: AuthorizerRequest) -> Result<Verdict, StoreError>;

    /// Told of each request that an allowing verdict from the cache let
    /// through, without a call to [`authorize`](Self::authorize) (also a
    /// request that waited on another's call for the same identity). The
    /// default does nothing; an authorizer that meters calls, as 3scale's
    /// `authrep` does, counts them here so caching loses no count. Called
    /// on the request path: it must not block.
    fn cached(&self, request: &AuthorizerRequest, verdict: &Verdict) {
        let _ = (request, verdict);
    }

    /// Told of each request `fail_mode: open` let through after a call to
    /// [`authorize`](Self::authorize) failed. The default does nothing; a
    /// metering authorizer counts it here, as [`cached`](Self::cached)
    /// does, so calls admitted while its backend is down are reported when
    /// it is back.
    fn failed_open(&self, request: &AuthorizerRequest) {
        let _ = request;
    }

    /// Delivers whatever the authorizer holds back (counts of
    /// [`cached`](Self::cached) requests not yet reported);
    /// [`Gateway::shutdown_reporters`](crate::Gateway::shutdown_reporters)
    /// calls it. The default does nothing.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl<F, Fut> Authorizer for F
where
    F: Fn(AuthorizerRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Verdict, StoreError>> + Send,
{
    async fn authorize(&self, request: AuthorizerRequest) -> Result<Verdict, StoreError> {
        self(request).await
    }
}

/// What an allowed request carries in its request and response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizerContext {
    /// Who the authorizer said the caller is.
    pub principal_id: String,
    /// The authorizer's context values.
    pub context: BTreeMap<String, String>,
}

/// One configured authorizer, ready to run.
pub(crate) struct Configured {
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) sources: Vec<String>,
    pub(crate) cache: Option<TtlCache<String, Arc<Verdict>>>,
    pub(crate) fail_mode: FailMode,
    /// Verdicts are cached per identity and method (3scale's depend on the
    /// method's metric), not per identity alone.
    pub(crate) per_method: bool,
}

impl Configured {
    pub(crate) fn new(
        authorizer: Arc<dyn Authorizer>,
        sources: Vec<String>,
        ttl: Duration,
        fail_mode: FailMode,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // A missing verdict is never cached: a negative TTL of zero.
        let cache = (!ttl.is_zero()).then(|| TtlCache::new(clock, 100_000, ttl, Duration::ZERO));
        Self {
            authorizer,
            sources,
            cache,
            fail_mode,
            per_method: false,
        }
    }
}

/// Runs a gateway's custom authorizers; see the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct AuthorizerLayer {
    shared: Arc<Shared>,
}

struct Shared {
    authorizers: HashMap<Arc<str>, Configured>,
    responses: GatewayResponses,
    failures: AtomicU64,
}

impl fmt::Debug for AuthorizerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.shared.authorizers.keys().map(|k| &**k).collect();
        names.sort_unstable();
        f.debug_struct("AuthorizerLayer")
            .field("authorizers", &names)
            .finish_non_exhaustive()
    }
}

impl AuthorizerLayer {
    pub(crate) fn new(
        authorizers: HashMap<Arc<str>, Configured>,
        responses: GatewayResponses,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                authorizers,
                responses,
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// How many authorizer calls failed.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Calls every authorizer's [`Authorizer::flush`]; a failure is logged
    /// (`tollgate::auth`, warn) and the others still run.
    pub async fn flush(&self) {
        for (name, c) in &self.shared.authorizers {
            if let Err(e) = c.authorizer.flush().await {
                tracing::warn!(error = %e, authorizer = &**name, "authorizer flush failed");
            }
        }
    }
}

impl<S> Layer<S> for AuthorizerLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The authorizer middleware.
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Authorize<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Finish for AuthorizerContext {
    fn finish(self, res: &mut Response<Body>) {
        res.extensions_mut().insert(self);
    }
}

crate::gate::response_future! {
    /// Response future of [`Authorize`].
    Option<AuthorizerContext>
}

type Decision = gate::Decision<Option<AuthorizerContext>>;

/// The value of an identity source, if present and not empty.
fn source_value(head: RequestHead<'_>, source: &str) -> Option<String> {
    let (kind, name) = source.split_once('.')?;
    let value = match kind {
        "header" => head.headers.get(name)?.to_str().ok()?.to_owned(),
        "querystring" => head.uri.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })?,
        "stageVariables" => head
            .extensions
            .get::<RequestContext>()?
            .endpoint()
            .stage_variable(name)?
            .to_owned(),
        _ => return None,
    };
    (!value.is_empty()).then_some(value)
}

impl Shared {
    fn refuse(&self, kind: GatewayResponseKind) -> Decision {
        tracing::debug!(
            layer = "authorizer",
            decision = "reject",
            kind = kind.as_str(),
            "authorizer refused"
        );
        gate::Decision::Reject(Box::new(self.responses.respond(kind)))
    }

    /// An authorizer's own refusal: its kind, its message cleaned and
    /// bounded.
    fn refuse_as(&self, refusal: &Refusal) -> Decision {
        let Some(message) = &refusal.message else {
            return self.refuse(refusal.kind);
        };
        tracing::debug!(
            layer = "authorizer",
            decision = "reject",
            kind = refusal.kind.as_str(),
            "authorizer refused"
        );
        // No control, formatting or separator characters (a direction
        // override, a line separator): the message is shown to a client.
        let clean: String = message
            .chars()
            .filter(|c| {
                !c.is_control()
                    && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
            })
            .take(256)
            .collect();
        gate::Decision::Reject(Box::new(
            self.responses.respond_with_message(refusal.kind, &clean),
        ))
    }

    async fn decide(&self, name: &str, mut req: Request<Body>) -> (Decision, Request<Body>) {
        let Some(configured) = self.authorizers.get(name) else {
            // Validation and the builder make sure every named authorizer exists.
            return (self.refuse(GatewayResponseKind::Unauthorized), req);
        };
        let head = RequestHead::of(&req);
        let mut identity = BTreeMap::new();
        for source in &configured.sources {
            match source_value(head, source) {
                Some(v) => {
                    identity.insert(source.clone(), v);
                }
                None => return (self.refuse(GatewayResponseKind::Unauthorized), req),
            }
        }
        let endpoint = head
            .extensions
            .get::<RequestContext>()
            .map(|c| c.endpoint().clone());
        let request = AuthorizerRequest {
            stage: endpoint
                .as_ref()
                .map(|e| e.stage().to_owned())
                .unwrap_or_default(),
            resource: endpoint
                .as_ref()
                .map(|e| e.resource().to_owned())
                .unwrap_or_default(),
            method: endpoint
                .as_ref()
                .map(|e| e.method_name().to_owned())
                .unwrap_or_default(),
            identity,
        };
        // The request, kept when a failure may still admit it (an authorizer
        // that meters calls is told of those too).
        let mut kept = None;
        let verdict = match &configured.cache {
            Some(cache) => {
                let mut key = String::new();
                for v in request.identity.values() {
                    key.push_str(v);
                    key.push('\u{0}');
                }
                if configured.per_method {
                    key.push_str(&request.resource);
                    key.push('\u{0}');
                    key.push_str(&request.method);
                }
                let called = std::sync::atomic::AtomicBool::new(false);
                let call = async {
                    called.store(true, Ordering::Relaxed);
                    configured
                        .authorizer
                        .authorize(request.clone())
                        .await
                        .map(|v| Some(Arc::new(v)))
                };
                let verdict = cache
                    .get_or_fetch(key, call)
                    .await
                    .and_then(|v| v.ok_or_else(|| StoreError::unavailable("no verdict")));
                if let Ok(v) = &verdict
                    && v.allow
                    && !called.load(Ordering::Relaxed)
                {
                    configured.authorizer.cached(&request, v);
                }
                kept = Some(request);
                verdict
            }
            None if configured.fail_mode == FailMode::Open => {
                let verdict = configured
                    .authorizer
                    .authorize(request.clone())
                    .await
                    .map(Arc::new);
                kept = Some(request);
                verdict
            }
            None => configured.authorizer.authorize(request).await.map(Arc::new),
        };
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, authorizer = name, "authorizer failed");
                return match configured.fail_mode {
                    FailMode::Closed => (
                        self.refuse(GatewayResponseKind::AuthorizerConfigurationError),
                        req,
                    ),
                    _ => {
                        if let Some(request) = &kept {
                            configured.authorizer.failed_open(request);
                        }
                        (gate::Decision::Admit(None), req)
                    }
                };
            }
        };
        if !verdict.allow {
            return match &verdict.refusal {
                None => (self.refuse(GatewayResponseKind::AccessDenied), req),
                Some(r) => (self.refuse_as(r), req),
            };
        }
        let context = AuthorizerContext {
            principal_id: verdict.principal_id.clone(),
            context: verdict.context.clone(),
        };
        req.extensions_mut().insert(context.clone());
        if let Some(key) = &verdict.usage_identifier_key {
            req.extensions_mut().insert(UsageIdentifierKey(key.clone()));
        }
        (gate::Decision::Admit(Some(context)), req)
    }
}

impl<S, ResB> Service<Request<Body>> for Authorize<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, Body>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let name = req.extensions().get::<RequestContext>().and_then(|c| {
            let s = c.endpoint().settings();
            (s.authorization == Authorization::Authorizer)
                .then(|| s.authorizer.clone())
                .flatten()
        });
        let Some(name) = name else {
            return ResponseFuture::new(GateFuture::now(
                gate::Decision::Admit(None),
                &mut self.inner,
                req,
            ));
        };
        let shared = self.shared.clone();
        let pending: gate::Pending<Body, Option<AuthorizerContext>> =
            Box::pin(async move { shared.decide(&name, req).await });
        ResponseFuture::new(GateFuture::wait(pending, &mut self.inner))
    }
}
