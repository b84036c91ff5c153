//! The lifecycle through its Rust API: every operation and refusal,
//! rollback, canaries (split, stickiness, promotion keeping quota), custom
//! domains over several APIs, and hot swaps under load on real TCP.

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use tollgate::gateway::{
    BasePathMapping, CanarySettings, DeploymentInput, LifecycleErrorKind, StageChange, Sticky,
};
use tollgate::usage::{Reporter, SinkError, UsageEvent, UsageSink};
use tollgate::{Body, Config, Gateway, Lifecycle, RequestContext};
use tower::{Service, ServiceExt};

const V1: &str = r#"
name: petstore
routes: { /pets: [GET] }
stages:
  prod: { variables: { color: blue } }
"#;

/// An inner service answering `STAGE PATH color=COLOR`.
fn echo() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|req: Request<Body>| async move {
        let ctx = req.extensions().get::<RequestContext>().unwrap();
        let text = format!(
            "{} {} color={}",
            ctx.endpoint().stage(),
            req.uri().path(),
            ctx.endpoint().stage_variable("color").unwrap_or("-")
        );
        Ok::<_, Infallible>(Response::new(Body::from(text)))
    })
}

fn lifecycle(yaml: &str) -> Lifecycle {
    Gateway::builder(Config::from_yaml_str(yaml).unwrap())
        .build_lifecycle()
        .unwrap()
}

/// A definition: a config whose stage is dropped when it is given to an API.
fn def(yaml: &str) -> Config {
    Config::from_yaml_str(&format!("{yaml}\nstages: {{ any: {{}} }}")).unwrap()
}

async fn get(lc: &Lifecycle, host: Option<&str>, path: &str) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let res = lc
        .service(echo())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, _, body) = support::read(res).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_single_api_config_serves_as_a_gateway_does() {
    let lc = lifecycle(V1);
    assert_eq!(
        get(&lc, None, "/prod/pets").await,
        (StatusCode::OK, "prod /pets color=blue".into())
    );
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&lc, None, "/beta/pets").await.0, StatusCode::NOT_FOUND);
    // As a tower layer too.
    let layered = tower::ServiceBuilder::new()
        .layer(lc.clone())
        .service(echo());
    let res = layered
        .oneshot(Request::get("/prod/pets").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let api = lc.api("petstore").unwrap();
    assert_eq!(api.name, "petstore");
    assert_eq!(lc.deployments("petstore").unwrap().len(), 1);
    let stage = lc.stage("petstore", "prod").unwrap();
    assert_eq!(
        stage.deployment_id,
        lc.deployments("petstore").unwrap()[0].id
    );
}

#[tokio::test]
async fn deploy_and_roll_back() {
    let lc = lifecycle(V1);
    let first = lc.stage("petstore", "prod").unwrap().deployment_id;
    lc.put_api("petstore", def("routes: { /pets: [GET], /cats: [GET] }"))
        .await
        .unwrap();
    // Not served until deployed.
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::NOT_FOUND);
    let second = lc
        .create_deployment(
            "petstore",
            DeploymentInput::to_stage("prod").description("cats"),
        )
        .await
        .unwrap();
    assert_eq!(second.description.as_deref(), Some("cats"));
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::OK);
    // History, oldest first.
    let ids: Vec<String> = lc
        .deployments("petstore")
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![first.clone(), second.id.clone()]);
    assert_eq!(lc.deployment("petstore", &second.id).unwrap().id, second.id);
    // Rollback: the stage points at the first deployment again.
    lc.update_stage(
        "petstore",
        "prod",
        vec![StageChange::Deployment(first.clone())],
    )
    .await
    .unwrap();
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&lc, None, "/prod/pets").await.0, StatusCode::OK);
    // The unserved deployment can go; the served one cannot.
    let err = lc.delete_deployment("petstore", &first).await.unwrap_err();
    assert_eq!(err.kind(), LifecycleErrorKind::BadRequest);
    assert!(
        err.message()
            .contains("Active stages pointing to this deployment must be moved or deleted"),
        "{err}"
    );
    lc.delete_deployment("petstore", &second.id).await.unwrap();
    assert_eq!(lc.deployments("petstore").unwrap().len(), 1);
    let err = lc
        .delete_deployment("petstore", &second.id)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LifecycleErrorKind::NotFound);
}

fn kind<T: std::fmt::Debug>(r: Result<T, tollgate::gateway::LifecycleError>) -> LifecycleErrorKind {
    r.unwrap_err().kind()
}

#[tokio::test]
async fn every_refusal_changes_nothing() {
    let lc = lifecycle(V1);
    let dep = lc.stage("petstore", "prod").unwrap().deployment_id;
    use LifecycleErrorKind::*;
    // APIs.
    assert_eq!(
        kind(
            lc.create_api(Some("petstore"), "other", def("routes: { /: [GET] }"))
                .await
        ),
        Conflict
    );
    assert_eq!(
        kind(
            lc.create_api(None, "petstore", def("routes: { /: [GET] }"))
                .await
        ),
        Conflict
    );
    assert_eq!(
        kind(
            lc.create_api(Some("a/b"), "ab", def("routes: { /: [GET] }"))
                .await
        ),
        BadRequest
    );
    assert_eq!(
        kind(lc.create_api(None, "", def("routes: { /: [GET] }")).await),
        BadRequest
    );
    assert_eq!(
        kind(lc.put_api("nope", def("routes: { /: [GET] }")).await),
        NotFound
    );
    assert_eq!(kind(lc.clone_api("nope", None, "copy").await), NotFound);
    // A definition that does not validate names its path.
    let mut bad = Config::default();
    bad.routes.insert("pets".into(), vec!["GET".into()]);
    let err = lc.put_api("petstore", bad).await.unwrap_err();
    assert_eq!(err.kind(), BadRequest);
    assert!(err.message().starts_with("definition.routes"), "{err}");
    // Deployments and stages.
    assert_eq!(
        kind(
            lc.create_deployment("nope", DeploymentInput::default())
                .await
        ),
        NotFound
    );
    assert_eq!(
        kind(
            lc.create_deployment(
                "petstore",
                DeploymentInput::as_canary("nope", CanarySettings::new("", 10.0))
            )
            .await
        ),
        NotFound
    );
    assert_eq!(
        kind(
            lc.create_deployment("petstore", DeploymentInput::to_stage("bad name"))
                .await
        ),
        BadRequest
    );
    assert_eq!(
        kind(
            lc.create_stage("petstore", "beta", "nope", Default::default())
                .await
        ),
        BadRequest
    );
    assert_eq!(
        kind(
            lc.create_stage("petstore", "prod", &dep, Default::default())
                .await
        ),
        Conflict
    );
    assert_eq!(
        kind(lc.update_stage("petstore", "nope", vec![]).await),
        NotFound
    );
    assert_eq!(
        kind(
            lc.update_stage("petstore", "prod", vec![StageChange::PromoteCanary])
                .await
        ),
        BadRequest
    );
    assert_eq!(
        kind(
            lc.update_stage("petstore", "prod", vec![StageChange::CanaryPercent(5.0)])
                .await
        ),
        BadRequest
    );
    let err = lc
        .update_stage(
            "petstore",
            "prod",
            vec![StageChange::Canary(CanarySettings::new(dep.clone(), 120.0))],
        )
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("canary_settings.percent_traffic: must be between 0.0 and 100.0"),
        "{err}"
    );
    assert_eq!(
        kind(
            lc.update_stage(
                "petstore",
                "prod",
                vec![StageChange::Canary(CanarySettings::new("nope", 10.0))]
            )
            .await
        ),
        BadRequest
    );
    // A stage change that the definition does not build for: refused with
    // the path, and prod still serves.
    let mut config = tollgate::gateway::StageConfig::default();
    config
        .methods
        .insert("/cats/GET".into(), Default::default());
    let err = lc
        .update_stage(
            "petstore",
            "prod",
            vec![StageChange::Config(Box::new(config))],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BadRequest);
    assert!(
        err.message()
            .contains(r#"apis.petstore.stages.prod.methods."/cats/GET": unknown route"#),
        "{err}"
    );
    assert_eq!(get(&lc, None, "/prod/pets").await.0, StatusCode::OK);
    // Domains.
    assert_eq!(kind(lc.create_domain("bad host:80").await), BadRequest);
    assert_eq!(kind(lc.create_domain("*.example.test").await), BadRequest);
    lc.create_domain("api.example.test").await.unwrap();
    assert_eq!(kind(lc.create_domain("API.example.test").await), Conflict);
    let to_prod = || BasePathMapping::new("petstore", "prod");
    assert_eq!(
        kind(
            lc.create_base_path_mapping("api.example.test", "/v1", to_prod())
                .await
        ),
        BadRequest
    );
    assert_eq!(
        kind(
            lc.create_base_path_mapping("nope.example.test", "v1", to_prod())
                .await
        ),
        NotFound
    );
    assert_eq!(
        kind(
            lc.create_base_path_mapping(
                "api.example.test",
                "v1",
                BasePathMapping::new("petstore", "nope")
            )
            .await
        ),
        BadRequest
    );
    lc.create_base_path_mapping("api.example.test", "v1", to_prod())
        .await
        .unwrap();
    assert_eq!(
        kind(
            lc.create_base_path_mapping("api.example.test", "v1", to_prod())
                .await
        ),
        Conflict
    );
    // A mapped stage cannot be deleted.
    assert_eq!(kind(lc.delete_stage("petstore", "prod").await), BadRequest);
    assert_eq!(
        kind(lc.delete_base_path_mapping("api.example.test", "v2").await),
        NotFound
    );
    lc.delete_base_path_mapping("api.example.test", "v1")
        .await
        .unwrap();
    lc.delete_stage("petstore", "prod").await.unwrap();
    assert_eq!(get(&lc, None, "/prod/pets").await.0, StatusCode::FORBIDDEN);
    lc.delete_domain("API.EXAMPLE.TEST").await.unwrap();
    assert_eq!(kind(lc.delete_domain("api.example.test").await), NotFound);
    // Everything refused left the history as it was.
    assert_eq!(lc.deployments("petstore").unwrap().len(), 1);
}

#[tokio::test]
async fn clone_copies_the_definition_not_the_stages() {
    let lc = lifecycle(V1);
    let copy = lc
        .clone_api("petstore", Some("copy"), "petstore-copy")
        .await
        .unwrap();
    assert_eq!(
        copy.definition.routes,
        lc.api("petstore").unwrap().definition.routes
    );
    assert!(lc.deployments("copy").unwrap().is_empty());
    assert!(lc.stages("copy").unwrap().is_empty());
    assert_eq!(lc.apis().len(), 2);
}

#[tokio::test]
async fn a_canary_is_refused_a_move_promoted_then_removed() {
    let lc = lifecycle(V1);
    let first = lc.stage("petstore", "prod").unwrap().deployment_id;
    lc.put_api("petstore", def("routes: { /pets: [GET], /cats: [GET] }"))
        .await
        .unwrap();
    let mut canary = CanarySettings::new("", 0.0);
    canary
        .stage_variable_overrides
        .insert("color".into(), "green".into());
    let second = lc
        .create_deployment("petstore", DeploymentInput::as_canary("prod", canary))
        .await
        .unwrap();
    let stage = lc.stage("petstore", "prod").unwrap();
    assert_eq!(stage.deployment_id, first);
    assert_eq!(stage.canary.as_ref().unwrap().deployment_id, second.id);
    // 0%: every request on the base.
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::NOT_FOUND);
    // While the canary is set, the stage cannot move, by either way.
    let err = lc
        .update_stage(
            "petstore",
            "prod",
            vec![StageChange::Deployment(second.id.clone())],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LifecycleErrorKind::BadRequest);
    assert!(err.message().contains("canary settings"), "{err}");
    assert!(
        lc.create_deployment("petstore", DeploymentInput::to_stage("prod"))
            .await
            .is_err()
    );
    // 100%: every request on the canary, with its variables.
    lc.update_stage("petstore", "prod", vec![StageChange::CanaryPercent(100.0)])
        .await
        .unwrap();
    assert_eq!(
        get(&lc, None, "/prod/cats").await,
        (StatusCode::OK, "prod /cats color=green".into())
    );
    // Promotion: the canary's deployment and variables become the stage's,
    // its percent 0, its settings kept.
    let stage = lc
        .update_stage("petstore", "prod", vec![StageChange::PromoteCanary])
        .await
        .unwrap();
    assert_eq!(stage.deployment_id, second.id);
    assert_eq!(stage.config.variables["color"], "green");
    let c = stage.canary.unwrap();
    assert_eq!(c.percent_traffic, 0.0);
    assert_eq!(
        get(&lc, None, "/prod/cats").await,
        (StatusCode::OK, "prod /cats color=green".into())
    );
    // The canary's deployment is served: not deletable; then removed.
    assert!(lc.delete_deployment("petstore", &second.id).await.is_err());
    let stage = lc
        .update_stage("petstore", "prod", vec![StageChange::RemoveCanary])
        .await
        .unwrap();
    assert!(stage.canary.is_none());
    lc.delete_deployment("petstore", &first).await.unwrap();
}

/// Keeps every event.
#[derive(Default)]
struct Collect(std::sync::Mutex<Vec<UsageEvent>>);

#[async_trait]
impl UsageSink for Collect {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

#[tokio::test]
async fn thirty_percent_of_requests_see_the_canary_and_are_marked() {
    let sink = Arc::new(Collect::default());
    let reporter = Reporter::new(sink.clone());
    let lc = Gateway::builder(Config::from_yaml_str(V1).unwrap())
        .reporter(reporter)
        .build_lifecycle()
        .unwrap();
    let mut canary = CanarySettings::new("", 30.0);
    canary
        .stage_variable_overrides
        .insert("color".into(), "green".into());
    lc.create_deployment("petstore", DeploymentInput::as_canary("prod", canary))
        .await
        .unwrap();
    let mut svc = lc.service(echo());
    let mut green = 0;
    for _ in 0..2000 {
        let req = Request::get("/prod/pets").body(Body::empty()).unwrap();
        let res = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap();
        let (_, _, body) = support::read(res).await;
        if body.ends_with(b"color=green") {
            green += 1;
        }
    }
    assert!(
        (500..=700).contains(&green),
        "{green} of 2000 on the canary"
    );
    lc.shutdown_reporters().await;
    let events = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(events.len(), 2000);
    let marked = events.iter().filter(|e| e.canary).count();
    assert_eq!(
        marked, green,
        "every canary request, and only those, is marked"
    );
    let line = serde_json::to_value(events.iter().find(|e| e.canary).unwrap()).unwrap();
    assert_eq!(line["isCanaryRequest"], true);
}

#[tokio::test]
async fn a_sticky_caller_never_changes_side() {
    let lc = lifecycle(V1);
    let mut canary = CanarySettings::new("", 50.0);
    canary
        .stage_variable_overrides
        .insert("color".into(), "green".into());
    canary.sticky = Some(Sticky::Header(http::HeaderName::from_static("x-user")));
    lc.create_deployment("petstore", DeploymentInput::as_canary("prod", canary))
        .await
        .unwrap();
    let mut svc = lc.service(echo());
    let mut on_canary = 0;
    for caller in 0..200 {
        let mut sides = Vec::new();
        for _ in 0..20 {
            let req = Request::get("/prod/pets")
                .header("x-user", format!("user-{caller}"))
                .body(Body::empty())
                .unwrap();
            let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                .await
                .unwrap()
                .call(req)
                .await
                .unwrap();
            let (_, _, body) = support::read(res).await;
            sides.push(body.ends_with(b"color=green"));
        }
        assert!(
            sides.iter().all(|s| *s == sides[0]),
            "caller {caller} changed side: {sides:?}"
        );
        on_canary += usize::from(sides[0]);
    }
    // The percentage still holds across callers.
    assert!(
        (60..=140).contains(&on_canary),
        "{on_canary} of 200 callers"
    );
}

const QUOTA: &str = r#"
name: petstore
routes: { /pets: [GET] }
settings: { api_key_required: true }
stages: { prod: {} }
plans:
  basic: { stages: [prod], quota: { limit: 5, period: day } }
keys:
  - { name: alice, value: alice-key-0123456789abcdef, plans: [basic] }
"#;

async fn keyed(
    svc: &mut (impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send),
    key: &str,
) -> StatusCode {
    let req = Request::get("/prod/pets")
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    ServiceExt::<Request<Body>>::ready(svc)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn promotion_keeps_each_callers_quota_usage() {
    let lc = lifecycle(QUOTA);
    let mut svc = lc.service(support::ok());
    let key = "alice-key-0123456789abcdef";
    for _ in 0..3 {
        assert_eq!(keyed(&mut svc, key).await, StatusCode::OK);
    }
    lc.create_deployment(
        "petstore",
        DeploymentInput::as_canary("prod", CanarySettings::new("", 100.0)),
    )
    .await
    .unwrap();
    assert_eq!(keyed(&mut svc, key).await, StatusCode::OK);
    lc.update_stage(
        "petstore",
        "prod",
        vec![StageChange::PromoteCanary, StageChange::RemoveCanary],
    )
    .await
    .unwrap();
    assert_eq!(keyed(&mut svc, key).await, StatusCode::OK);
    // 5 used across base, canary and promoted stage: the sixth is refused.
    assert_eq!(keyed(&mut svc, key).await, StatusCode::TOO_MANY_REQUESTS);
}

const SHOP: &str = r#"
name: shop
routes: { /pets: [GET], "/pets/{id}": [GET], /: [GET] }
stages: { prod: {}, beta: {} }
domains:
  api.example.test:
    base_paths:
      "": { stage: prod }
      v2/beta: { stage: beta }
      beta: { stage: beta }
"#;

#[tokio::test]
async fn domains_route_by_the_longest_base_path_across_apis() {
    let lc = lifecycle(SHOP);
    let mut orders = def("routes: { /orders: [GET] }");
    orders.disable_execute_api_endpoint = true;
    lc.create_api(Some("orders"), "orders", orders)
        .await
        .unwrap();
    lc.create_deployment("orders", DeploymentInput::to_stage("live"))
        .await
        .unwrap();
    lc.create_base_path_mapping(
        "api.example.test",
        "v2",
        BasePathMapping::new("orders", "live"),
    )
    .await
    .unwrap();
    let host = Some("api.example.test");
    // Longest first: v2/beta beats v2, v2 beats (none); the prefix is stripped.
    assert_eq!(
        get(&lc, host, "/v2/beta/pets").await,
        (StatusCode::OK, "beta /pets color=-".into())
    );
    assert_eq!(
        get(&lc, host, "/v2/orders").await,
        (StatusCode::OK, "live /orders color=-".into())
    );
    assert_eq!(
        get(&lc, host, "/pets/7").await,
        (StatusCode::OK, "prod /pets/7 color=-".into())
    );
    // Port and case do not matter.
    assert_eq!(
        get(&lc, Some("API.Example.TEST:8443"), "/beta/pets")
            .await
            .0,
        StatusCode::OK
    );
    // With two APIs, the execute-api host picks the API; `orders` has
    // turned that form off.
    assert_eq!(
        get(&lc, Some("shop.execute-api.local"), "/prod/pets")
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = get(&lc, Some("orders.execute-api.local"), "/live/orders").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, r#"{"message":"Forbidden"}"#);
    // A host that is no domain and names no API.
    assert_eq!(
        get(&lc, Some("other.test"), "/prod/pets").await.0,
        StatusCode::FORBIDDEN
    );
    // A known domain with no mapping for the path.
    lc.delete_base_path_mapping("api.example.test", "")
        .await
        .unwrap();
    let (status, body) = get(&lc, host, "/pets").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, r#"{"message":"Forbidden"}"#);
}

#[tokio::test]
async fn two_apis_keep_their_buckets_apart() {
    let yaml = r#"
name: a
routes: { /pets: [GET] }
stages: { prod: { settings: { throttle: { rate: 0.001, burst: 1 } } } }
"#;
    let lc = lifecycle(yaml);
    lc.clone_api("a", Some("b"), "b").await.unwrap();
    let mut stage = tollgate::gateway::StageConfig::default();
    stage.settings.throttle = lc.stage("a", "prod").unwrap().config.settings.throttle;
    lc.create_deployment("b", DeploymentInput::to_stage("prod").stage_config(stage))
        .await
        .unwrap();
    let a = Some("a.execute-api.test");
    assert_eq!(get(&lc, a, "/prod/pets").await.0, StatusCode::OK);
    assert_eq!(
        get(&lc, a, "/prod/pets").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Same stage, resource and method on another API: its own bucket.
    let b = Some("b.execute-api.test");
    assert_eq!(get(&lc, b, "/prod/pets").await.0, StatusCode::OK);
}

const LOAD: &str = r#"
name: petstore
routes: { /pets: [GET] }
settings: { api_key_required: true }
stages: { prod: { variables: { color: blue } } }
plans:
  basic: { stages: [prod], quota: { limit: 2000, period: day } }
keys:
  - { name: alice, value: alice-key-0123456789abcdef, plans: [basic] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_fail_nothing_and_count_exactly() {
    let lc = lifecycle(LOAD);
    let addr = support::serve_tcp(lc.service(echo())).await;
    let (ok, limited, bad) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (ok, limited, bad) = (ok.clone(), limited.clone(), bad.clone());
        clients.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            // Bounded: at most 400 requests per client.
            for _ in 0..400 {
                let req = Request::get("/prod/pets")
                    .header("host", "127.0.0.1")
                    .header("x-api-key", "alice-key-0123456789abcdef")
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap();
                match send.send_request(req).await {
                    Ok(res) if res.status() == StatusCode::OK => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(res) if res.status() == StatusCode::TOO_MANY_REQUESTS => {
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(res) => bad.lock().unwrap().push(res.status().to_string()),
                    Err(e) => bad.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    // 20 swaps, in an order API Gateway allows: deploy, rollback, canary
    // on, promote, canary removed, ...
    let mut overrides = BTreeMap::new();
    overrides.insert("color".to_owned(), "green".to_owned());
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = lc.stage("petstore", "prod").unwrap().deployment_id;
        lc.create_deployment("petstore", DeploymentInput::to_stage("prod"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        lc.update_stage("petstore", "prod", vec![StageChange::Deployment(before)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut canary = CanarySettings::new("", 40.0);
        canary.stage_variable_overrides = overrides.clone();
        lc.create_deployment("petstore", DeploymentInput::as_canary("prod", canary))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        lc.update_stage("petstore", "prod", vec![StageChange::PromoteCanary])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        lc.update_stage("petstore", "prod", vec![StageChange::RemoveCanary])
            .await
            .unwrap();
        let _ = round;
    }
    for c in clients {
        c.await.unwrap();
    }
    let bad = bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "failed or unexpected responses: {bad:?}");
    let (ok, limited) = (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed));
    assert_eq!(ok + limited, 8 * 400);
    // The quota of 2000 admitted exactly 2000 across every swap.
    assert_eq!(ok, 2000, "{ok} admitted, {limited} refused");
}

#[tokio::test]
async fn a_reload_deploys_what_changed_and_refuses_what_is_invalid() {
    let lc = lifecycle(V1);
    let first = lc.stage("petstore", "prod").unwrap().deployment_id;
    // The same file again: nothing deployed, nothing changed.
    let same = lc.reload(Config::from_yaml_str(V1).unwrap()).await.unwrap();
    assert!(same.deployments.is_empty());
    assert!(same.stages.is_empty());
    // A new route, a new stage, a changed variable.
    let v2 = r#"
name: petstore
routes: { /pets: [GET], /cats: [GET] }
stages:
  prod: { variables: { color: red } }
  beta: {}
"#;
    let done = lc.reload(Config::from_yaml_str(v2).unwrap()).await.unwrap();
    let made = done.deployments[0].clone();
    assert_eq!(done.stages, vec!["beta".to_owned(), "prod".to_owned()]);
    assert_eq!(lc.stage("petstore", "prod").unwrap().deployment_id, made.id);
    assert_eq!(
        get(&lc, None, "/prod/cats").await,
        (StatusCode::OK, "prod /cats color=red".into())
    );
    assert_eq!(get(&lc, None, "/beta/pets").await.0, StatusCode::OK);
    // Back to the first file: its deployment is reused, beta goes.
    let back = lc.reload(Config::from_yaml_str(V1).unwrap()).await.unwrap();
    assert!(back.deployments.is_empty());
    assert_eq!(lc.stage("petstore", "prod").unwrap().deployment_id, first);
    assert_eq!(get(&lc, None, "/beta/pets").await.0, StatusCode::NOT_FOUND);
    // A file that is valid alone but not here (a base path another API
    // maps): refused whole, the old one serving.
    lc.create_api(Some("orders"), "orders", def("routes: { /orders: [GET] }"))
        .await
        .unwrap();
    lc.create_deployment("orders", DeploymentInput::to_stage("live"))
        .await
        .unwrap();
    lc.create_domain("api.example.test").await.unwrap();
    lc.create_base_path_mapping(
        "api.example.test",
        "",
        BasePathMapping::new("orders", "live"),
    )
    .await
    .unwrap();
    let clash = format!(
        "{v2}domains: {{ api.example.test: {{ base_paths: {{ \"\": {{ stage: prod }} }} }} }}\n"
    );
    let err = lc
        .reload(Config::from_yaml_str(&clash).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LifecycleErrorKind::Conflict, "{err}");
    let host = Some("petstore.execute-api.test");
    assert_eq!(get(&lc, host, "/prod/cats").await.0, StatusCode::NOT_FOUND);
    assert_eq!(lc.stage("petstore", "prod").unwrap().deployment_id, first);
    // The file is the stage's whole truth: a canary set through the API
    // that the file does not have is removed by a reload.
    lc.create_deployment(
        "petstore",
        DeploymentInput::as_canary("prod", CanarySettings::new("", 0.0)),
    )
    .await
    .unwrap();
    lc.reload(Config::from_yaml_str(V1).unwrap()).await.unwrap();
    assert!(lc.stage("petstore", "prod").unwrap().canary.is_none());
    // Keys changed: listed, applied at the next start.
    let keyed = format!("{V1}keys:\n  - {{ name: bob, value: bob-key-0123456789abcdef0 }}\n");
    let done = lc
        .reload(Config::from_yaml_str(&keyed).unwrap())
        .await
        .unwrap();
    assert_eq!(done.needs_restart, vec!["keys"]);
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_deployment_it_started_on() {
    let lc = lifecycle(V1);
    let slow = tower::service_fn(|req: Request<Body>| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ctx = req.extensions().get::<RequestContext>().unwrap();
        let color = ctx
            .endpoint()
            .stage_variable("color")
            .unwrap_or("-")
            .to_owned();
        Ok::<_, Infallible>(Response::new(Body::from(color)))
    });
    let svc = lc.service(slow);
    let started = tokio::spawn(
        svc.clone()
            .oneshot(Request::get("/prod/pets").body(Body::empty()).unwrap()),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut red = BTreeMap::new();
    red.insert("color".to_owned(), "red".to_owned());
    lc.update_stage("petstore", "prod", vec![StageChange::Variables(red)])
        .await
        .unwrap();
    let (_, _, body) = support::read(started.await.unwrap().unwrap()).await;
    assert_eq!(&body[..], b"blue");
    let res = svc
        .oneshot(Request::get("/prod/pets").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (_, _, body) = support::read(res).await;
    assert_eq!(&body[..], b"red");
}

const CACHED: &str = r#"
name: petstore
routes: { /pets: [GET] }
stages:
  prod: { settings: { cache: { enabled: true, ttl: 300 } } }
"#;

/// An inner service that counts its calls and answers with the count.
fn counting(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<Body>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, Infallible>(Response::new(Body::from(n.to_string()))) }
    })
}

#[tokio::test]
async fn cache_entries_survive_a_redeploy_and_canaries_cache_as_api_gateway_does() {
    let lc = lifecycle(CACHED);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = lc.service(counting(calls.clone()));
    let body = async |svc: &tollgate::LifecycleService<_>| {
        let res = svc
            .clone()
            .oneshot(Request::get("/prod/pets").body(Body::empty()).unwrap())
            .await
            .unwrap();
        String::from_utf8(support::read(res).await.2.to_vec()).unwrap()
    };
    assert_eq!(body(&svc).await, "1");
    assert_eq!(body(&svc).await, "1");
    // A redeploy keeps the stage's cache.
    lc.create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap();
    assert_eq!(body(&svc).await, "1");
    let base = lc.stage("petstore", "prod").unwrap().deployment_id;
    // A canary without the stage cache: no cache at all.
    lc.update_stage(
        "petstore",
        "prod",
        vec![StageChange::Canary(CanarySettings::new(
            base.clone(),
            100.0,
        ))],
    )
    .await
    .unwrap();
    assert_eq!(body(&svc).await, "2");
    assert_eq!(body(&svc).await, "3");
    // With the stage cache, on the stage's own deployment: the same entries.
    lc.update_stage(
        "petstore",
        "prod",
        vec![StageChange::CanaryUseStageCache(true)],
    )
    .await
    .unwrap();
    assert_eq!(body(&svc).await, "1");
    // On another deployment: entries of its own.
    let other = lc
        .create_deployment("petstore", DeploymentInput::default())
        .await
        .unwrap();
    let mut canary = CanarySettings::new(other.id, 100.0);
    canary.use_stage_cache = true;
    lc.update_stage("petstore", "prod", vec![StageChange::Canary(canary)])
        .await
        .unwrap();
    assert_eq!(body(&svc).await, "4");
    assert_eq!(body(&svc).await, "4");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn plans_are_state_changed_while_serving() {
    let lc = lifecycle(QUOTA);
    let mut svc = lc.service(support::ok());
    let key = "alice-key-0123456789abcdef";
    assert_eq!(keyed(&mut svc, key).await, StatusCode::OK);
    let mut plan = lc.plans()["basic"].clone();
    plan.stages = vec!["nope".into()];
    let err = lc.put_plan("basic", plan.clone()).await.unwrap_err();
    assert!(
        err.message()
            .starts_with("plans.basic.stages[0]: no stage `nope`"),
        "{err}"
    );
    // The plan no longer names prod: alice's key calls prod through no plan.
    plan.stages = vec!["petstore/prod".into()];
    plan.quota = Some(tollgate::gateway::QuotaConfig::new(
        1,
        tollgate::plans::Period::Day,
    ));
    lc.put_plan("basic", plan).await.unwrap();
    assert_eq!(keyed(&mut svc, key).await, StatusCode::TOO_MANY_REQUESTS);
    lc.delete_plan("basic").await.unwrap();
    assert_eq!(
        kind(lc.delete_plan("basic").await),
        LifecycleErrorKind::NotFound
    );
    assert_eq!(keyed(&mut svc, key).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_stage_canary_in_a_file_deploys_the_other_file() {
    let dir = support::ScratchDir::new("canary");
    std::fs::write(
        dir.join("v2.yaml"),
        "routes: { /pets: [GET], /cats: [GET] }\nstages: { any: {} }\n",
    )
    .unwrap();
    let main = dir.join("main.yaml");
    let with_canary = |percent: &str| {
        format!(
            "name: petstore\nroutes: {{ /pets: [GET] }}\nstages:\n  prod:\n    variables: {{ color: blue }}\n    \
             canary: {{ config: v2.yaml, percent_traffic: {percent}, stage_variable_overrides: {{ color: green }} }}\n"
        )
    };
    std::fs::write(&main, with_canary("100")).unwrap();
    // A gateway alone refuses a canary, naming where.
    let err = Gateway::new(Config::from_path(&main).unwrap()).unwrap_err();
    assert_eq!(err.kind(), tollgate::gateway::ConfigErrorKind::Unsupported);
    assert_eq!(err.issues()[0].path(), "stages.prod.canary");
    // A lifecycle serves it: v2's /cats, with the overrides.
    let lc = Gateway::builder(Config::from_path(&main).unwrap())
        .build_lifecycle()
        .unwrap();
    assert_eq!(lc.deployments("petstore").unwrap().len(), 2);
    assert_eq!(
        get(&lc, None, "/prod/cats").await,
        (StatusCode::OK, "prod /cats color=green".into())
    );
    // The same file again changes nothing.
    let again = lc.reload(Config::from_path(&main).unwrap()).await.unwrap();
    assert!(again.deployments.is_empty() && again.stages.is_empty());
    assert_eq!(lc.deployments("petstore").unwrap().len(), 2);
    // A canary file that is not there: refused, with its path.
    std::fs::write(&main, with_canary("100").replace("v2.yaml", "v3.yaml")).unwrap();
    let err = lc
        .reload(Config::from_path(&main).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("stages.prod.canary.config"),
        "{err}"
    );
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::OK);
    // The section removed: the canary goes.
    std::fs::write(
        &main,
        "name: petstore\nroutes: { /pets: [GET] }\nstages:\n  prod: { variables: { color: blue } }\n",
    )
    .unwrap();
    lc.reload(Config::from_path(&main).unwrap()).await.unwrap();
    assert!(lc.stage("petstore", "prod").unwrap().canary.is_none());
    assert_eq!(get(&lc, None, "/prod/cats").await.0, StatusCode::NOT_FOUND);
    // A bad section is a config error with its path.
    let issues = support::issues(
        "routes: { /pets: [GET] }\nstages:\n  prod:\n    canary: { percent_traffic: 101, sticky: cookie }\n",
    );
    assert!(
        issues.contains(
            &"stages.prod.canary.percent_traffic: must be between 0 and 100 (got 101)".to_owned()
        ),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("stages.prod.canary.sticky: `cookie`")),
        "{issues:?}"
    );
}

/// Every kind of setting a definition may hold.
const MIXED: &str = r#"
name: mixed
routes: { /pets: [GET, POST], "/pets/{id}": [GET], "/files/{proxy+}": [ANY] }
settings:
  cors: { allow_origins: ["https://app.example.test"], allow_headers: [x-api-key], max_age: 600 }
  minimum_compression_size: 1024
  binary_media_types: [image/png]
  policy: { allow: ["203.0.113.0/24"], deny: ["203.0.113.7"] }
stages:
  prod:
    variables: { upstream: "127.0.0.1:9" }
    cache_capacity: 1MiB
    settings: { throttle: { rate: 10, burst: 5 }, cache: { enabled: true, ttl: 60, key: [querystring.type] } }
    methods:
      /pets/POST:
        mapping:
          request: { content_handling: CONVERT_TO_TEXT, templates: { application/json: '{"a": {{ input.body }}}' } }
      "/files/{proxy+}/ANY": { integration: { type: http, url: "http://{stageVariables.upstream}/{proxy}" } }
      "/pets/{id}/GET": { integration: { type: mock, status: 200 }, authorization: authorizer, authorizer: bearer }
authorizers:
  bearer: { identity_sources: [header.Authorization], ttl: 60 }
responses:
  DEFAULT_4XX:
    status: 418
    headers: { x-static: "'fixed'" }
    templates: { application/json: '{"error": "$context.error.responseType"}' }
responses_profile: aws
limits: { max_body: 1MiB }
"#;

#[test]
fn a_definition_round_trips_through_json() {
    // What a deployment store writes: every field but keys, credentials,
    // the management section and the key options, which no definition holds.
    let dir = support::ScratchDir::new("roundtrip");
    let mixed = dir.join("mixed.yaml");
    std::fs::write(&mixed, MIXED).unwrap();
    let petstore = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for path in [
        petstore.join("petstore.yaml"),
        petstore.join("petstore.json"),
        mixed,
    ] {
        let file = path.display();
        let mut config = Config::from_path(&path).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(!json.contains("\"keys\""), "{file}");
        let back = Config::from_json_str(&json).unwrap_or_else(|e| panic!("{file}: {e}"));
        config.keys.clear();
        config.credentials.clear();
        config.management = None;
        config.api_key_options = back.api_key_options.clone();
        assert_eq!(back, config, "{file}");
    }
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_directory_keeps_history_across_a_restart_and_feeds_other_processes() {
    use tollgate::gateway::DirDeploymentStore;
    let dir = support::ScratchDir::new("deployments");
    let store = || Arc::new(DirDeploymentStore::new(&dir).unwrap());
    let first = lifecycle(V1);
    first.attach(store()).await.unwrap();
    assert_eq!(first.version().await, 1);
    first
        .put_api("petstore", def("routes: { /pets: [GET], /cats: [GET] }"))
        .await
        .unwrap();
    let v2 = first
        .create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap();
    assert_eq!(first.version().await, 3);
    // Another lifecycle on the same directory serves what is stored, not
    // its own config: the history survives a restart.
    let second = lifecycle(V1);
    second.attach(store()).await.unwrap();
    assert_eq!(second.deployments("petstore").unwrap().len(), 2);
    assert_eq!(
        second.stage("petstore", "prod").unwrap().deployment_id,
        v2.id
    );
    assert_eq!(get(&second, None, "/prod/cats").await.0, StatusCode::OK);
    // A change in one is served by the other within a second.
    let before = first.stage("petstore", "prod").unwrap().deployment_id;
    let rolled = second.deployments("petstore").unwrap()[0].id.clone();
    second
        .update_stage(
            "petstore",
            "prod",
            vec![StageChange::Deployment(rolled.clone())],
        )
        .await
        .unwrap();
    assert_ne!(before, rolled);
    let seen = eventually(Duration::from_secs(1), async || {
        first.stage("petstore", "prod").unwrap().deployment_id == rolled
    })
    .await;
    assert!(
        seen,
        "the other lifecycle did not serve the rollback within 1 s"
    );
    assert_eq!(
        get(&first, None, "/prod/cats").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_change_made_against_an_older_state_is_refused() {
    use tollgate::gateway::{DeploymentStore, DirDeploymentStore};
    let dir = support::ScratchDir::new("conflict");
    let store = Arc::new(DirDeploymentStore::new(&dir).unwrap());
    let lc = lifecycle(V1);
    lc.attach(store.clone()).await.unwrap();
    // Another writer stores version 2 before this lifecycle's feed sees it.
    let (version, document) = store.load().await.unwrap().unwrap();
    assert!(store.save(version, &document).await.unwrap());
    assert!(
        !store.save(version, &document).await.unwrap(),
        "a stale save is refused"
    );
    let err = lc
        .create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LifecycleErrorKind::Conflict);
    assert_eq!(lc.version().await, 2, "the newer stored state is served");
    lc.create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap();
    assert_eq!(store.version().await.unwrap(), 3);
}

#[tokio::test]
async fn a_multi_api_config_serves_each_api_and_reloads_what_changed() {
    let dir = support::ScratchDir::new("apis");
    std::fs::write(
        dir.join("petstore.yaml"),
        "name: petstore\nroutes: { /pets: [GET] }\nstages: { prod: { variables: { color: blue } } }\n",
    )
    .unwrap();
    let orders = |routes: &str| {
        format!(
            "name: orders\nroutes: {{ {routes} }}\nsettings: {{ api_key_required: true }}\nstages: {{ live: {{}} }}\n"
        )
    };
    std::fs::write(dir.join("orders.yaml"), orders("/orders: [GET]")).unwrap();
    let top = dir.join("apis.yaml");
    std::fs::write(
        &top,
        r#"
apis:
  petstore: { config: petstore.yaml }
  orders: { config: orders.yaml }
domains:
  api.example.test:
    base_paths:
      "": { api: petstore, stage: prod }
      orders: { api: orders, stage: live }
plans:
  basic: { stages: [orders/live], quota: { limit: 2, period: day } }
keys:
  - { name: alice, value: alice-key-0123456789abcdef, plans: [basic] }
"#,
    )
    .unwrap();
    let config = Config::from_path(&top).unwrap();
    let err = Gateway::new(config.clone()).unwrap_err();
    assert_eq!(err.issues()[0].path(), "apis");
    let lc = Gateway::builder(config).build_lifecycle().unwrap();
    let host = Some("api.example.test");
    assert_eq!(
        get(&lc, host, "/pets").await,
        (StatusCode::OK, "prod /pets color=blue".into())
    );
    // The plan names `orders/live`: alice's quota of 2 there.
    let mut svc = lc.service(echo());
    let mut orders_get = async || {
        let req = Request::get("/orders/orders")
            .header("host", "api.example.test")
            .header("x-api-key", "alice-key-0123456789abcdef")
            .body(Body::empty())
            .unwrap();
        ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap()
            .status()
    };
    assert_eq!(orders_get().await, StatusCode::OK);
    assert_eq!(orders_get().await, StatusCode::OK);
    assert_eq!(orders_get().await, StatusCode::TOO_MANY_REQUESTS);
    // One API's file changes: that API alone gets a deployment.
    std::fs::write(
        dir.join("orders.yaml"),
        orders("/orders: [GET], /refunds: [GET]"),
    )
    .unwrap();
    let done = lc.reload(Config::from_path(&top).unwrap()).await.unwrap();
    assert_eq!(done.deployments.len(), 1);
    assert_eq!(done.deployments[0].api_id, "orders");
    assert_eq!(lc.deployments("petstore").unwrap().len(), 1);
    assert_eq!(lc.deployments("orders").unwrap().len(), 2);
    // What is every API's belongs in the top file.
    std::fs::write(
        dir.join("orders.yaml"),
        format!(
            "{}keys:\n  - {{ name: k, value: k-key-0123456789abcdef0123 }}\n",
            orders("/orders: [GET]")
        ),
    )
    .unwrap();
    let err = lc
        .reload(Config::from_path(&top).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.message().contains("`keys` belongs in the top file"),
        "{err}"
    );
    // An API file that does not validate: refused with its path.
    std::fs::write(dir.join("orders.yaml"), "routes: { /orders: [GET] }\n").unwrap();
    let err = lc
        .reload(Config::from_path(&top).unwrap())
        .await
        .unwrap_err();
    assert!(err.message().starts_with("apis.orders.config"), "{err}");
}

#[test]
fn a_multi_api_config_names_its_problems() {
    let issues = support::issues(
        r#"
apis:
  petstore: { config: petstore.yaml }
  orders: { openapi: orders.json, config: orders.yaml }
  "bad id": { config: x.yaml }
routes: { /pets: [GET] }
domains:
  api.example.test: { base_paths: { "": { stage: prod }, v2: { api: nope, stage: prod } } }
plans:
  basic: { stages: [prod, petstore/prod] }
"#,
    );
    for expected in [
        "routes: a config with `apis` has its routes in each API's file",
        "apis.orders: give exactly one of `config` and `openapi`",
        r#"apis."bad id": not an API id (1 to 64 lower-case letters, digits, `-` and `_`)"#,
        r#"domains."api.example.test".base_paths."".api: name the API (the config has several)"#,
        r#"domains."api.example.test".base_paths.v2.api: unknown API `nope`"#,
        "plans.basic.stages[0]: `prod` is not `api/stage` of one of `apis`",
    ] {
        assert!(
            issues.contains(&expected.to_owned()),
            "{expected}\n{issues:#?}"
        );
    }
    assert_eq!(issues.len(), 6, "{issues:#?}");
}

#[tokio::test]
async fn ids_are_lower_case_and_hosts_match_them_in_any_case() {
    let lc = lifecycle(V1);
    let any = || def("routes: { /orders: [GET] }");
    assert_eq!(
        kind(lc.create_api(Some("Orders"), "o1", any()).await),
        LifecycleErrorKind::BadRequest
    );
    assert_eq!(
        kind(lc.create_api(Some("a.b"), "o2", any()).await),
        LifecycleErrorKind::BadRequest
    );
    assert_eq!(
        kind(lc.create_api(None, "bad\nname", any()).await),
        LifecycleErrorKind::BadRequest
    );
    lc.create_api(Some("orders"), "orders", any())
        .await
        .unwrap();
    lc.create_deployment("orders", DeploymentInput::to_stage("live"))
        .await
        .unwrap();
    assert_eq!(
        get(&lc, Some("ORDERS.Execute-Api.test:443"), "/live/orders")
            .await
            .0,
        StatusCode::OK
    );
    // A config's name becomes a lower-case id.
    let named = lifecycle("name: Pet Store\nroutes: { /pets: [GET] }\nstages: { prod: {} }\n");
    assert_eq!(named.apis()[0].id, "pet-store");
    assert_eq!(named.apis()[0].name, "Pet Store");
}

#[tokio::test]
async fn a_second_api_keeps_the_plans_on_the_first_ones_stages() {
    let lc = lifecycle(QUOTA);
    let host = "petstore.execute-api.test";
    let mut svc = lc.service(support::ok());
    let key = "alice-key-0123456789abcdef";
    assert_eq!(keyed(&mut svc, key).await, StatusCode::OK);
    lc.create_api(Some("other"), "other", def("routes: { /x: [GET] }"))
        .await
        .unwrap();
    assert_eq!(lc.plans()["basic"].stages, vec!["petstore/prod".to_owned()]);
    let req = Request::get("/prod/pets")
        .header("host", host)
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        lc.service(support::ok())
            .oneshot(req)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A stage a plan names cannot be deleted.
    let err = lc.delete_stage("petstore", "prod").await.unwrap_err();
    assert!(err.message().contains("usage plan `basic`"), "{err}");
}

#[tokio::test]
async fn a_refused_attach_leaves_the_lifecycle_as_it_was() {
    use tollgate::gateway::DirDeploymentStore;
    let dir = support::ScratchDir::new("broken");
    std::fs::write(dir.join("lifecycle.version"), "2").unwrap();
    std::fs::write(dir.join("lifecycle.json"), "{broken").unwrap();
    let lc = lifecycle(V1);
    let err = lc
        .attach(Arc::new(DirDeploymentStore::new(&dir).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), LifecycleErrorKind::BadRequest, "{err}");
    assert_eq!(lc.version().await, 0);
    // Changes still go, in memory.
    lc.create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap();
    // A version at its largest: a change is refused, nothing panics or wraps.
    std::fs::write(dir.join("lifecycle.version"), u64::MAX.to_string()).unwrap();
    // A valid document beside it (what a lifecycle stores).
    let memory = Arc::new(tollgate::gateway::InMemoryDeploymentStore::new());
    lifecycle(V1).attach(memory.clone()).await.unwrap();
    let (_, document) = {
        use tollgate::gateway::DeploymentStore;
        memory.load().await.unwrap().unwrap()
    };
    std::fs::write(dir.join("lifecycle.json"), document).unwrap();
    let full = lifecycle(V1);
    full.attach(Arc::new(DirDeploymentStore::new(&dir).unwrap()))
        .await
        .unwrap();
    assert_eq!(full.version().await, u64::MAX);
    let err = full
        .create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap_err();
    assert!(err.message().contains("largest"), "{err}");
}

#[tokio::test]
async fn lifecycles_sharing_a_memory_store_serve_each_others_changes() {
    use tollgate::gateway::InMemoryDeploymentStore;
    let store = Arc::new(InMemoryDeploymentStore::new());
    let (one, two) = (lifecycle(V1), lifecycle(V1));
    one.attach(store.clone()).await.unwrap();
    two.attach(store.clone()).await.unwrap();
    assert_eq!((one.version().await, two.version().await), (1, 1));
    let mut red = BTreeMap::new();
    red.insert("color".to_owned(), "red".to_owned());
    one.update_stage("petstore", "prod", vec![StageChange::Variables(red)])
        .await
        .unwrap();
    let seen = eventually(Duration::from_secs(1), async || {
        get(&two, None, "/prod/pets").await.1 == "prod /pets color=red"
    })
    .await;
    assert!(
        seen,
        "the other lifecycle did not serve the change within 1 s"
    );
}

#[test]
fn a_multi_api_config_whose_file_does_not_build_names_the_path() {
    let dir = support::ScratchDir::new("badapi");
    std::fs::write(
        dir.join("a.yaml"),
        "name: a\nroutes: { /x: [GET] }\nstages: { prod: {} }\n",
    )
    .unwrap();
    let top = dir.join("top.yaml");
    std::fs::write(
        &top,
        "apis: { a: { config: a.yaml } }\ndomains: { d.example.test: { base_paths: { v1: { api: a, stage: nope } } } }\n",
    )
    .unwrap();
    let err = Gateway::builder(Config::from_path(&top).unwrap())
        .build_lifecycle()
        .unwrap_err();
    assert_eq!(
        err.issues()[0].path(),
        r#"domains."d.example.test".base_paths.v1.stage"#,
        "{err}"
    );
    assert_eq!(err.issues()[0].message(), "API `a` has no stage `nope`");
}

#[tokio::test]
async fn a_deployed_stage_exports_what_it_serves() {
    use tollgate::openapi::{ExportOptions, ExportType};
    let lc = lifecycle(V1);
    let first = lc.stage("petstore", "prod").unwrap().deployment_id;
    lc.put_api("petstore", def("routes: { /pets: [GET], /cats: [GET] }"))
        .await
        .unwrap();
    // The stage serves the first deployment: the export says so, not the
    // API's current definition.
    let exported = lc
        .export("petstore", "prod", &ExportOptions::default())
        .unwrap();
    let doc = exported.document;
    assert!(doc["paths"].get("/cats").is_none(), "{doc}");
    assert!(doc["paths"].get("/pets").is_some());
    // info.version: the deployment's creation time, as API Gateway's.
    let created =
        time::OffsetDateTime::from(lc.deployment("petstore", &first).unwrap().created_date);
    let want = created
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap();
    assert_eq!(doc["info"]["version"], want);
    assert_eq!(
        doc["servers"][0]["variables"]["basePath"]["default"],
        "/prod"
    );
    // Deployed: the export has /cats; a named version wins.
    lc.create_deployment("petstore", DeploymentInput::to_stage("prod"))
        .await
        .unwrap();
    let mut o = ExportOptions::default();
    o.export_type = ExportType::Swagger;
    o.version = Some("v2".into());
    let doc = lc.export("petstore", "prod", &o).unwrap().document;
    assert!(doc["paths"].get("/cats").is_some());
    assert_eq!(
        (doc["info"]["version"].as_str(), doc["basePath"].as_str()),
        (Some("v2"), Some("/prod"))
    );
    assert_eq!(
        lc.export("petstore", "nope", &o).unwrap_err().kind(),
        tollgate::gateway::LifecycleErrorKind::NotFound
    );
}

#[tokio::test]
async fn an_api_of_a_multi_api_config_may_be_an_openapi_export() {
    let dir = std::env::temp_dir().join(format!("tollgate-openapi-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("orders.json"),
        r#"{"openapi": "3.0.1", "info": {"title": "orders", "version": "1"},
            "paths": {"/orders": {"get": {"x-amazon-apigateway-integration": {
              "type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
              "responses": {"default": {"statusCode": "200",
                "responseTemplates": {"application/json": "{\"orders\": []}"}}}}}}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("petstore.yaml"),
        "routes: { /pets: [GET] }\nstages: { prod: {} }\n",
    )
    .unwrap();
    let top = dir.join("top.yaml");
    std::fs::write(
        &top,
        "apis:\n  petstore: { config: petstore.yaml }\n  orders: { openapi: orders.json }\n",
    )
    .unwrap();
    let lc = Gateway::builder(Config::from_path(&top).unwrap())
        .build_lifecycle()
        .unwrap();
    // Served through a custom domain or by the API's own id? The execute-api
    // form of a multi-API lifecycle routes by domain; ask the API's gateway.
    let gw = lc
        .gateway("orders", "prod")
        .expect("the imported API's prod stage");
    let res = gw
        .service(echo())
        .oneshot(Request::get("/prod/orders").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], br#"{"orders": []}"#);
    std::fs::remove_dir_all(&dir).unwrap();
}
