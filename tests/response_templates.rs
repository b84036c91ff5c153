//! Gateway responses with API Gateway's simple substitution: `$context`
//! variables, stage variables and method request parameters in body
//! templates and header values, the template chosen by `Accept`,
//! `DEFAULT_4XX` templates for kinds without their own, and a backend's
//! response never rendered.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use serde_json::json;
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
routes:
  /pets/{petId}: [GET]
  /limited: [GET]
  /backend: [GET]
stages:
  prod:
    variables: { owner: team-a }
    methods:
      "/pets/{petId}/GET": { api_key_required: true }
      /limited/GET: { throttle: { rate: 0.001, burst: 1 } }
responses:
  INVALID_API_KEY:
    status: 401
    headers:
      x-request-id-copy: context.requestId
      x-origin: method.request.header.Origin
      x-pet: "pet-$method.request.path.petId"
      x-static: "'fixed'"
      x-q: method.request.querystring.q
    templates:
      application/json: '{"message": $context.error.messageString, "type": "$context.error.responseType", "stage": "$context.stage", "resource": "$context.resourcePath", "owner": "$stageVariables.owner", "pet": "$method.request.path.petId", "ip": "$context.identity.sourceIp", "path": "$context.path", "method": "$context.httpMethod"}'
      text/plain: 'denied ${context.requestId}.'
  DEFAULT_4XX:
    templates:
      application/json: '{"error": "$context.error.responseType", "message": "$context.error.message", "stage": "$context.stage"}'
keys:
  - { name: k, value: key-0123456789abcdef0123 }
"#;

async fn call(req: Request<Body>) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let inner = tower::service_fn(|_req: Request<Body>| async {
        // A backend answer that looks like a gateway response.
        let mut res = Response::new(Body::from("backend body"));
        res.headers_mut()
            .insert("x-tollgate-error-type", "INVALID_API_KEY".parse().unwrap());
        Ok::<_, Infallible>(res)
    });
    let res = gw.service(inner).oneshot(req).await.unwrap();
    support::read(res).await
}

fn from(ip: &str, req: http::request::Builder) -> Request<Body> {
    let mut req = req.body(Body::empty()).unwrap();
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ClientAddr(addr));
    req
}

#[tokio::test]
async fn context_stage_variables_and_method_parameters_are_substituted() {
    let req = from(
        "203.0.113.9",
        Request::get("/prod/pets/42?q=find%20me")
            .header("origin", "https://app.example")
            .header("accept", "application/json"),
    );
    let (status, headers, body) = call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/json");
    let id = headers["x-amzn-requestid"].to_str().unwrap();
    assert_eq!(headers["x-request-id-copy"], id);
    assert_eq!(headers["x-origin"], "https://app.example");
    assert_eq!(headers["x-pet"], "pet-42");
    assert_eq!(headers["x-static"], "fixed");
    assert_eq!(headers["x-q"], "find me");
    assert_eq!(headers["x-tollgate-error-type"], "INVALID_API_KEY");
    assert_eq!(
        support::json_of(&body),
        json!({
            "message": "Forbidden",
            "type": "INVALID_API_KEY",
            "stage": "prod",
            "resource": "/pets/{petId}",
            "owner": "team-a",
            "pet": "42",
            "ip": "203.0.113.9",
            "path": "/prod/pets/42",
            "method": "GET",
        })
    );
}

#[tokio::test]
async fn accept_picks_the_template_and_sets_its_content_type() {
    let req = from(
        "203.0.113.9",
        Request::get("/prod/pets/1").header("accept", "text/html, text/plain"),
    );
    let (_, headers, body) = call(req).await;
    assert_eq!(headers["content-type"], "text/plain");
    let id = headers["x-amzn-requestid"].to_str().unwrap();
    assert_eq!(body, format!("denied {id}."));
    // A header whose source the request lacks is left out.
    assert!(headers.get("x-origin").is_none());
}

#[tokio::test]
async fn default_4xx_templates_serve_kinds_without_their_own() {
    // Throttled: the 429 keeps its Retry-After.
    let send = || from("198.51.100.1", Request::get("/prod/limited"));
    let (status, _, _) = call(send()).await;
    assert_eq!(status, StatusCode::OK);
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let svc = gw.service(support::ok());
    let _ = svc.clone().oneshot(send()).await.unwrap();
    let res = svc.oneshot(send()).await.unwrap();
    let (status, headers, body) = support::read(res).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        support::json_of(&body),
        json!({"error": "THROTTLED", "message": "Too Many Requests", "stage": "prod"})
    );

    // An unknown stage: none to name.
    let (status, _, body) = call(from("198.51.100.1", Request::get("/test/pets/1"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        support::json_of(&body),
        json!({"error": "RESOURCE_NOT_FOUND", "message": "Not Found", "stage": ""})
    );
}

#[tokio::test]
async fn a_backend_response_is_never_rendered() {
    let (status, headers, body) = call(from("198.51.100.1", Request::get("/prod/backend"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "backend body");
    assert!(headers.get("x-static").is_none());
}

#[test]
fn wrong_references_are_refused_with_their_path() {
    let yaml = r#"
routes: { /a: [GET] }
stages: { prod: {} }
responses:
  THROTTLED:
    headers: { x-a: "$context.nope" }
    templates: { application/json: "${context.stage" }
"#;
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(
        err.contains("responses.THROTTLED.headers.x-a: `$context.nope` is not a variable"),
        "{err}"
    );
    assert!(
        err.contains(r#"responses.THROTTLED.templates."application/json": `${` without its `}`"#),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_path_in_a_known_stage_knows_its_stage() {
    let (status, _, body) = call(from("198.51.100.1", Request::get("/prod/nowhere/else"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(support::json_of(&body)["stage"], "prod");
}

#[tokio::test]
async fn a_header_that_would_not_be_visible_ascii_is_left_out() {
    // The query value decodes to `é`: not for a header.
    let req = from(
        "203.0.113.9",
        Request::get("/prod/pets/1?q=%C3%A9").header("accept", "application/json"),
    );
    let (status, headers, _) = call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("x-q").is_none(), "{headers:?}");
    assert_eq!(headers["x-pet"], "pet-1");
}

#[tokio::test]
async fn an_integration_failure_is_not_an_integration_response() {
    // A mapping rule for 5xx statuses applies to the backend's answers, not
    // to the gateway's 502 for a backend it could not reach; the 502 gets
    // its gateway response template.
    let dead = support::dead_port().await;
    let yaml = format!(
        r#"
routes: {{ /dead: [GET] }}
stages:
  prod:
    methods:
      /dead/GET:
        integration: {{ type: http, base: "http://{dead}" }}
        mapping:
          responses:
            - {{ selection_pattern: "5\\d\\d", status: 200, headers: {{ x-rule: "'hit'" }}, templates: {{ application/json: "mapped" }} }}
responses:
  DEFAULT_5XX:
    templates: {{ application/json: '{{"failed": "$context.error.responseType"}}' }}
"#
    );
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let req = Request::get("/prod/dead").body(Body::empty()).unwrap();
    let res = gw.service(support::ok()).oneshot(req).await.unwrap();
    let (status, headers, body) = support::read(res).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(headers.get("x-rule").is_none());
    assert_eq!(
        support::json_of(&body),
        json!({"failed": "INTEGRATION_FAILURE"})
    );
}

#[test]
fn what_an_override_may_not_say_is_refused_once_with_its_path() {
    let yaml = r#"
routes: { /a: [GET] }
stages: { prod: {} }
responses:
  DEFAULT_4XX:
    headers:
      content-length: "'3'"
      x-tollgate-error-type: method.request.header.x-spoof
      x-a: method.request.body.foo
      x-key: method.request.header.X-Api-Key
    templates: { json: "x", "text/plain": "a", "Text/Plain": "b" }
  AUTHORIZER_CONFIGURATION_ERROR: { status: 500 }
"#;
    let issues = support::issues(yaml);
    for expected in [
        "responses.DEFAULT_4XX.headers.content-length: `content-length` is set by the gateway",
        "responses.DEFAULT_4XX.headers.x-tollgate-error-type: `x-tollgate-error-type` is set by the gateway",
        "responses.DEFAULT_4XX.headers.x-a: `method.request.body.foo` is not a method request parameter",
        "responses.DEFAULT_4XX.headers.x-key: `method.request.header.X-Api-Key` would send the caller's credential back",
        r#"responses.DEFAULT_4XX.templates."json": `json` is not a media type"#,
        "is given twice",
        "responses.AUTHORIZER_CONFIGURATION_ERROR: under responses_profile http a failed authorizer is answered as BACKEND_UNAVAILABLE",
    ] {
        assert!(
            issues.iter().any(|i| i.contains(expected)),
            "{expected}\n{issues:#?}"
        );
    }
    // Each once, under DEFAULT_4XX, not again under every 4xx kind.
    assert_eq!(issues.len(), 7, "{issues:#?}");
}
