//! Custom authorizers: verdicts cached by identity, TTL, deny, missing
//! sources, failures, context for the service, and a usage identifier key
//! that feeds a usage plan.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tollgate::auth::authorizer::{AuthorizerContext, AuthorizerRequest, Verdict};
use tollgate::clock::ManualClock;
use tollgate::gateway::Secret;
use tollgate::store::StoreError;
use tollgate::{Body, Config, Gateway};
use tower::{Service, service_fn};

const CONFIG: &str = r#"
routes: { /me: [GET], /plain: [GET] }
stages:
  prod:
    variables: { realm: zoo }
    settings: { authorization: authorizer, authorizer: bearer }
    methods: { /plain/GET: { authorization: none } }
authorizers:
  bearer: { identity_sources: [header.Authorization, stageVariables.realm], ttl: 60 }
"#;

fn whoami()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let who = req
            .extensions()
            .get::<AuthorizerContext>()
            .map(|c| {
                format!(
                    "{} {}",
                    c.principal_id,
                    c.context.get("tier").cloned().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "nobody".into());
        Ok::<_, Infallible>(Response::new(Body::from(who)))
    })
}

/// An authorizer that counts its calls: `Bearer <name>` allows `<name>`,
/// `Bearer deny` denies, `Bearer fail` fails.
fn counting(calls: Arc<AtomicUsize>) -> impl tollgate::auth::authorizer::Authorizer {
    move |req: AuthorizerRequest| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(req.identity("stageVariables.realm"), Some("zoo"));
            assert_eq!((req.stage.as_str(), req.method.as_str()), ("prod", "GET"));
            match req
                .identity("header.Authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
            {
                Some("fail") => Err(StoreError::unavailable("authorizer down")),
                Some("deny") | None => Ok(Verdict::deny("anonymous")),
                Some(name) => Ok(Verdict::allow(name).with_context("tier", "gold")),
            }
        }
    }
}

/// GETs `uri` with `Authorization: <auth>` if given: the status and the body.
async fn call(
    svc: &mut (impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send),
    uri: &str,
    auth: Option<&str>,
) -> (StatusCode, String) {
    support::get_text(svc, uri, auth.map(|a| ("authorization", a))).await
}

#[tokio::test]
async fn verdicts_are_cached_by_identity_until_the_ttl() {
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .authorizer("bearer", counting(calls.clone()))
        .build()
        .unwrap();
    let mut svc = gw.service(whoami());
    for _ in 0..5 {
        assert_eq!(
            call(&mut svc, "/prod/me", Some("Bearer alice")).await,
            (StatusCode::OK, "alice gold".into())
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one call for five requests with one identity"
    );
    assert_eq!(
        call(&mut svc, "/prod/me", Some("Bearer bob")).await.1,
        "bob gold"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_secs(61));
    call(&mut svc, "/prod/me", Some("Bearer alice")).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the TTL ran out");
}

#[tokio::test]
async fn deny_missing_sources_and_failures() {
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .authorizer("bearer", counting(calls.clone()))
        .build()
        .unwrap();
    let mut svc = gw.service(whoami());
    let (status, body) = call(&mut svc, "/prod/me", Some("Bearer deny")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::FORBIDDEN,
            r#"{"message":"User is not authorized to access this resource"}"#
        )
    );
    let before = calls.load(Ordering::SeqCst);
    let (status, body) = call(&mut svc, "/prod/me", None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "a missing source does not call the authorizer"
    );
    assert_eq!(
        call(&mut svc, "/prod/me", Some("")).await.0,
        StatusCode::UNAUTHORIZED,
        "an empty source counts as missing"
    );
    let (status, body) = call(&mut svc, "/prod/me", Some("Bearer fail")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.contains("authorizer down"), "no internals: {body}");
    // A method without the authorizer is not asked.
    assert_eq!(
        call(&mut svc, "/prod/plain", None).await,
        (StatusCode::OK, "nobody".into())
    );

    // Open fail mode admits when the authorizer fails.
    let open = CONFIG.replace("ttl: 60 }", "ttl: 0, fail_mode: open }");
    let gw = Gateway::builder(Config::from_yaml_str(&open).unwrap())
        .clock(clock)
        .authorizer("bearer", counting(calls.clone()))
        .build()
        .unwrap();
    let mut svc = gw.service(whoami());
    assert_eq!(
        call(&mut svc, "/prod/me", Some("Bearer fail")).await,
        (StatusCode::OK, "nobody".into())
    );
    // TTL 0: every request asks.
    let before = calls.load(Ordering::SeqCst);
    call(&mut svc, "/prod/me", Some("Bearer carol")).await;
    call(&mut svc, "/prod/me", Some("Bearer carol")).await;
    assert_eq!(calls.load(Ordering::SeqCst), before + 2);
}

#[tokio::test]
async fn a_usage_identifier_key_feeds_the_usage_plan() {
    let yaml = r#"
routes: { /me: [GET] }
stages:
  prod: { settings: { authorization: authorizer, authorizer: tokens, api_key_required: true } }
authorizers:
  tokens: { identity_sources: [querystring.token] }
api_key_options: { source: authorizer }
plans:
  small: { stages: [prod], quota: { limit: 2, period: day } }
keys:
  - { name: tenant-a, value: tenant-a-key-0123456789abc, plans: [small] }
"#;
    let gw = Gateway::builder(Config::from_yaml_str(yaml).unwrap())
        .clock(ManualClock::at_unix_secs(1_800_000_000))
        .authorizer("tokens", |req: AuthorizerRequest| async move {
            Ok(match req.identity("querystring.token") {
                Some("t-a") => Verdict::allow("tenant-a")
                    .with_usage_identifier_key(Secret::new("tenant-a-key-0123456789abc")),
                Some("t-nokey") => Verdict::allow("stranger"),
                _ => Verdict::deny("nobody"),
            })
        })
        .build()
        .unwrap();
    let mut svc = gw.service(whoami());
    assert_eq!(
        call(&mut svc, "/prod/me?token=t-a", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&mut svc, "/prod/me?token=t-a", None).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&mut svc, "/prod/me?token=t-a", None).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"message":"Limit Exceeded"}"#
        )
    );
    // Allowed, but with no key to meter: the API key layer refuses.
    assert_eq!(
        call(&mut svc, "/prod/me?token=t-nokey", None).await.0,
        StatusCode::FORBIDDEN
    );
}
