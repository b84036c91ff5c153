//! The management API through `oneshot`, every call signed by AWS's own
//! signer (`aws-sigv4`, service `apigateway`): each operation, each patch
//! path, and the error shapes botocore reads (`x-amzn-errortype`,
//! `{"message"}`). tests/management/test_management.py drives the same API
//! with boto3 and the aws CLI over TCP.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tollgate::clock::ManualClock;
use tollgate::management::Management;
use tollgate::{Body, Config, Gateway, Lifecycle};
use tower::ServiceExt;

const AKID: &str = "AKIDADMIN";
const SECRET: &str = "admin-secret-example";
const NOW: u64 = 1_800_000_000;

const CONFIG: &str = r#"
name: petstore
routes:
  /pets: [GET, POST]
  /pets/{id}: [GET]
stages:
  prod:
    variables: { color: blue }
    settings: { api_key_required: true }
  dev: {}
plans:
  basic: { stages: [prod], quota: { limit: 5, period: day } }
management:
  region: eu-west-1
  credentials:
    - { access_key_id: AKIDADMIN, secret_access_key: admin-secret-example, principal: ops }
"#;

struct Harness {
    lifecycle: Lifecycle,
    management: Management,
    clock: ManualClock,
}

fn harness(config: &str) -> Harness {
    let clock = ManualClock::new();
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
    let lifecycle = Gateway::builder(Config::from_yaml_str(config).unwrap())
        .clock(clock.clone())
        .build_lifecycle()
        .unwrap();
    let management = lifecycle.management();
    Harness {
        lifecycle,
        management,
        clock,
    }
}

struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    body: Value,
    raw: Vec<u8>,
}

impl Harness {
    /// A call signed as botocore signs it, with `secret` for `akid`.
    async fn signed_as(
        &self,
        akid: &str,
        secret: &str,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Answer {
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(self.clock_nanos());
        let identity = Credentials::new(akid, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("apigateway")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = format!("http://admin.local{path}");
        let mut all: Vec<(&str, &str)> = vec![("host", "admin.local")];
        all.extend_from_slice(headers);
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            all.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = Request::builder().method(method).uri(path);
        for (n, v) in &all {
            req = req.header(*n, *v);
        }
        let mut req = req.body(Body::from(body.to_vec())).unwrap();
        instructions.apply_to_request_http1x(&mut req);
        self.send(req).await
    }

    fn clock_nanos(&self) -> u64 {
        tollgate::clock::Clock::unix_nanos(&self.clock)
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.management.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let error_type = res
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap().to_owned());
        let raw = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Answer {
            status,
            error_type,
            body,
            raw,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Answer {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        self.signed_as(AKID, SECRET, method, path, &bytes, &[])
            .await
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let a = self.call(method, path, body).await;
        assert!(
            a.status.is_success(),
            "{method} {path}: {} {:?} {}",
            a.status,
            a.error_type,
            a.body
        );
        a.body
    }

    async fn patch(&self, path: &str, ops: Value) -> Answer {
        self.call("PATCH", path, json!({ "patchOperations": ops }))
            .await
    }
}

/// The service a lifecycle wraps: answers 200 "wrapped" to anything.
async fn wrapped(_req: Request<Body>) -> Result<http::Response<Body>, std::convert::Infallible> {
    Ok(http::Response::new(Body::from("wrapped")))
}

fn assert_error(a: &Answer, status: u16, kind: &str) {
    assert_eq!(a.status.as_u16(), status, "{:?} {}", a.error_type, a.body);
    assert_eq!(a.error_type.as_deref(), Some(kind), "{}", a.body);
    assert!(
        a.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        a.body
    );
}

// -- security ---------------------------------------------------------------

#[tokio::test]
async fn unsigned_calls_get_missing_authentication_token() {
    let h = harness(CONFIG);
    let a = h
        .send(
            Request::get("/restapis")
                .header("host", "admin.local")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(&a, 403, "MissingAuthenticationTokenException");
    assert_eq!(a.body["message"], "Missing Authentication Token");
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_key_and_a_wrong_region_are_refused() {
    let h = harness(CONFIG);
    let a = h
        .signed_as(AKID, "not-the-secret", "GET", "/restapis", b"", &[])
        .await;
    assert_error(&a, 403, "InvalidSignatureException");
    let a = h
        .signed_as("AKIDNOBODY", SECRET, "GET", "/restapis", b"", &[])
        .await;
    assert_error(&a, 403, "UnrecognizedClientException");
    // Malformed: incomplete.
    let a = h
        .send(
            Request::get("/restapis")
                .header("host", "admin.local")
                .header("authorization", "AWS4-HMAC-SHA256 SignedHeaders=host")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(&a, 403, "IncompleteSignatureException");
}

#[tokio::test]
async fn without_a_management_section_every_call_is_refused() {
    let h = harness(
        "name: petstore\nroutes: { /pets: [GET] }\nstages: { prod: {} }\nmanagement: { region: eu-west-1 }\n",
    );
    let a = h.call("GET", "/restapis", Value::Null).await;
    assert_error(&a, 403, "UnrecognizedClientException");
    let h = harness("name: petstore\nroutes: { /pets: [GET] }\nstages: { prod: {} }\n");
    let a = h.call("GET", "/restapis", Value::Null).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_stale_signature_is_refused() {
    let h = harness(CONFIG);
    // Signed now, arriving 20 minutes later.
    let at = h.clock_nanos();
    let signed_clock = ManualClock::new();
    signed_clock.set(SystemTime::UNIX_EPOCH + Duration::from_nanos(at));
    let h_late = Harness {
        lifecycle: h.lifecycle.clone(),
        management: h.management.clone(),
        clock: signed_clock,
    };
    h.clock.advance(Duration::from_secs(20 * 60));
    let a = h_late.call("GET", "/restapis", Value::Null).await;
    assert_error(&a, 403, "InvalidSignatureException");
}

#[tokio::test]
async fn secrets_stay_out_of_debug() {
    let h = harness(CONFIG);
    let shown = format!("{:?} {:?}", h.management, h.lifecycle.config().management);
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn management_credentials_are_checked_with_their_paths() {
    let err = Config::from_yaml_str(
        "routes: { /a: [GET] }\nstages: { prod: {} }\nmanagement:\n  region: EU\n  credentials:\n    - { access_key_id: lower, secret_access_key: '' }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("management.region"), "{err}");
    assert!(
        err.contains("management.credentials[0].access_key_id"),
        "{err}"
    );
    assert!(
        err.contains("management.credentials[0].secret_access_key"),
        "{err}"
    );
}

// -- APIs -------------------------------------------------------------------

#[tokio::test]
async fn rest_apis_are_created_listed_read_and_deleted() {
    let h = harness(CONFIG);
    let list = h.ok("GET", "/restapis", Value::Null).await;
    assert_eq!(list["item"][0]["id"], "petstore");
    assert_eq!(list["item"][0]["createdDate"], NOW);
    let created = h.call("POST", "/restapis", json!({"name": "orders"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let got = h.ok("GET", &format!("/restapis/{id}"), Value::Null).await;
    assert_eq!(got["name"], "orders");
    // Empty until a definition comes: not deployable, as API Gateway says.
    let a = h
        .call(
            "POST",
            &format!("/restapis/{id}/deployments"),
            json!({"stageName": "x"}),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    assert_eq!(
        a.body["message"],
        "The REST API doesn't contain any methods"
    );
    let dup = h.call("POST", "/restapis", json!({"name": "orders"})).await;
    assert_error(&dup, 409, "ConflictException");
    let clone = h
        .ok(
            "POST",
            "/restapis",
            json!({"name": "copy", "cloneFrom": "petstore"}),
        )
        .await;
    let resources = h
        .ok(
            "GET",
            &format!("/restapis/{}/resources", clone["id"].as_str().unwrap()),
            Value::Null,
        )
        .await;
    assert!(
        resources["item"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "/pets/{id}")
    );
    let del = h
        .call("DELETE", &format!("/restapis/{id}"), Value::Null)
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = h.call("GET", &format!("/restapis/{id}"), Value::Null).await;
    assert_error(&gone, 404, "NotFoundException");
    // An API a plan names is not deleted.
    let planned = h.call("DELETE", "/restapis/petstore", Value::Null).await;
    assert_error(&planned, 400, "BadRequestException");
}

const OPENAPI: &str = r#"{"openapi": "3.0.1", "info": {"title": "hello", "version": "1"},
 "paths": {"/hello": {"get": {"responses": {"200": {"description": "ok"}},
   "x-amazon-apigateway-integration": {"type": "mock",
     "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
     "responses": {"default": {"statusCode": "200",
        "responseTemplates": {"application/json": "{\"v\": VERSION}"}}}}}}}}"#;

async fn hello(h: &Harness, api: &str) -> (StatusCode, String) {
    let svc = h.lifecycle.service(tower::service_fn(wrapped));
    let res = svc
        .oneshot(
            Request::get("/live/hello")
                .header("host", format!("{api}.execute-api.localhost"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn an_imported_api_deploys_and_rolls_back_with_its_integrations() {
    let h = harness(CONFIG);
    let v1 = OPENAPI.replace("VERSION", "1");
    let a = h
        .signed_as(
            AKID,
            SECRET,
            "POST",
            "/restapis?mode=import",
            v1.as_bytes(),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let api = a.body["id"].as_str().unwrap().to_owned();
    let d1 = h
        .ok(
            "POST",
            &format!("/restapis/{api}/deployments"),
            json!({"stageName": "live"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(hello(&h, &api).await.1, r#"{"v": 1}"#);
    let v2 = OPENAPI.replace("VERSION", "2");
    let put = h
        .signed_as(
            AKID,
            SECRET,
            "PUT",
            &format!("/restapis/{api}?mode=overwrite"),
            v2.as_bytes(),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    // Not served until deployed.
    assert_eq!(hello(&h, &api).await.1, r#"{"v": 1}"#);
    h.ok(
        "POST",
        &format!("/restapis/{api}/deployments"),
        json!({"stageName": "live", "stageDescription": "the live one"}),
    )
    .await;
    assert_eq!(hello(&h, &api).await.1, r#"{"v": 2}"#);
    let stage = h
        .ok("GET", &format!("/restapis/{api}/stages/live"), Value::Null)
        .await;
    assert_eq!(stage["description"], "the live one");
    h.patch(
        &format!("/restapis/{api}/stages/live"),
        json!([{"op": "replace", "path": "/deploymentId", "value": d1}]),
    )
    .await;
    assert_eq!(hello(&h, &api).await.1, r#"{"v": 1}"#);
    // Merge mode keeps what the document does not name.
    let other = r#"{"openapi": "3.0.1", "info": {"title": "hello", "version": "1"},
      "paths": {"/other": {"get": {"responses": {"200": {"description": "ok"}}}}}}"#;
    let merged = h
        .signed_as(
            AKID,
            SECRET,
            "PUT",
            &format!("/restapis/{api}?mode=merge"),
            other.as_bytes(),
            &[],
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    let resources = h
        .ok("GET", &format!("/restapis/{api}/resources"), Value::Null)
        .await;
    let paths: Vec<&str> = resources["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/", "/hello", "/other"]);
    let bad = h
        .signed_as(
            AKID,
            SECRET,
            "PUT",
            &format!("/restapis/{api}"),
            b"not openapi",
            &[],
        )
        .await;
    assert_error(&bad, 400, "BadRequestException");
}

#[tokio::test]
async fn get_export_answers_json_or_yaml_as_accept_asks() {
    let h = harness(CONFIG);
    let a = h
        .signed_as(
            AKID,
            SECRET,
            "GET",
            "/restapis/petstore/stages/prod/exports/oas30?extensions=integrations",
            b"",
            &[("accept", "application/yaml")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let text = String::from_utf8(a.raw).unwrap();
    assert!(text.starts_with("openapi: \"3.0.1\""), "{text}");
    let a = h
        .call(
            "GET",
            "/restapis/petstore/stages/prod/exports/swagger",
            Value::Null,
        )
        .await;
    assert_eq!(a.body["swagger"], "2.0");
    let a = h
        .call(
            "GET",
            "/restapis/petstore/stages/prod/exports/raml",
            Value::Null,
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
}

// -- deployments and stages -------------------------------------------------

#[tokio::test]
async fn a_served_deployment_is_not_deleted() {
    let h = harness(CONFIG);
    let list = h
        .ok("GET", "/restapis/petstore/deployments", Value::Null)
        .await;
    let served = list["item"][0]["id"].as_str().unwrap();
    let a = h
        .call(
            "DELETE",
            &format!("/restapis/petstore/deployments/{served}"),
            Value::Null,
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Active stages pointing to this deployment must be moved or deleted")
    );
}

#[tokio::test]
async fn update_stage_takes_each_patch_path() {
    let h = harness(CONFIG);
    let path = "/restapis/petstore/stages/prod";
    let d2 = h
        .ok(
            "POST",
            "/restapis/petstore/deployments",
            json!({"description": "v2"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = h
        .patch(
            path,
            json!([
                {"op": "replace", "path": "/description", "value": "gold"},
                {"op": "replace", "path": "/variables/size", "value": "xl"},
                {"op": "remove", "path": "/variables/color"},
                {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "100"},
                {"op": "replace", "path": "/~1pets~1{id}/GET/throttling/burstLimit", "value": "9"},
                {"op": "replace", "path": "/~1pets/GET/caching/enabled", "value": "true"},
                {"op": "replace", "path": "/~1pets/GET/caching/ttlInSeconds", "value": "30"},
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let s = &a.body;
    assert_eq!(s["description"], "gold");
    assert_eq!(s["variables"], json!({"size": "xl"}));
    assert_eq!(s["methodSettings"]["*/*"]["throttlingRateLimit"], 100.0);
    assert_eq!(
        s["methodSettings"]["~1pets~1{id}/GET"]["throttlingBurstLimit"],
        9
    );
    assert_eq!(s["methodSettings"]["~1pets/GET"]["cacheTtlInSeconds"], 30);
    assert_eq!(s["cacheClusterEnabled"], true);
    // The change is served: the stage's gateway sees the variable.
    let e = h
        .lifecycle
        .gateway("petstore", "prod")
        .unwrap()
        .endpoint("prod", "/pets", "GET")
        .unwrap()
        .clone();
    assert_eq!(e.stage_variable("size"), Some("xl"));
    let a = h
        .patch(
            path,
            json!([{"op": "replace", "path": "/cacheClusterEnabled", "value": "false"}]),
        )
        .await;
    assert_eq!(a.body["cacheClusterEnabled"], false);

    // A canary, built path by path, then promoted by copy.
    let a = h
        .patch(
            path,
            json!([
                {"op": "replace", "path": "/canarySettings/deploymentId", "value": d2},
                {"op": "replace", "path": "/canarySettings/percentTraffic", "value": "25"},
                {"op": "replace", "path": "/canarySettings/stageVariableOverrides/size", "value": "s"},
                {"op": "replace", "path": "/canarySettings/useStageCache", "value": "true"},
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["canarySettings"],
        json!({"deploymentId": d2, "percentTraffic": 25.0, "stageVariableOverrides": {"size": "s"}, "useStageCache": true})
    );
    // Moving the base while a canary is set is refused, as AWS refuses it.
    let a = h
        .patch(
            path,
            json!([{"op": "replace", "path": "/deploymentId", "value": d2}]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let a = h
        .patch(
            path,
            json!([
                {"op": "replace", "path": "/canarySettings/percentTraffic", "value": "0.0"},
                {"op": "copy", "from": "/canarySettings/stageVariableOverrides", "path": "/variables"},
                {"op": "copy", "from": "/canarySettings/deploymentId", "path": "/deploymentId"},
            ]),
        )
        .await;
    assert_eq!(a.body["deploymentId"], d2.as_str());
    assert_eq!(a.body["variables"]["size"], "s");
    let a = h
        .patch(
            path,
            json!([
                {"op": "remove", "path": "/canarySettings/stageVariableOverrides/size"},
                {"op": "remove", "path": "/canarySettings"},
            ]),
        )
        .await;
    assert!(a.body.get("canarySettings").is_none(), "{}", a.body);

    // Anything else is refused whole, nothing applied.
    let a = h
        .patch(
            path,
            json!([
                {"op": "replace", "path": "/description", "value": "changed"},
                {"op": "replace", "path": "/tracingEnabled", "value": "true"},
            ]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let s = h.ok("GET", path, Value::Null).await;
    assert_eq!(s["description"], "gold");
    let a = h
        .patch(
            path,
            json!([{"op": "replace", "path": "/~1pets/GET/throttling/rateLimit", "value": "fast"}]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
}

#[tokio::test]
async fn stages_are_created_listed_flushed_and_deleted() {
    let h = harness(CONFIG);
    let d = h
        .ok("GET", "/restapis/petstore/deployments", Value::Null)
        .await["item"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = h
        .call(
            "POST",
            "/restapis/petstore/stages",
            json!({"stageName": "beta", "deploymentId": d, "variables": {"k": "v"}, "description": "b"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["variables"]["k"], "v");
    assert_eq!(a.body["description"], "b");
    let list = h.ok("GET", "/restapis/petstore/stages", Value::Null).await;
    let names: Vec<&str> = list["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stageName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta", "dev", "prod"]);
    let flush = h
        .call(
            "DELETE",
            "/restapis/petstore/stages/beta/cache/data",
            Value::Null,
        )
        .await;
    assert_eq!(flush.status, StatusCode::ACCEPTED);
    let del = h
        .call("DELETE", "/restapis/petstore/stages/beta", Value::Null)
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = h
        .call("GET", "/restapis/petstore/stages/beta", Value::Null)
        .await;
    assert_error(&gone, 404, "NotFoundException");
    // A stage a plan names stays.
    let a = h
        .call("DELETE", "/restapis/petstore/stages/prod", Value::Null)
        .await;
    assert_error(&a, 400, "BadRequestException");
}

// -- keys, plans, usage -----------------------------------------------------

#[tokio::test]
async fn api_keys_show_their_value_once() {
    let h = harness(CONFIG);
    let created = h
        .call(
            "POST",
            "/apikeys",
            json!({"name": "alice", "description": "first", "enabled": true, "tags": {"team": "a"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let value = created.body["value"].as_str().unwrap().to_owned();
    assert_eq!(value.len(), 40);
    let got = h
        .ok(
            "GET",
            &format!("/apikeys/{id}?includeValue=true"),
            Value::Null,
        )
        .await;
    assert!(got.get("value").is_none(), "{got}");
    assert_eq!(got["tags"]["team"], "a");
    let list = h
        .ok("GET", "/apikeys?includeValues=true&name=ali", Value::Null)
        .await;
    assert_eq!(list["item"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&value));
    // AWS's default: a key created without `enabled` is disabled.
    let off = h.ok("POST", "/apikeys", json!({"name": "bob"})).await;
    assert_eq!(off["enabled"], false);
    let a = h
        .patch(
            &format!("/apikeys/{id}"),
            json!([
                {"op": "replace", "path": "/name", "value": "alice2"},
                {"op": "replace", "path": "/description", "value": "renamed"},
                {"op": "replace", "path": "/enabled", "value": "false"},
            ]),
        )
        .await;
    assert_eq!(a.body["name"], "alice2");
    assert_eq!(a.body["description"], "renamed");
    assert_eq!(a.body["enabled"], false);
    let a = h
        .patch(
            &format!("/apikeys/{id}"),
            json!([{"op": "replace", "path": "/value", "value": "x"}]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let short = h
        .call("POST", "/apikeys", json!({"name": "c", "value": "short"}))
        .await;
    assert_error(&short, 400, "BadRequestException");
    assert!(!short.body.to_string().contains("short\""));
    let del = h
        .call("DELETE", &format!("/apikeys/{id}"), Value::Null)
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = h.call("GET", &format!("/apikeys/{id}"), Value::Null).await;
    assert_error(&gone, 404, "NotFoundException");
    let csv = h
        .signed_as(
            AKID,
            SECRET,
            "POST",
            "/apikeys?mode=import&format=csv",
            b"Name,key,Enabled\ncarol,carol-key-0123456789abcdef,true\n",
            &[],
        )
        .await;
    assert_eq!(csv.status, StatusCode::CREATED, "{}", csv.body);
    assert_eq!(csv.body["ids"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn usage_plans_take_their_patch_paths_and_keys() {
    let h = harness(CONFIG);
    let plan = h
        .call(
            "POST",
            "/usageplans",
            json!({"name": "gold", "description": "g",
                   "apiStages": [{"apiId": "petstore", "stage": "dev",
                                  "throttle": {"/pets/GET": {"rateLimit": 5.0, "burstLimit": 2}}}],
                   "throttle": {"rateLimit": 10.0, "burstLimit": 20},
                   "quota": {"limit": 100, "period": "WEEK", "offset": 1}}),
        )
        .await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.body);
    assert_eq!(plan.body["id"], "gold");
    assert_eq!(
        plan.body["apiStages"][0]["throttle"]["/pets/GET"],
        json!({"burstLimit": 2, "rateLimit": 5.0})
    );
    assert_eq!(
        plan.body["quota"],
        json!({"limit": 100, "offset": 1, "period": "WEEK"})
    );
    let dup = h.call("POST", "/usageplans", json!({"name": "gold"})).await;
    assert_error(&dup, 409, "ConflictException");
    let a = h
        .patch(
            "/usageplans/gold",
            json!([
                {"op": "replace", "path": "/description", "value": "G"},
                {"op": "replace", "path": "/throttle/rateLimit", "value": "11"},
                {"op": "replace", "path": "/quota/limit", "value": "200"},
                {"op": "replace", "path": "/quota/period", "value": "MONTH"},
                {"op": "add", "path": "/apiStages", "value": "petstore:prod"},
                {"op": "replace", "path": "/apiStages/petstore:dev/throttle/~1pets~1{id}/GET/rateLimit", "value": "3"},
                {"op": "remove", "path": "/apiStages/petstore:dev/throttle/~1pets/GET"},
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["description"], "G");
    assert_eq!(a.body["throttle"]["rateLimit"], 11.0);
    assert_eq!(a.body["quota"]["period"], "MONTH");
    assert_eq!(a.body["apiStages"].as_array().unwrap().len(), 2);
    assert_eq!(
        a.body["apiStages"][0]["throttle"],
        json!({"/pets/{id}/GET": {"burstLimit": 5000, "rateLimit": 3.0}})
    );
    let a = h
        .patch(
            "/usageplans/gold",
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let a = h
        .patch(
            "/usageplans/gold",
            json!([{"op": "add", "path": "/apiStages", "value": "nope:prod"}]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let a = h
        .patch(
            "/usageplans/gold",
            json!([{"op": "remove", "path": "/apiStages", "value": "petstore:prod"},
                   {"op": "remove", "path": "/quota"}, {"op": "remove", "path": "/throttle"}]),
        )
        .await;
    assert!(a.body.get("quota").is_none() && a.body.get("throttle").is_none());

    // Keys in plans.
    let key = h
        .ok("POST", "/apikeys", json!({"name": "k", "enabled": true}))
        .await;
    let kid = key["id"].as_str().unwrap();
    let bad = h
        .call(
            "POST",
            "/usageplans/gold/keys",
            json!({"keyId": kid, "keyType": "OTHER"}),
        )
        .await;
    assert_error(&bad, 400, "BadRequestException");
    let pk = h
        .call(
            "POST",
            "/usageplans/basic/keys",
            json!({"keyId": kid, "keyType": "API_KEY"}),
        )
        .await;
    assert_eq!(pk.status, StatusCode::CREATED);
    assert_eq!(pk.body, json!({"id": kid, "type": "API_KEY", "name": "k"}));
    let again = h
        .call(
            "POST",
            "/usageplans/basic/keys",
            json!({"keyId": kid, "keyType": "API_KEY"}),
        )
        .await;
    assert_error(&again, 409, "ConflictException");
    let one = h
        .ok("GET", &format!("/usageplans/basic/keys/{kid}"), Value::Null)
        .await;
    assert_eq!(one["name"], "k");
    let not_in = h
        .call("GET", &format!("/usageplans/gold/keys/{kid}"), Value::Null)
        .await;
    assert_error(&not_in, 404, "NotFoundException");
    let of_key = h
        .ok("GET", &format!("/usageplans?keyId={kid}"), Value::Null)
        .await;
    assert_eq!(of_key["item"].as_array().unwrap().len(), 1);
    assert_eq!(of_key["item"][0]["id"], "basic");
    let del = h
        .call(
            "DELETE",
            &format!("/usageplans/basic/keys/{kid}"),
            Value::Null,
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let keys = h.ok("GET", "/usageplans/basic/keys", Value::Null).await;
    assert_eq!(keys["item"], json!([]));
    let del = h.call("DELETE", "/usageplans/gold", Value::Null).await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = h.call("GET", "/usageplans/gold", Value::Null).await;
    assert_error(&gone, 404, "NotFoundException");
}

#[tokio::test]
async fn get_usage_reads_the_quota_and_update_usage_grants() {
    let h = harness(CONFIG);
    let key = h
        .ok("POST", "/apikeys", json!({"name": "k", "enabled": true}))
        .await;
    let kid = key["id"].as_str().unwrap().to_owned();
    let value = key["value"].as_str().unwrap().to_owned();
    h.ok(
        "POST",
        "/usageplans/basic/keys",
        json!({"keyId": kid, "keyType": "API_KEY"}),
    )
    .await;
    let svc = h.lifecycle.service(tower::service_fn(wrapped));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = svc
            .clone()
            .oneshot(
                Request::get("/prod/pets")
                    .header("x-api-key", &value)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let today = "2027-01-15"; // NOW is 2027-01-15T08:00:00Z.
    let usage = h
        .ok(
            "GET",
            &format!("/usageplans/basic/usage?keyId={kid}&startDate={today}&endDate={today}"),
            Value::Null,
        )
        .await;
    assert_eq!(usage["usagePlanId"], "basic");
    assert_eq!(usage["values"][&kid], json!([[5, 0]]));
    let granted = h
        .patch(
            &format!("/usageplans/basic/keys/{kid}/usage"),
            json!([{"op": "replace", "path": "/remaining", "value": "2"}]),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    assert_eq!(granted.body["values"][&kid][0][1], 2);
    // Hostile sizes: refused past API Gateway's 32-bit integer; the
    // largest it takes, over a huge limit, leaves every reading sound.
    let huge = h
        .patch(
            &format!("/usageplans/basic/keys/{kid}/usage"),
            json!([{"op": "replace", "path": "/remaining", "value": "9223372036854775807"}]),
        )
        .await;
    assert_error(&huge, 400, "BadRequestException");
    let limit = h
        .patch(
            "/usageplans/basic",
            json!([{"op": "replace", "path": "/quota/limit", "value": "4294967295"}]),
        )
        .await;
    assert_eq!(limit.status, StatusCode::OK, "{}", limit.body);
    let most = h
        .patch(
            &format!("/usageplans/basic/keys/{kid}/usage"),
            json!([{"op": "replace", "path": "/remaining", "value": "2147483647"}]),
        )
        .await;
    assert_eq!(most.status, StatusCode::OK, "{}", most.body);
    assert_eq!(most.body["values"][&kid][0][1], 2147483647);
    let usage = h
        .ok(
            "GET",
            &format!("/usageplans/basic/usage?keyId={kid}&startDate={today}&endDate={today}"),
            Value::Null,
        )
        .await;
    assert_eq!(usage["values"][&kid], json!([[5, 2147483647]]));
    let bad = h
        .call(
            "GET",
            "/usageplans/basic/usage?startDate=yesterday&endDate=2027-01-15",
            Value::Null,
        )
        .await;
    assert_error(&bad, 400, "BadRequestException");
}

// -- domains ----------------------------------------------------------------

#[tokio::test]
async fn domains_and_base_path_mappings() {
    let h = harness(CONFIG);
    let d = h
        .call(
            "POST",
            "/domainnames",
            json!({"domainName": "api.example.com"}),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED);
    assert_eq!(d.body["domainName"], "api.example.com");
    let m = h
        .call(
            "POST",
            "/domainnames/api.example.com/basepathmappings",
            json!({"restApiId": "petstore", "stage": "prod"}),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{}", m.body);
    assert_eq!(m.body["basePath"], "(none)");
    h.ok(
        "POST",
        "/domainnames/api.example.com/basepathmappings",
        json!({"restApiId": "petstore", "stage": "dev", "basePath": "v2"}),
    )
    .await;
    let one = h
        .ok(
            "GET",
            "/domainnames/api.example.com/basepathmappings/%28none%29",
            Value::Null,
        )
        .await;
    assert_eq!(one["stage"], "prod");
    let list = h
        .ok(
            "GET",
            "/domainnames/api.example.com/basepathmappings",
            Value::Null,
        )
        .await;
    assert_eq!(list["item"].as_array().unwrap().len(), 2);
    assert!(
        h.lifecycle
            .find_endpoint_on(&http::Method::GET, Some("api.example.com"), "/v2/pets")
            .is_some()
    );
    let del = h
        .call(
            "DELETE",
            "/domainnames/api.example.com/basepathmappings/v2",
            Value::Null,
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = h
        .call(
            "GET",
            "/domainnames/api.example.com/basepathmappings/v2",
            Value::Null,
        )
        .await;
    assert_error(&gone, 404, "NotFoundException");
    let dup = h
        .call(
            "POST",
            "/domainnames",
            json!({"domainName": "API.example.com"}),
        )
        .await;
    assert_error(&dup, 409, "ConflictException");
    let del = h
        .call("DELETE", "/domainnames/api.example.com", Value::Null)
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let list = h.ok("GET", "/domainnames", Value::Null).await;
    assert_eq!(list["item"], json!([]));
}

// -- request errors ---------------------------------------------------------

#[tokio::test]
async fn bad_requests_get_api_gateway_errors() {
    let h = harness(CONFIG);
    let a = h.call("GET", "/nowhere", Value::Null).await;
    assert_error(&a, 404, "NotFoundException");
    let a = h.call("PUT", "/apikeys", Value::Null).await;
    assert_error(&a, 405, "BadRequestException");
    let a = h
        .signed_as(AKID, SECRET, "POST", "/restapis", b"{not json", &[])
        .await;
    assert_error(&a, 400, "BadRequestException");
    let a = h
        .signed_as(AKID, SECRET, "POST", "/restapis", b"[1]", &[])
        .await;
    assert_error(&a, 400, "BadRequestException");
    let a = h.call("GET", "/restapis?limit=0", Value::Null).await;
    assert_error(&a, 400, "BadRequestException");
    let a = h.call("GET", "/restapis?position=x", Value::Null).await;
    assert_error(&a, 400, "BadRequestException");
    // A path segment that is not UTF-8 once decoded.
    let a = h.call("GET", "/restapis/%FF", Value::Null).await;
    assert_error(&a, 404, "NotFoundException");
    // Over the body limit: unsigned, refused on its headers; signed, 413
    // before the body's hash is compared.
    let big = vec![b'x'; tollgate::management::DEFAULT_MAX_BODY + 1];
    let a = h
        .send(
            Request::post("/restapis")
                .header("content-length", big.len())
                .body(Body::from(big.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = h
        .signed_as(AKID, SECRET, "POST", "/restapis", &big, &[])
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

// -- the data-plane usage endpoint -----------------------------------------

#[tokio::test]
async fn a_key_holder_reads_their_own_usage() {
    let h = harness(&format!("{CONFIG}usage_endpoint: /_usage\n"));
    let key = h
        .ok("POST", "/apikeys", json!({"name": "k", "enabled": true}))
        .await;
    let kid = key["id"].as_str().unwrap().to_owned();
    let value = key["value"].as_str().unwrap().to_owned();
    h.ok(
        "POST",
        "/usageplans/basic/keys",
        json!({"keyId": kid, "keyType": "API_KEY"}),
    )
    .await;
    let svc = h.lifecycle.service(tower::service_fn(wrapped));
    let get = |path: &str, key: Option<&str>| {
        let mut r = Request::get(path);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        svc.clone().oneshot(r.body(Body::empty()).unwrap())
    };
    for _ in 0..2 {
        assert_eq!(
            get("/prod/pets", Some(&value)).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let res = get("/_usage", Some(&value)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body,
        json!({"keyId": kid, "name": "k", "plans": [{"id": "basic",
               "quota": {"limit": 5, "period": "DAY", "used": 2, "remaining": 3}}]})
    );
    assert!(!body.to_string().contains(&value));
    // The endpoint itself is not counted against the quota.
    let again = get("/_usage", Some(&value)).await.unwrap();
    let again: Value =
        serde_json::from_slice(&again.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(again["plans"][0]["quota"]["used"], 2);
    // A grant (UpdateUsage) raises what remains; `used` stays what was
    // admitted, as GetUsage says.
    h.patch(
        &format!("/usageplans/basic/keys/{kid}/usage"),
        json!([{"op": "replace", "path": "/remaining", "value": "40"}]),
    )
    .await;
    let granted = get("/_usage", Some(&value)).await.unwrap();
    let granted: Value =
        serde_json::from_slice(&granted.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(granted["plans"][0]["quota"]["used"], 2);
    assert_eq!(granted["plans"][0]["quota"]["remaining"], 40);
    let usage = h
        .ok(
            "GET",
            "/usageplans/basic/usage?startDate=2027-01-15&endDate=2027-01-15",
            Value::Null,
        )
        .await;
    assert_eq!(usage["values"][&kid], json!([[2, 40]]));
    // No key, a wrong one, a disabled one: the data plane's 403.
    for key in [None, Some("wrong-key-0123456789abcdef")] {
        let res = get("/_usage", key).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()["x-tollgate-error-type"], "INVALID_API_KEY");
    }
    h.patch(
        &format!("/apikeys/{kid}"),
        json!([{"op": "replace", "path": "/enabled", "value": "false"}]),
    )
    .await;
    assert_eq!(
        get("/_usage", Some(&value)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Without `usage_endpoint` the path is nobody's.
    let plain = harness(CONFIG);
    let svc = plain.lifecycle.service(tower::service_fn(wrapped));
    let res = svc
        .oneshot(Request::get("/_usage").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_ne!(res.status(), StatusCode::OK);
}

#[test]
fn usage_endpoint_is_a_path() {
    for bad in ["_usage", "/", "/a?b", "/a b"] {
        let yaml = format!(
            "routes: {{ /a: [GET] }}\nstages: {{ prod: {{}} }}\nusage_endpoint: \"{bad}\"\n"
        );
        let err = Config::from_yaml_str(&yaml).unwrap_err().to_string();
        assert!(err.contains("usage_endpoint: a path"), "{bad}: {err}");
    }
}

// -- the usage page ---------------------------------------------------------

/// The text of the `data-figure="name"` cell in the row that starts with
/// `row` (`data-api="petstore" data-stage="prod"`, `data-key="ID"`).
fn cell(html: &str, row: &str, name: &str) -> String {
    let at = html.find(row).unwrap_or_else(|| panic!("no row {row}"));
    let end = html[at..].find("</tr>").unwrap() + at;
    let tag = format!("data-figure=\"{name}\">");
    let start = html[at..end]
        .find(&tag)
        .unwrap_or_else(|| panic!("no {name}"))
        + at
        + tag.len();
    let stop = html[start..].find("</td>").unwrap() + start;
    html[start..stop].to_owned()
}

#[tokio::test]
async fn the_usage_page_shows_known_traffic_behind_a_basic_login() {
    use tollgate::management::UsageBoard;
    use tollgate::usage::Reporter;
    let board = UsageBoard::new();
    let clock = ManualClock::new();
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
    let config = format!(
        "{CONFIG}keys:\n  - {{ name: \"<b>eve</b>\", value: eve-key-0123456789abcdef, plans: [basic] }}\n"
    );
    let lifecycle = Gateway::builder(Config::from_yaml_str(&config).unwrap())
        .clock(clock.clone())
        .reporter(Reporter::new(std::sync::Arc::new(board.clone())))
        .build_lifecycle()
        .unwrap();
    let h = Harness {
        management: lifecycle.management().usage_board(board.clone()),
        lifecycle,
        clock,
    };
    let svc = h
        .lifecycle
        .service(tower::service_fn(|req: Request<Body>| async move {
            let status = if req.uri().path().ends_with("/boom") {
                502
            } else {
                200
            };
            let mut res = http::Response::new(Body::from("ok"));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, std::convert::Infallible>(res)
        }));
    let send = |path: &str, key: Option<&str>| {
        let mut r = Request::get(path);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        svc.clone().oneshot(r.body(Body::empty()).unwrap())
    };
    let key = "eve-key-0123456789abcdef";
    // prod: 5 admitted with the key, then 2 over the quota of 5; 1 without a key.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            send("/prod/pets", Some(key))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_eq!(send("/prod/pets", None).await.unwrap().status(), 403);
    // dev: 3 fine, 1 the integration fails.
    for _ in 0..3 {
        send("/dev/pets", None).await.unwrap();
    }
    assert_eq!(send("/dev/pets/boom", None).await.unwrap().status(), 502);
    h.lifecycle.shutdown_reporters().await;

    let page = |auth: Option<String>| {
        let mut r = Request::get("/");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        h.send(r.body(Body::empty()).unwrap())
    };
    use base64::Engine as _;
    let basic = |user: &str, pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let none = page(None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let wrong = page(Some(basic(AKID, "guess"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = page(Some(basic("AKIDNOBODY", SECRET))).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let a = page(Some(basic(AKID, SECRET))).await;
    assert_eq!(a.status, StatusCode::OK);
    let html = String::from_utf8(a.raw).unwrap();
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external fetch"
    );
    let prod = r#"data-api="petstore" data-stage="prod""#;
    assert_eq!(cell(&html, prod, "requests"), "8");
    assert_eq!(cell(&html, prod, "4xx"), "3");
    assert_eq!(cell(&html, prod, "429"), "QUOTA_EXCEEDED 2");
    assert_eq!(cell(&html, prod, "5xx"), "0");
    let dev = r#"data-api="petstore" data-stage="dev""#;
    assert_eq!(cell(&html, dev, "requests"), "4");
    assert_eq!(cell(&html, dev, "5xx"), "1");
    assert_eq!(cell(&html, dev, "cache-hit-ratio"), "–");
    assert!(cell(&html, dev, "p50").parse::<f64>().is_ok());
    // The key: escaped name, its plan, 5 used of 5, seen at the clock's time.
    let id = h.lifecycle.key_manager().list().await.unwrap()[0]
        .id
        .to_string();
    let row = format!(r#"data-key="{id}""#);
    assert!(html.contains("&lt;b&gt;eve&lt;/b&gt;"));
    assert!(!html.contains("<b>eve"));
    assert_eq!(cell(&html, &row, "plan"), "basic");
    assert_eq!(cell(&html, &row, "quota-used"), "5 of 5");
    assert_eq!(cell(&html, &row, "quota-remaining"), "0");
    assert_eq!(cell(&html, &row, "key-requests"), "7");
    assert_eq!(cell(&html, &row, "last-seen"), "2027-01-15 08:00:00 UTC");
    assert!(!html.contains(SECRET) && !html.contains(key));

    // Renamed, the API's stages still show what they served under the
    // deployment's name; a grant raises what remains, not what was used
    // (as GetUsage counts it).
    let renamed = h
        .patch(
            "/restapis/petstore",
            json!([{"op": "replace", "path": "/name", "value": "shop"}]),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let granted = h
        .patch(
            &format!("/usageplans/basic/keys/{id}/usage"),
            json!([{"op": "replace", "path": "/remaining", "value": "10"}]),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let html = String::from_utf8(page(Some(basic(AKID, SECRET))).await.raw).unwrap();
    assert_eq!(cell(&html, prod, "requests"), "8");
    assert_eq!(cell(&html, &row, "quota-used"), "5 of 5");
    assert_eq!(cell(&html, &row, "quota-remaining"), "10");
}

#[tokio::test]
async fn every_change_is_a_notice_to_the_usage_sinks_without_secrets() {
    use tollgate::management::UsageBoard;
    use tollgate::usage::{Notice, Reporter};
    let board = UsageBoard::new();
    let clock = ManualClock::new();
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
    let lifecycle = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .reporter(Reporter::new(std::sync::Arc::new(board.clone())))
        .build_lifecycle()
        .unwrap();
    let h = Harness {
        management: lifecycle.management().usage_board(board.clone()),
        lifecycle,
        clock,
    };
    let key = h
        .ok("POST", "/apikeys", json!({"name": "k", "enabled": true}))
        .await;
    h.patch(
        "/restapis/petstore/stages/prod",
        json!([{"op": "replace", "path": "/variables/color", "value": "red"}]),
    )
    .await;
    // Refused changes are recorded too; reads are not.
    h.call("DELETE", "/restapis/nope", Value::Null).await;
    h.ok("GET", "/restapis", Value::Null).await;
    h.lifecycle.shutdown_reporters().await;
    let changes: Vec<(String, String, String, u16)> = board
        .notices()
        .into_iter()
        .map(|n| match n {
            Notice::Change(c) => {
                assert_eq!(c.time_unix_nanos, NOW * 1_000_000_000);
                assert_eq!(c.access_key_id, AKID);
                (c.principal, c.method, c.path, c.status)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("ops".into(), "POST".into(), "/apikeys".into(), 201),
            (
                "ops".into(),
                "PATCH".into(),
                "/restapis/petstore/stages/prod".into(),
                200
            ),
            ("ops".into(), "DELETE".into(), "/restapis/nope".into(), 404),
        ]
    );
    let shown = format!("{:?}", board.notices());
    assert!(!shown.contains(key["value"].as_str().unwrap()));
    assert!(!shown.contains(SECRET));
}

// -- UpdateRestApi, resources, methods, integrations, gateway responses -----

#[tokio::test]
async fn update_rest_api_renames_and_describes() {
    let h = harness(CONFIG);
    let renamed = h
        .patch(
            "/restapis/petstore",
            json!([
                {"op": "replace", "path": "/name", "value": "shop"},
                {"op": "replace", "path": "/description", "value": "Pets for sale"},
            ]),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "shop");
    assert_eq!(renamed.body["description"], "Pets for sale");
    let got = h.ok("GET", "/restapis/petstore", Value::Null).await;
    assert_eq!(got["name"], "shop");
    assert_eq!(got["description"], "Pets for sale");
    // The served deployment keeps the name it was made with...
    let export = h
        .ok(
            "GET",
            "/restapis/petstore/stages/prod/exports/oas30",
            Value::Null,
        )
        .await;
    assert_eq!(export["info"]["title"], "petstore");
    // ...the next one takes the new name and the description
    // (`info.description`)...
    h.ok(
        "POST",
        "/restapis/petstore/deployments",
        json!({"stageName": "dev"}),
    )
    .await;
    let export = h
        .ok(
            "GET",
            "/restapis/petstore/stages/dev/exports/oas30",
            Value::Null,
        )
        .await;
    assert_eq!(export["info"]["title"], "shop");
    assert_eq!(export["info"]["description"], "Pets for sale");
    // ...and while a stage serves the old name, no other API may take it.
    let taken = h
        .call("POST", "/restapis", json!({"name": "petstore"}))
        .await;
    assert_error(&taken, 409, "ConflictException");
    h.ok("POST", "/restapis", json!({"name": "orders"})).await;
    let clash = h
        .patch(
            "/restapis/petstore",
            json!([{"op": "replace", "path": "/name", "value": "orders"}]),
        )
        .await;
    assert_error(&clash, 409, "ConflictException");
    let removed = h
        .patch(
            "/restapis/petstore",
            json!([{"op": "remove", "path": "/description"}]),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert!(
        removed.body.get("description").is_none(),
        "{}",
        removed.body
    );
    let bad = h
        .patch(
            "/restapis/petstore",
            json!([{"op": "replace", "path": "/policy", "value": "x"}]),
        )
        .await;
    assert_error(&bad, 400, "BadRequestException");
    let empty = h
        .patch(
            "/restapis/petstore",
            json!([{"op": "replace", "path": "/name", "value": ""}]),
        )
        .await;
    assert_error(&empty, 400, "BadRequestException");
}

/// The id of the resource at `path`.
async fn resource_id(h: &Harness, api: &str, path: &str) -> String {
    let list = h
        .ok("GET", &format!("/restapis/{api}/resources"), Value::Null)
        .await;
    list["item"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no resource {path}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn resources_methods_and_integrations_are_read() {
    let h = harness(CONFIG);
    let a = h
        .signed_as(
            AKID,
            SECRET,
            "POST",
            "/restapis?mode=import",
            OPENAPI.replace("VERSION", "7").as_bytes(),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let api = a.body["id"].as_str().unwrap().to_owned();
    let r = resource_id(&h, &api, "/hello").await;
    let resource = h
        .ok(
            "GET",
            &format!("/restapis/{api}/resources/{r}"),
            Value::Null,
        )
        .await;
    assert_eq!(resource["path"], "/hello");
    assert_eq!(resource["resourceMethods"]["GET"]["httpMethod"], "GET");
    let method = h
        .ok(
            "GET",
            &format!("/restapis/{api}/resources/{r}/methods/GET"),
            Value::Null,
        )
        .await;
    assert_eq!(method["httpMethod"], "GET");
    assert_eq!(method["authorizationType"], "NONE");
    assert_eq!(method["apiKeyRequired"], false);
    assert_eq!(method["methodIntegration"]["type"], "MOCK");
    let integration = h
        .ok(
            "GET",
            &format!("/restapis/{api}/resources/{r}/methods/GET/integration"),
            Value::Null,
        )
        .await;
    assert_eq!(integration["type"], "MOCK");
    assert_eq!(integration["passthroughBehavior"], "WHEN_NO_MATCH");
    assert_eq!(
        integration["integrationResponses"]["200"]["responseTemplates"]["application/json"],
        r#"{"v": 7}"#
    );
    assert_eq!(
        integration["requestTemplates"]["application/json"],
        r#"{"statusCode": 200}"#
    );
    // A method the resource does not have, a resource the API does not.
    let post = h
        .call(
            "GET",
            &format!("/restapis/{api}/resources/{r}/methods/POST"),
            Value::Null,
        )
        .await;
    assert_error(&post, 404, "NotFoundException");
    let nowhere = h
        .call(
            "GET",
            &format!("/restapis/{api}/resources/0000000000"),
            Value::Null,
        )
        .await;
    assert_error(&nowhere, 404, "NotFoundException");
    // The wrapped service answers the petstore's methods: a method, no
    // integration.
    let pets = resource_id(&h, "petstore", "/pets").await;
    let m = h
        .ok(
            "GET",
            &format!("/restapis/petstore/resources/{pets}/methods/POST"),
            Value::Null,
        )
        .await;
    assert_eq!(m["httpMethod"], "POST");
    assert!(m.get("methodIntegration").is_none(), "{m}");
    let none = h
        .call(
            "GET",
            &format!("/restapis/petstore/resources/{pets}/methods/POST/integration"),
            Value::Null,
        )
        .await;
    assert_error(&none, 404, "NotFoundException");
}

async fn unknown_path_on_dev(h: &Harness) -> http::Response<Body> {
    let svc = h.lifecycle.service(tower::service_fn(wrapped));
    svc.oneshot(
        Request::get("/dev/nowhere")
            .header("host", "petstore.execute-api.localhost")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn gateway_responses_are_read_put_deployed_and_deleted() {
    let h = harness(CONFIG);
    let all = h
        .ok("GET", "/restapis/petstore/gatewayresponses", Value::Null)
        .await;
    let throttled = all["item"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["responseType"] == "THROTTLED")
        .cloned()
        .unwrap();
    assert_eq!(throttled["statusCode"], "429");
    assert_eq!(throttled["defaultResponse"], true);
    assert_eq!(
        unknown_path_on_dev(&h).await.status(),
        StatusCode::NOT_FOUND
    );

    let put = h
        .call(
            "PUT",
            "/restapis/petstore/gatewayresponses/RESOURCE_NOT_FOUND",
            json!({
                "statusCode": "410",
                "responseParameters": {"gatewayresponse.header.x-gone": "'for good'"},
                "responseTemplates": {"application/json": "{\"gone\": true}"},
            }),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    assert_eq!(put.body["defaultResponse"], false);
    let got = h
        .ok(
            "GET",
            "/restapis/petstore/gatewayresponses/RESOURCE_NOT_FOUND",
            Value::Null,
        )
        .await;
    assert_eq!(got["statusCode"], "410");
    assert_eq!(
        got["responseParameters"]["gatewayresponse.header.x-gone"],
        "'for good'"
    );
    // A definition change: served once deployed.
    assert_eq!(
        unknown_path_on_dev(&h).await.status(),
        StatusCode::NOT_FOUND
    );
    h.ok(
        "POST",
        "/restapis/petstore/deployments",
        json!({"stageName": "dev"}),
    )
    .await;
    let res = unknown_path_on_dev(&h).await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert_eq!(res.headers()["x-gone"], "for good");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"gone": true}"#);

    let del = h
        .call(
            "DELETE",
            "/restapis/petstore/gatewayresponses/RESOURCE_NOT_FOUND",
            Value::Null,
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let back = h
        .ok(
            "GET",
            "/restapis/petstore/gatewayresponses/RESOURCE_NOT_FOUND",
            Value::Null,
        )
        .await;
    assert_eq!(back["defaultResponse"], true);
    assert_eq!(back["statusCode"], "404");

    let unknown = h
        .call(
            "GET",
            "/restapis/petstore/gatewayresponses/WAF_FILTERED",
            Value::Null,
        )
        .await;
    assert_error(&unknown, 404, "NotFoundException");
    let bad = h
        .call(
            "PUT",
            "/restapis/petstore/gatewayresponses/THROTTLED",
            json!({"statusCode": "99"}),
        )
        .await;
    assert_error(&bad, 400, "BadRequestException");
    let bad_param = h
        .call(
            "PUT",
            "/restapis/petstore/gatewayresponses/THROTTLED",
            json!({"responseParameters": {"method.response.header.x": "'y'"}}),
        )
        .await;
    assert_error(&bad_param, 400, "BadRequestException");
}

#[tokio::test]
async fn answers_carry_api_gateway_details() {
    let h = harness(
        r#"
name: petstore
routes: { /pets: [GET] }
stages:
  prod:
    methods:
      /pets/GET: { cache: { ttl: 60, unauthorized: FAIL_WITH_403 } }
responses:
  THROTTLED:
    headers: { cache-control: no-store, x-origin: method.request.header.Origin, x-quoted: "'as is'" }
management:
  credentials:
    - { access_key_id: AKIDADMIN, secret_access_key: admin-secret-example }
  region: eu-west-1
"#,
    );
    // A request id on every answer, refusals included, as botocore reads it.
    let a = h
        .send(Request::get("/restapis").body(Body::empty()).unwrap())
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let res = h
        .management
        .clone()
        .oneshot(Request::get("/restapis").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let id = res.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "{id}");
    // The cache settings as configured.
    let stage = h
        .ok("GET", "/restapis/petstore/stages/prod", Value::Null)
        .await;
    let m = &stage["methodSettings"]["~1pets/GET"];
    assert_eq!(m["cachingEnabled"], true);
    assert_eq!(m["cacheTtlInSeconds"], 60);
    assert_eq!(
        m["unauthorizedCacheControlHeaderStrategy"], "FAIL_WITH_403",
        "{stage}"
    );
    // Plain header text is a literal: quoted as API Gateway writes one.
    let r = h
        .ok(
            "GET",
            "/restapis/petstore/gatewayresponses/THROTTLED",
            Value::Null,
        )
        .await;
    let p = &r["responseParameters"];
    assert_eq!(p["gatewayresponse.header.cache-control"], "'no-store'");
    assert_eq!(
        p["gatewayresponse.header.x-origin"],
        "method.request.header.Origin"
    );
    assert_eq!(p["gatewayresponse.header.x-quoted"], "'as is'");
    // Unknown identifiers in API Gateway's words.
    for (path, message) in [
        ("/restapis/nope", "Invalid API identifier specified"),
        (
            "/restapis/nope/stages/prod",
            "Invalid API identifier specified",
        ),
        (
            "/restapis/petstore/stages/nope",
            "Invalid stage identifier specified",
        ),
        (
            "/restapis/petstore/deployments/nope",
            "Invalid Deployment identifier specified",
        ),
    ] {
        let a = h.call("GET", path, Value::Null).await;
        assert_error(&a, 404, "NotFoundException");
        assert_eq!(a.body["message"], message, "{path}");
    }
    let a = h
        .call("DELETE", "/restapis/petstore/stages/nope", Value::Null)
        .await;
    assert_eq!(a.body["message"], "Invalid stage identifier specified");
}

#[tokio::test]
async fn an_unsigned_call_is_refused_before_its_body_is_read() {
    let h = harness(CONFIG);
    // A body that never comes: reading it would wait for the 10 s body
    // timeout (and, with a real client, hold up to 10 MiB meanwhile).
    for auth in [
        None,
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDNOBODY/20270115/eu-west-1/apigateway/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        ),
    ] {
        let never = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >());
        let mut req = Request::post("/restapis")
            .header("host", "admin.local")
            .header("content-length", "10485000")
            .header("x-amz-date", "20270115T080000Z");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = tokio::time::timeout(
            Duration::from_secs(2),
            h.management.clone().oneshot(req.body(never).unwrap()),
        )
        .await
        .expect("answered without reading the body")
        .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{auth:?}");
    }
}

#[tokio::test]
async fn hostile_changes_are_refused_whole_and_harmless() {
    let h = harness(CONFIG);
    let svc = h.lifecycle.service(tower::service_fn(wrapped));
    let dev = || {
        svc.clone().oneshot(
            Request::get("/dev/pets")
                .header("host", "127.0.0.1:8080")
                .body(Body::empty())
                .unwrap(),
        )
    };
    assert_eq!(dev().await.unwrap().status(), StatusCode::OK);
    // A second API with nothing deployed does not take the first's
    // path-form traffic.
    h.ok("POST", "/restapis", json!({"name": "scratch"})).await;
    assert_eq!(dev().await.unwrap().status(), StatusCode::OK);
    // An address is not a domain name.
    for name in ["127.0.0.1", "::1", "10.0.0.300"] {
        let a = h
            .call("POST", "/domainnames", json!({"domainName": name}))
            .await;
        assert_error(&a, 400, "BadRequestException");
    }
    assert_eq!(dev().await.unwrap().status(), StatusCode::OK);
    // A patch with one bad operation changes nothing.
    let key = h
        .ok("POST", "/apikeys", json!({"name": "k", "enabled": true}))
        .await;
    let kid = key["id"].as_str().unwrap().to_owned();
    let half = h
        .patch(
            &format!("/apikeys/{kid}"),
            json!([
                {"op": "replace", "path": "/name", "value": "renamed"},
                {"op": "replace", "path": "/enabled", "value": "yes"},
            ]),
        )
        .await;
    assert_error(&half, 400, "BadRequestException");
    let got = h.ok("GET", &format!("/apikeys/{kid}"), Value::Null).await;
    assert_eq!(got["name"], "k");
    // Control characters stay out of key names, whichever way they come.
    let a = h
        .call("POST", "/apikeys", json!({"name": "a\u{1b}[31mred"}))
        .await;
    assert_error(&a, 400, "BadRequestException");
    let a = h
        .patch(
            &format!("/apikeys/{kid}"),
            json!([{"op": "replace", "path": "/name", "value": "a\u{0}b"}]),
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let csv = "name,key,enabled\nbad\u{7}name,abcdefghijklmnopqrstuvwxyz123456,true\n";
    let a = h
        .signed_as(
            AKID,
            SECRET,
            "POST",
            "/apikeys?mode=import&format=csv",
            csv.as_bytes(),
            &[],
        )
        .await;
    assert_error(&a, 400, "BadRequestException");
    let keys = h.ok("GET", "/apikeys", Value::Null).await;
    assert_eq!(keys["item"].as_array().unwrap().len(), 1, "{keys}");
    // A plan's name is its id, a path segment: no `..`, no `/`.
    for name in ["..", ".", "a/b"] {
        let a = h.call("POST", "/usageplans", json!({"name": name})).await;
        assert_error(&a, 400, "BadRequestException");
    }
}

#[tokio::test]
async fn the_usage_page_takes_any_case_and_forbids_framing() {
    use base64::Engine as _;
    let h = harness(CONFIG);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{AKID}:{SECRET}"));
    for scheme in ["Basic", "BASIC", "basic"] {
        let res = h
            .management
            .clone()
            .oneshot(
                Request::get("/")
                    .header("authorization", format!("{scheme} {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{scheme}");
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    // A password that is a prefix of the secret, or longer, is refused.
    for pass in [&SECRET[..5], &format!("{SECRET}x")] {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{AKID}:{pass}"));
        let res = h
            .management
            .clone()
            .oneshot(
                Request::get("/")
                    .header("authorization", format!("Basic {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
