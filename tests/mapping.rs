//! Request and response mapping: parameter sources and targets, template
//! helpers, passthrough, integration responses, limits and hostile input.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::json_of;
use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
use tollgate::mapping::IntegrationPath;
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Config, Gateway};
use tower::{Service, ServiceExt, service_fn};

/// A backend that answers with what it received.
fn echo() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        let path = req.extensions().get::<IntegrationPath>().map(|p| {
            p.0.iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
        });
        let uri = req.uri().to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let v = json!({
            "uri": uri,
            "headers": headers,
            "path": path,
            "body": String::from_utf8_lossy(&body),
        });
        Ok::<_, Infallible>(Response::new(Body::from(v.to_string())))
    })
}

fn gateway(yaml: &str) -> Gateway {
    Gateway::builder(Config::from_yaml_str(yaml).unwrap())
        .authorizer("who", |req: AuthorizerRequest| async move {
            let name = req
                .identity("header.Authorization")
                .unwrap_or("nobody")
                .to_owned();
            Ok(Verdict::allow(name).with_context("tier", "gold"))
        })
        .build()
        .unwrap()
}

/// Sends `req` through `gw` in front of `echo()`.
async fn send(gw: &Gateway, req: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    support::send(gw.service(echo()), req).await
}

const PARAMS: &str = r#"
routes:
  /pets/{petId}: [GET]
stages:
  prod:
    variables: { tier: gold }
    settings: { api_key_required: true, authorization: authorizer, authorizer: who }
    methods:
      /pets/{petId}/GET:
        mapping:
          request:
            set:
              integration.request.header.x-pet: method.request.path.petId
              integration.request.header.x-type: method.request.querystring.type
              integration.request.header.x-agent: method.request.header.user-agent
              integration.request.header.x-tier: stageVariables.tier
              integration.request.header.x-request-id: context.requestId
              integration.request.header.x-stage: context.stage
              integration.request.header.x-resource: context.resourcePath
              integration.request.header.x-method: context.httpMethod
              integration.request.header.x-ip: context.identity.sourceIp
              integration.request.header.x-key: context.identity.apiKeyId
              integration.request.header.x-principal: context.authorizer.principalId
              integration.request.header.x-literal: "'hello world'"
              integration.request.header.x-absent: method.request.header.x-nothing
              integration.request.querystring.kind: method.request.querystring.type
              integration.request.path.id: method.request.path.petId
            add:
              integration.request.header.x-multi: "'second'"
            remove: [integration.request.querystring.type, integration.request.header.x-drop, integration.request.path.petId]
            rename:
              integration.request.header.x-old: integration.request.header.x-new
              integration.request.querystring.page: integration.request.querystring.p
plans:
  p: { stages: [prod] }
keys:
  - { name: k, value: key-0123456789abcdefghij, plans: [p] }
authorizers:
  who: { identity_sources: [header.Authorization], ttl: 0 }
"#;

#[tokio::test]
async fn every_parameter_source_and_target_maps() {
    let gw = gateway(PARAMS);
    let key_id = gw.key_manager().list().await.unwrap()[0].id.to_string();
    let mut req = Request::get("/prod/pets/42?type=dog&page=3&keep=1")
        .header("x-api-key", "key-0123456789abcdefghij")
        .header("authorization", "alice")
        .header("user-agent", "curl/8")
        .header("x-drop", "gone")
        .header("x-old", "moved")
        .header("x-multi", "first")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::from(([192, 0, 2, 7], 5555))));
    let (status, headers, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    let h = &v["headers"];
    assert_eq!(h["x-pet"], "42");
    assert_eq!(h["x-type"], "dog");
    assert_eq!(h["x-agent"], "curl/8");
    assert_eq!(h["x-tier"], "gold");
    assert_eq!(
        h["x-request-id"],
        headers["x-amzn-requestid"].to_str().unwrap()
    );
    assert_eq!(h["x-stage"], "prod");
    assert_eq!(h["x-resource"], "/pets/{petId}");
    assert_eq!(h["x-method"], "GET");
    assert_eq!(h["x-ip"], "192.0.2.7");
    assert_eq!(h["x-key"], key_id.as_str());
    assert_eq!(h["x-principal"], "alice");
    assert_eq!(h["x-literal"], "hello world");
    assert!(h.get("x-absent").is_none(), "a missing source sets nothing");
    assert!(h.get("x-drop").is_none());
    assert!(h.get("x-old").is_none());
    assert_eq!(h["x-new"], "moved");
    // `add` appends: the echo shows the first value of a header, so count them below.
    let uri = v["uri"].as_str().unwrap();
    assert!(uri.starts_with("/pets/42?"), "{uri}");
    let query: Vec<&str> = uri.split_once('?').unwrap().1.split('&').collect();
    assert!(query.contains(&"kind=dog"), "{query:?}");
    assert!(query.contains(&"p=3"), "{query:?}");
    assert!(query.contains(&"keep=1"), "{query:?}");
    assert!(
        !query
            .iter()
            .any(|q| q.starts_with("type=") || q.starts_with("page=")),
        "{query:?}"
    );
    assert_eq!(v["path"], json!({ "id": "42" }));
}

#[tokio::test]
async fn add_appends_a_header_value() {
    let yaml = r#"
routes: { /x: [GET] }
stages:
  prod:
    settings:
      mapping: { request: { add: { integration.request.header.x-multi: "'second'" } } }
"#;
    let gw = gateway(yaml);
    let inner = service_fn(|req: Request<Body>| async move {
        let all: Vec<String> = req
            .headers()
            .get_all("x-multi")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        Ok::<_, Infallible>(Response::new(Body::from(all.join(","))))
    });
    let req = Request::get("/prod/x")
        .header("x-multi", "first")
        .body(Body::empty())
        .unwrap();
    let res = gw.service(inner).oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "first,second");
}

const TEMPLATES: &str = r#"
routes:
  /pets/{petId}: [POST]
stages:
  prod:
    variables: { tier: gold }
    methods:
      /pets/{petId}/POST:
        mapping:
          request:
            templates:
              application/json: |-
                {"first": {{ input.json('$.pets[0]') }},
                 "count": {{ input.path('$.pets') | length }},
                 "type": "{{ input.path('$.pets[0].type') }}",
                 "types": {{ input.json('$.pets[*].type') }},
                 "missing": {{ input.json('$.nope') }},
                 "petId": "{{ input.params('petId') }}",
                 "q": "{{ input.params('q') }}",
                 "h": "{{ input.params('x-h') }}",
                 "all_query": "{{ input.params().querystring.q }}",
                 "stage": "{{ context.stage }}", "resource": "{{ context.resource_path }}",
                 "method": "{{ context.http_method }}", "request_id": "{{ context.request_id }}",
                 "tier": "{{ stage_variables.tier }}",
                 "url": "{{ util.url_encode('a b&c=d') }}",
                 "unurl": "{{ util.url_decode('a+b%26c%3Dd') }}",
                 "b64": "{{ util.base64_encode('hello') }}",
                 "unb64": "{{ util.base64_decode('aGVsbG8=') }}",
                 "parsed": {{ util.parse_json('{"a": [1, 2]}').a[1] }},
                 "body_len": {{ input.body | length }}}
              text/plain: "plain: {{ input.body }} js: {{ util.escape_javascript(input.body) }}"
"#;

#[tokio::test]
async fn template_helpers_give_api_gateway_s_values() {
    let gw = gateway(TEMPLATES);
    // The pet list of API Gateway's mapping template examples.
    let pets = r#"{"pets": [{"id": 1, "type": "dog", "price": 249.99}, {"id": 2, "type": "cat", "price": 124.99}, {"id": 3, "type": "fish", "price": 0.99}], "note": "it's \"fine\"\n/ok"}"#;
    let req = Request::post("/prod/pets/7?q=search")
        .header("content-type", "application/json; charset=utf-8")
        .header("x-h", "hv")
        .body(Body::from(pets))
        .unwrap();
    let (status, headers, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let echoed = json_of(&body);
    let v: Value = serde_json::from_str(echoed["body"].as_str().unwrap()).unwrap();
    assert_eq!(v["first"], json!({"id": 1, "type": "dog", "price": 249.99}));
    assert_eq!(v["count"], 3);
    assert_eq!(v["type"], "dog");
    assert_eq!(v["types"], json!(["dog", "cat", "fish"]));
    assert_eq!(v["missing"], Value::Null);
    assert_eq!(v["petId"], "7");
    assert_eq!(v["q"], "search");
    assert_eq!(v["h"], "hv");
    assert_eq!(v["all_query"], "search");
    assert_eq!(v["stage"], "prod");
    assert_eq!(v["resource"], "/pets/{petId}");
    assert_eq!(v["method"], "POST");
    assert_eq!(
        v["request_id"],
        headers["x-amzn-requestid"].to_str().unwrap()
    );
    assert_eq!(v["tier"], "gold");
    assert_eq!(v["url"], "a+b%26c%3Dd");
    assert_eq!(v["unurl"], "a b&c=d");
    assert_eq!(v["b64"], "aGVsbG8=");
    assert_eq!(v["unb64"], "hello");
    assert_eq!(v["parsed"], 2);
    assert_eq!(v["body_len"], pets.len());

    // Another content type, another template.
    let req = Request::post("/prod/pets/7")
        .header("content-type", "text/plain")
        .body(Body::from("it's \"fine\"\n/ok"))
        .unwrap();
    let (_, _, body) = send(&gw, req).await;
    // escapeJavaScript: quotes, `/` and the newline escaped.
    assert_eq!(
        json_of(&body)["body"],
        "plain: it's \"fine\"\n/ok js: it\\'s \\\"fine\\\"\\n\\/ok"
    );
}

fn passthrough(rule: &str, with_templates: bool) -> String {
    let templates = if with_templates {
        r#"templates: { application/json: "mapped" },"#
    } else {
        ""
    };
    format!(
        "routes: {{ /x: [POST] }}\nstages:\n  prod:\n    settings:\n      mapping: {{ request: {{ {templates} passthrough: {rule} }} }}\n"
    )
}

async fn post(gw: &Gateway, ctype: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::post("/prod/x");
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    // A JSON string: a body every content type accepts.
    let (status, headers, body) = send(gw, req.body(Body::from("\"raw\"")).unwrap()).await;
    if status == StatusCode::OK {
        (status, json_of(&body)["body"].as_str().unwrap().to_owned())
    } else {
        (
            status,
            headers["x-tollgate-error-type"]
                .to_str()
                .unwrap()
                .to_owned(),
        )
    }
}

#[tokio::test]
async fn passthrough_rules_and_415() {
    let ok = |s: &str| (StatusCode::OK, s.to_owned());
    let refused = (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE".to_owned(),
    );

    let gw = gateway(&passthrough("when_no_match", true));
    assert_eq!(post(&gw, Some("application/json")).await, ok("mapped"));
    assert_eq!(
        post(&gw, None).await,
        ok("mapped"),
        "no Content-Type is JSON"
    );
    assert_eq!(post(&gw, Some("text/plain")).await, ok("\"raw\""));

    let gw = gateway(&passthrough("when_no_templates", true));
    assert_eq!(post(&gw, Some("application/json")).await, ok("mapped"));
    assert_eq!(post(&gw, Some("text/plain")).await, refused);
    let gw = gateway(&passthrough("when_no_templates", false));
    assert_eq!(post(&gw, Some("text/plain")).await, ok("\"raw\""));

    let gw = gateway(&passthrough("never", true));
    assert_eq!(post(&gw, Some("application/json")).await, ok("mapped"));
    assert_eq!(post(&gw, Some("text/plain")).await, refused);
    let gw = gateway(&passthrough("never", false));
    assert_eq!(post(&gw, Some("application/json")).await, refused);
}

const RESPONSES: &str = r#"
routes: { /x: [GET] }
stages:
  prod:
    settings:
      mapping:
        responses:
          - selection_pattern: "4\\d\\d"
            status: 400
            headers: { x-from: integration.response.header.x-backend, x-literal: "'yes'" }
            templates:
              application/json: '{"error": {{ input.json("$.message") }}, "was": "{{ input.params("code") }}"}'
              text/plain: 'error: {{ input.path("$.message") }}'
          - selection_pattern: "5.."
            status: 503
          - templates: { application/json: '{"ok": {{ input.json("$") }}}' }
"#;

fn backend()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let code: u16 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("code="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(200);
        let mut res = Response::new(Body::from(r#"{"message": "nope"}"#));
        *res.status_mut() = StatusCode::from_u16(code).unwrap();
        res.headers_mut().insert("x-backend", "b1".parse().unwrap());
        Ok::<_, Infallible>(res)
    })
}

async fn get_code(
    gw: &Gateway,
    code: u16,
    accept: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(format!("/prod/x?code={code}"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let (status, headers, body) =
        support::send(gw.service(backend()), req.body(Body::empty()).unwrap()).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn backend_status_selects_the_integration_response() {
    let gw = gateway(RESPONSES);
    let (status, headers, body) = get_code(&gw, 404, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-from"], "b1");
    assert_eq!(headers["x-literal"], "yes");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"error": "nope", "was": "404"}"#);
    // The Accept header picks the template.
    let (_, headers, body) = get_code(&gw, 409, Some("text/html, text/plain;q=0.9")).await;
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(body, "error: nope");
    // 5xx: another rule, status only, body untouched.
    let (status, _, body) = get_code(&gw, 502, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"message": "nope"}"#);
    // Anything else: the default.
    let (status, headers, body) = get_code(&gw, 201, None).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the default keeps the backend status"
    );
    assert!(headers.get("x-from").is_none());
    assert_eq!(body, r#"{"ok": {"message":"nope"}}"#);
    // A pattern matches the whole status: "4\d\d" does not select 4000-style prefixes.
    let (status, _, _) = get_code(&gw, 200, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn config_errors_name_the_template_and_line() {
    let yaml = r#"
routes: { /x: [POST] }
stages:
  prod:
    methods:
      /x/POST:
        mapping:
          request:
            set: { integration.request.cookie.a: "'x'", integration.request.header.b: method.request.body }
            templates:
              application/json: "line one\n{% for x in %}\n"
          responses:
            - { selection_pattern: "(", status: 42 }
            - {}
            - {}
"#;
    let err = Config::from_yaml_str(yaml)
        .and_then(Gateway::new)
        .unwrap_err()
        .to_string();
    let base = r#"stages.prod.methods."/x/POST".mapping"#;
    for expected in [
        format!(r#"{base}.request.templates."application/json": line 2: "#),
        format!(
            "{base}.request.set.integration.request.cookie.a: `integration.request.cookie.a` is not a target"
        ),
        format!(
            "{base}.request.set.integration.request.header.b: `method.request.body` is not a source"
        ),
        format!("{base}.responses[0].selection_pattern: invalid regex"),
        format!("{base}.responses[0].status: must be an HTTP status, 100 to 599 (got 42)"),
        format!("{base}.responses: at most one response without `selection_pattern`"),
    ] {
        assert!(err.contains(&expected), "`{expected}` in:\n{err}");
    }
}

const HOSTILE: &str = r#"
routes: { /x: [POST] }
stages:
  prod:
    settings:
      mapping:
        request:
          templates:
            application/json: '{{ input.json("$") }}'
            text/loop: '{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}'
            text/big: '{% for i in range(100000) %}{{ input.body }}{% endfor %}'
            text/broken: '{{ input.json("$[") }}'
mapping_limits: { max_body: 1MiB, max_output: 64KiB, fuel: 200000 }
"#;

async fn hostile(gw: &Gateway, ctype: &str, body: Body) -> (StatusCode, String, String) {
    let req = Request::post("/prod/x")
        .header("content-type", ctype)
        .body(body)
        .unwrap();
    let (status, headers, body) = send(gw, req).await;
    (
        status,
        support::error_type(&headers),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_naming_the_position() {
    let gw = gateway(HOSTILE);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, kind, body) = hostile(&gw, "application/json", Body::from(deep)).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::BAD_REQUEST, "BAD_REQUEST_BODY")
    );
    assert!(body.contains("line 1 column"), "{body}");
    let (status, kind, body) = hostile(&gw, "application/json", Body::from("{\"a\": ")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::BAD_REQUEST, "BAD_REQUEST_BODY")
    );
    assert!(body.contains("line 1 column 6"), "{body}");
}

#[tokio::test]
async fn runaway_templates_are_a_500_that_says_nothing_more() {
    let gw = gateway(HOSTILE);
    for ctype in ["text/loop", "text/big", "text/broken"] {
        let (status, kind, body) = hostile(&gw, ctype, Body::from("0123456789")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{ctype}");
        assert_eq!(kind, "DEFAULT_5XX");
        assert_eq!(body, r#"{"message":"Internal server error"}"#, "{ctype}");
    }
}

#[tokio::test]
async fn a_100_mib_body_is_a_413_without_reading_it_all() {
    let gw = gateway(HOSTILE);
    // Announced by its length: refused before a byte is read.
    let big = Body::from(vec![b'x'; 100 << 20]);
    let (status, kind, _) = hostile(&gw, "application/json", big).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_TOO_LARGE")
    );
    // Streamed without a length: reading stops at the limit.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = read.clone();
    let chunks = futures_util::stream::iter((0..100).map(move |_| {
        counter.fetch_add(1 << 20, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(vec![b'x'; 1 << 20])))
    }));
    let body = Body::new(http_body_util::StreamBody::new(chunks));
    let (status, _, _) = hostile(&gw, "application/json", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let taken = read.load(std::sync::atomic::Ordering::SeqCst);
    assert!(taken <= 2 << 20, "read {taken} bytes of 100 MiB");
}

#[tokio::test]
async fn a_template_renders_for_a_request_without_a_body() {
    let yaml = r#"
routes: { /x: [GET] }
stages:
  prod:
    settings:
      mapping:
        request:
          templates: { application/json: '{"q": "{{ input.params("q") }}", "body": {{ input.json("$") }}, "name": {{ input.json("$.name") }}}' }
"#;
    let gw = gateway(yaml);
    let (status, _, body) = send(
        &gw,
        Request::get("/prod/x?q=1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body)["body"],
        r#"{"q": "1", "body": null, "name": null}"#
    );
}

const VTL: &str = r##"
template_language: vtl
routes:
  /pets/{petId}: [POST]
  /jinja: [POST]
stages:
  prod:
    variables: { tier: gold }
    methods:
      /pets/{petId}/POST:
        mapping:
          request:
            templates:
              application/json: |-
                #set($root = $input.path('$'))
                {"id": "$input.params('petId')", "names": [#foreach($p in $root.pets)"$p.name"#if($foreach.hasNext),#end#end], "request": "$context.requestId", "tier": "$stageVariables.tier", "resource": "$context.resourcePath", "path": "$context.path"}
          responses:
            - templates:
                application/json: |-
                  #set($echo = $util.parseJson($input.path('$.body')))
                  {"seen": $echo.names.size(), "request": "$context.requestId", "tier": "$stageVariables['tier']"}
      /jinja/POST:
        mapping:
          language: jinja
          request:
            templates:
              application/json: '{"stage": "{{ context.stage }}"}'
"##;

#[tokio::test]
async fn vtl_templates_map_requests_and_integration_responses() {
    let gw = gateway(VTL);
    let req = Request::post("/prod/pets/7")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"pets": [{"name": "Rex"}, {"name": "Tom"}]}"#,
        ))
        .unwrap();
    let (status, headers, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let id = headers["x-amzn-requestid"].to_str().unwrap();
    // The integration response template read what the backend echoed of
    // the request template's output.
    assert_eq!(
        json_of(&body),
        json!({"seen": 2, "request": id, "tier": "gold"}),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // A mapping that says `language: jinja` keeps minijinja under a VTL default.
    let req = Request::post("/prod/jinja")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["body"], r#"{"stage": "prod"}"#);
}

#[tokio::test]
async fn vtl_request_template_sees_the_request_as_sent() {
    let gw = gateway(VTL);
    let req = Request::post("/prod/pets/7?x=1")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"pets": []}"#))
        .unwrap();
    let (_, headers, _) = send(&gw, req).await;
    let id = headers["x-amzn-requestid"].to_str().unwrap().to_owned();
    // Through a mapping without a response template: the echo shows the
    // request template's output.
    let yaml = VTL.replace(
        "          responses:\n            - templates:\n                application/json: |-\n                  #set($echo = $util.parseJson($input.path('$.body')))\n                  {\"seen\": $echo.names.size(), \"request\": \"$context.requestId\", \"tier\": \"$stageVariables['tier']\"}\n",
        "",
    );
    assert_ne!(yaml, VTL);
    let gw = gateway(&yaml);
    let req = Request::post("/prod/pets/7?x=1")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"pets": []}"#))
        .unwrap();
    let (status, headers, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    let sent: Value = serde_json::from_str(json_of(&body)["body"].as_str().unwrap()).unwrap();
    let id2 = headers["x-amzn-requestid"].to_str().unwrap();
    assert_ne!(id, id2);
    assert_eq!(
        sent,
        json!({"id": "7", "names": [], "request": id2, "tier": "gold", "resource": "/pets/{petId}", "path": "/prod/pets/7"})
    );
}

#[tokio::test]
async fn vtl_failures_are_500_and_syntax_errors_are_config_errors() {
    // A runtime failure (substring out of range) is API Gateway's 500
    // "Internal server error", nothing of the template in it.
    let yaml = r##"
template_language: vtl
routes: { /x: [POST] }
stages:
  prod:
    methods:
      /x/POST:
        mapping:
          request:
            templates:
              application/json: "#set($s = 'ab')$s.substring(9)"
"##;
    let gw = gateway(yaml);
    let req = Request::post("/prod/x")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = send(&gw, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8_lossy(&body).contains("Internal server error"));
    assert!(!String::from_utf8_lossy(&body).contains("substring"));
    // A syntax error names the template's config path, line and column.
    let yaml = yaml.replace("$s.substring(9)", "\\n  #if($s)");
    let err = Config::from_yaml_str(&yaml)
        .and_then(Gateway::new)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r##"stages.prod.methods."/x/POST".mapping.request.templates."application/json": VTL: line 2, column 3: `#if` without `#end`"##),
        "{err}"
    );
}

#[tokio::test]
async fn vtl_overrides_change_the_integration_request_and_the_method_response() {
    // apigateway-override-request-response-parameters.md: a request
    // template's `$context.requestOverride.*` replace the integration
    // request's parameters; a response template's
    // `$context.responseOverride.status` and `.header.*` the method
    // response's (the tutorial's "error" check).
    let yaml = r##"
template_language: vtl
routes:
  /pets/{petId}: [POST]
stages:
  prod:
    methods:
      /pets/{petId}/POST:
        mapping:
          request:
            templates:
              application/json: |-
                #set($root = $input.path('$'))
                ## Velocity 1.7 reads `$root.a-` as one name: braces end it.
                #set($context.requestOverride.header.x-combined = "${root.a}-$root.b")
                #set($context.requestOverride.querystring.kind = $root.a)
                $context.requestOverride.path.put('petId', 'override')
                {}
          responses:
            - templates:
                application/json: |-
                  #set($inputRoot = $input.path('$'))
                  $input.json("$")
                  #if($inputRoot.toString().contains("error"))
                  #set($context.responseOverride.status = 400)
                  #set($context.responseOverride.header.x-why = "error in body")
                  #end
"##;
    let gw = gateway(yaml);
    let req = Request::post("/prod/pets/7?kind=dog&keep=1")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"a": "cat", "b": "error"}"#))
        .unwrap();
    let (status, headers, body) = send(&gw, req).await;
    // The echo's body mentions "error" (the header value): the response
    // template overrides the status and adds a header.
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["x-why"], "error in body");
    let echoed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["headers"]["x-combined"], "cat-error");
    assert_eq!(echoed["uri"], "/pets/7?keep=1&kind=cat");
    assert_eq!(echoed["path"], json!({"petId": "override"}));
    // Without "error" in what comes back, the status stays.
    let req = Request::post("/prod/pets/7")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"a": "cat", "b": "fine"}"#))
        .unwrap();
    let (status, headers, _) = send(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-why").is_none());
}
