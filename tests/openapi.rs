//! OpenAPI import: API Gateway exports read into a config and served.
//! Each behaviour is checked through a gateway, not only in the parsed
//! config.

mod support;

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{json_of, send, serve_tcp};
use tollgate::openapi::export as export_stage;
use tollgate::openapi::{
    BasePath, ExportOptions, ExportType, ImportError, ImportMode, ImportOptions, import,
    import_into,
};
use tollgate::{Body, Config, Gateway};
use tower::service_fn;

/// An upstream that answers with what it was asked: method, path and
/// query, some headers, the body.
async fn upstream() -> std::net::SocketAddr {
    serve_tcp(service_fn(|req: Request<Body>| async move {
        let (parts, body) = req.into_parts();
        let uri = parts.uri.to_string();
        let method = parts.method.to_string();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (trace, ctype) = (header("x-trace"), header("content-type"));
        let body = body.collect().await.unwrap().to_bytes();
        let v = json!({
            "method": method, "uri": uri, "trace": trace, "content_type": ctype,
            "body": String::from_utf8_lossy(&body),
        });
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .header("x-up", "1")
                .body(Body::from(v.to_string()))
                .unwrap(),
        )
    }))
    .await
}

/// The inner service: what a method without an integration reaches.
fn inner()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("inner")))
    })
}

fn options() -> ImportOptions {
    ImportOptions::default()
}

/// The pet store as API Gateway exports it (OpenAPI 3 with extensions): an
/// http integration with VTL templates and parameters, an http_proxy
/// through a stage variable, a mock, a key-protected method.
fn export(host: &str) -> String {
    format!(
        r##"
openapi: 3.0.1
info: {{ title: PetStore, version: "2026-12-01T00:00:00Z" }}
servers:
  - url: "https://abc123.execute-api.us-east-1.amazonaws.com/{{basePath}}"
    variables: {{ basePath: {{ default: "/v1" }} }}
paths:
  /pets:
    post:
      security: [{{ api_key: [] }}]
      x-amazon-apigateway-integration:
        type: http
        httpMethod: POST
        uri: "http://{host}/store/pets"
        passthroughBehavior: when_no_templates
        requestParameters:
          integration.request.header.x-trace: "method.request.header.x-request-trace"
        requestTemplates:
          application/json: |
            #set($pet = $input.path('$'))
            {{"kind": "$pet.type", "cost": $pet.price}}
        responses:
          "4\\d{{2}}":
            statusCode: "400"
            responseTemplates:
              application/json: '{{"error": "rejected"}}'
          default:
            statusCode: "201"
            responseParameters:
              method.response.header.x-from: "integration.response.header.x-up"
              method.response.header.x-static: "'yes'"
            responseTemplates:
              application/json: |
                #set($echo = $util.parseJson($input.path('$.body')))
                {{"created": "$echo.kind", "seenPath": "$input.path('$.uri')"}}
  /pets/{{petId}}:
    get:
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: "http://${{stageVariables.upstream}}/store/pets/{{petId}}"
        requestParameters:
          integration.request.path.petId: method.request.path.petId
  /ping:
    get:
      x-amazon-apigateway-integration:
        type: mock
        requestTemplates:
          application/json: '{{"statusCode": 202}}'
        responses:
          default:
            statusCode: "202"
            responseTemplates:
              application/json: '{{"pong": "$context.stage"}}'
  /plain:
    x-amazon-apigateway-any-method: {{}}
components:
  securitySchemes:
    api_key: {{ type: apiKey, name: x-api-key, in: header }}
x-amazon-apigateway-binary-media-types: ["image/png"]
"##
    )
}

/// The document imported into a config that has the stage's variable, a
/// plan and a key (what an export does not carry), as a gateway.
fn gateway(document: &str, host: &str) -> Gateway {
    let existing = Config::from_yaml_str(&format!(
        "routes:\n  /placeholder: [GET]\nstages:\n  prod:\n    variables: {{ upstream: \"{host}\" }}\nplans:\n  p: {{ stages: [prod] }}\nkeys:\n  - {{ name: k, value: key-0123456789abcdef0123, plans: [p] }}\n"
    ))
    .unwrap();
    let imported = import_into(&existing, document, &options()).unwrap();
    Gateway::new(imported.config).unwrap()
}

#[tokio::test]
async fn an_export_imports_and_serves_what_it_says() {
    let up = upstream().await;
    let host = up.to_string();
    let imported = import(&export(&host), &options()).unwrap();
    // Everything in this export is honoured.
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    assert_eq!(imported.config.routes["/plain"], ["ANY"]);
    let gw = gateway(&export(&host), &host);

    // http: key required, a request parameter, a VTL request template, the
    // default integration response with headers and a VTL template.
    let post = |key: Option<&str>, body: &str| {
        let mut r = Request::post("/prod/pets")
            .header("content-type", "application/json")
            .header("x-request-trace", "t-1");
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r.body(Body::from(body.to_owned())).unwrap()
    };
    let (status, _, _) = send(gw.service(inner()), post(None, "{}")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the api_key scheme requires a key"
    );
    let (status, headers, body) = send(
        gw.service(inner()),
        post(
            Some("key-0123456789abcdef0123"),
            r#"{"type": "dog", "price": 249.99}"#,
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["x-from"], "1");
    assert_eq!(headers["x-static"], "yes");
    assert_eq!(
        json_of(&body),
        json!({"created": "dog", "seenPath": "/store/pets"})
    );

    // http_proxy through a stage variable: the upstream's answer as it is.
    let (status, headers, body) = send(
        gw.service(inner()),
        Request::get("/prod/pets/7?x=1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-up"], "1");
    assert_eq!(json_of(&body)["uri"], "/store/pets/7?x=1");

    // mock: the request template's status, the response template's body.
    let (status, _, body) = send(
        gw.service(inner()),
        Request::get("/prod/ping").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(json_of(&body), json!({"pong": "prod"}));

    // No integration: the wrapped service answers, for any method.
    let (status, _, body) = send(
        gw.service(inner()),
        Request::delete("/prod/plain").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"inner"[..]));
}

#[tokio::test]
async fn a_selection_pattern_picks_the_integration_response() {
    let up = serve_tcp(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(404)
                .body(Body::from("{}"))
                .unwrap(),
        )
    }))
    .await;
    let gw = gateway(&export(&up.to_string()), &up.to_string());
    let (status, _, body) = send(
        gw.service(inner()),
        Request::post("/prod/pets")
            .header("content-type", "application/json")
            .header("x-api-key", "key-0123456789abcdef0123")
            .body(Body::from(r#"{"type": "cat", "price": 1}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body), json!({"error": "rejected"}));
}

#[test]
fn base_path_modes() {
    // api-gateway-import-api-basePath.md: basePath /a/b/c and path /e.
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "basePath": "/a/b/c",
        "paths": {"/e": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}}}"#;
    let routes = |mode| {
        let mut o = options();
        o.basepath = mode;
        let c = import(doc, &o).unwrap().config;
        (
            c.routes.keys().cloned().collect::<Vec<_>>(),
            c.stages.keys().cloned().collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        routes(BasePath::Ignore),
        (vec!["/e".to_owned()], vec!["prod".to_owned()])
    );
    assert_eq!(
        routes(BasePath::Prepend),
        (vec!["/a/b/c/e".to_owned()], vec!["prod".to_owned()])
    );
    // Split drops the first segment (a stage's name); the stage is the
    // options'.
    assert_eq!(
        routes(BasePath::Split),
        (vec!["/b/c/e".to_owned()], vec!["prod".to_owned()])
    );
    // OpenAPI 3: a server URL's other variables take their defaults.
    let doc3 = r#"{"openapi": "3.0.1", "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://h/{stage}/x?q=1", "variables": {"stage": {"default": "v1"}}}],
        "paths": {"/e": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}}}"#;
    let mut o = options();
    o.basepath = BasePath::Prepend;
    let c = import(doc3, &o).unwrap().config;
    assert_eq!(c.routes.keys().collect::<Vec<_>>(), ["/v1/x/e"]);
}

#[test]
fn what_is_not_honoured_is_a_warning_with_its_path_and_fail_on_warnings_refuses() {
    let doc = r#"{"openapi": "3.0.1", "info": {"title": "t", "version": "1"},
      "x-amazon-apigateway-cors": {"allowOrigins": ["*"]},
      "paths": {"/fn": {"post": {
        "x-amazon-apigateway-request-validator": "all",
        "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST",
          "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/f/invocations"}}}}}"#;
    let imported = import(doc, &options()).unwrap();
    let paths: Vec<&str> = imported.warnings.iter().map(|w| w.path.as_str()).collect();
    for expected in [
        "x-amazon-apigateway-cors",
        "paths.\"/fn\".post.x-amazon-apigateway-request-validator",
        "paths.\"/fn\".post.x-amazon-apigateway-integration.type",
    ] {
        assert!(paths.contains(&expected), "{expected} in {paths:?}");
    }
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.message.contains("HTTP APIs"))
    );
    // The method is still routed, served by the wrapped service.
    assert_eq!(imported.config.routes["/fn"], ["POST"]);
    let mut o = options();
    o.fail_on_warnings = true;
    match import(doc, &o) {
        Err(ImportError::Warnings(w)) => assert_eq!(w.len(), imported.warnings.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn merge_adds_and_overwrite_replaces() {
    let existing = Config::from_yaml_str(
        "routes:\n  /old: [GET]\n  /pets: [GET]\nstages:\n  prod:\n    variables: { tier: gold }\n    methods:\n      /old/GET: { api_key_required: true }\n",
    )
    .unwrap();
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"},
        "paths": {"/pets": {"post": {"x-amazon-apigateway-integration": {"type": "mock"}}}}}"#;
    let mut o = options();
    o.mode = ImportMode::Merge;
    let merged = import_into(&existing, doc, &o).unwrap().config;
    assert_eq!(merged.routes["/pets"], ["GET", "POST"]);
    assert!(merged.routes.contains_key("/old"));
    assert!(merged.stages["prod"].methods.contains_key("/old/GET"));
    assert_eq!(merged.stages["prod"].variables["tier"], "gold");
    o.mode = ImportMode::Overwrite;
    let replaced = import_into(&existing, doc, &o).unwrap().config;
    assert_eq!(replaced.routes.keys().collect::<Vec<_>>(), ["/pets"]);
    assert_eq!(replaced.routes["/pets"], ["POST"]);
    assert!(!replaced.stages["prod"].methods.contains_key("/old/GET"));
    assert_eq!(
        replaced.stages["prod"].variables["tier"], "gold",
        "stage variables stay"
    );
}

#[test]
fn a_template_that_does_not_compile_is_a_config_error_with_its_path() {
    let doc = r##"{"swagger": "2.0", "info": {"title": "t", "version": "1"},
        "paths": {"/x": {"post": {"x-amazon-apigateway-integration": {"type": "http",
          "uri": "http://127.0.0.1:9/x", "requestTemplates": {"application/json": "#if($x)"}}}}}}"##;
    let err = import(doc, &options())
        .and_then(|i| Gateway::new(i.config).map_err(ImportError::from))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("VTL: line 1, column 1: `#if` without `#end`"),
        "{err}"
    );
    assert!(err.contains("/x/POST"), "{err}");
}

#[test]
fn hostile_documents_never_panic() {
    for doc in [
        "",
        "null",
        "[]",
        "{}",
        "{\"openapi\": \"3.0.0\"}",
        "{\"openapi\": \"3.0.0\", \"paths\": []}",
        "{\"swagger\": \"2.0\", \"paths\": {\"/a\": {\"get\": []}}}",
        "{\"swagger\": \"2.0\", \"paths\": {\"a\": {}}, \"securityDefinitions\": 3}",
        "{\"swagger\": \"2.0\", \"paths\": {\"/a\": {\"get\": {\"security\": [{\"nope\": []}], \"x-amazon-apigateway-integration\": {\"type\": \"http\"}}}}}",
        "{\"swagger\": \"2.0\", \"basePath\": 7, \"paths\": {\"/a\": {\"get\": {\"x-amazon-apigateway-integration\": {\"type\": \"mock\", \"responses\": {\"default\": {\"statusCode\": {}}}}}}}}",
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-amazon-apigateway-integration: { type: http, uri: 'http://[::1' }\n",
        "{{{{",
        "swagger: '2.0'\npaths: { /a: { get: { x-amazon-apigateway-integration: { type: mock, requestTemplates: { a: 5 } } } } }\n",
    ] {
        // An error or a config, never a panic.
        if let Ok(i) = import(doc, &options()) {
            let _ = Gateway::new(i.config);
        }
    }
    let deep = format!(
        "{{\"swagger\": \"2.0\", \"paths\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(import(&deep, &options()).is_err());
}

#[test]
fn warnings_print_their_paths() {
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {
        "x-amazon-apigateway-integration": {"type": "http", "uri": "http://127.0.0.1:9/a", "connectionType": "VPC_LINK"}}}}}"#;
    let w = import(doc, &options()).unwrap().warnings;
    assert_eq!(
        w.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["paths.\"/a\".get.x-amazon-apigateway-integration.connectionType: not supported; ignored"]
    );
}

#[test]
fn the_petstore_export_imports_with_its_documented_warnings() {
    // examples/petstore-openapi.yaml into examples/petstore.yaml, as
    // `petstore --openapi` does it.
    let root = env!("CARGO_MANIFEST_DIR");
    let existing = Config::from_path(format!("{root}/examples/petstore.yaml")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/examples/petstore-openapi.yaml")).unwrap();
    let imported = import_into(&existing, &doc, &options()).unwrap();
    let paths: Vec<&str> = imported.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "(config) stages.dev.methods.\"/whoami/GET\"",
            "(config) stages.prod.methods.\"/echo/*\"",
            "(config) stages.prod.methods.\"/pets/{petId}/legacy/PUT\"",
            "(config) stages.prod.methods.\"/pets/{petId}/summary/GET\"",
        ]
    );
    assert_eq!(imported.config.routes["/pets"], ["GET", "POST", "OPTIONS"]);
    assert!(imported.config.keys.len() >= 2, "the config's keys stay");
    // The document says which methods need a key: /ping does not, whatever
    // the stage's own settings say.
    let prod = &imported.config.stages["prod"];
    assert_eq!(prod.settings.api_key_required, Some(true));
    assert_eq!(prod.methods["/ping/GET"].api_key_required, Some(false));
    assert_eq!(prod.methods["/pets/GET"].api_key_required, Some(true));
}

#[tokio::test]
async fn the_petstore_export_serves_its_mocks() {
    let root = env!("CARGO_MANIFEST_DIR");
    let existing = Config::from_path(format!("{root}/examples/petstore.yaml")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/examples/petstore-openapi.yaml")).unwrap();
    let config = import_into(&existing, &doc, &options()).unwrap().config;
    let gw = tollgate::Gateway::builder(config)
        .authorizer(
            "bearer",
            |_req: tollgate::auth::authorizer::AuthorizerRequest| async {
                Ok(tollgate::auth::authorizer::Verdict::allow("x"))
            },
        )
        .build()
        .unwrap();
    let (status, _, body) = send(
        gw.service(inner()),
        Request::get("/prod/ping").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body), json!({"pong": true, "stage": "prod"}));
    let (status, headers, _) = send(
        gw.service(inner()),
        Request::options("/prod/pets").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-methods"], "GET,POST,OPTIONS");
}

#[test]
fn review_findings() {
    // A malformed `security` would leave methods open: refused.
    for security in [r#"{"k": []}"#, "5", "[5]", r#"[{"k": 5}]"#] {
        let doc = format!(
            r#"{{"swagger": "2.0", "info": {{"title": "t", "version": "1"}}, "security": {security},
            "securityDefinitions": {{"k": {{"type": "apiKey", "name": "x-api-key", "in": "header"}}}},
            "paths": {{"/a": {{"get": {{}}}}}}}}"#
        );
        assert!(
            matches!(import(&doc, &options()), Err(ImportError::Document(_))),
            "{security}"
        );
    }
    // Overwrite keeps the API-wide settings the document does not describe.
    let existing = Config::from_yaml_str(
        "settings: { api_key_required: true, throttle: { rate: 5, burst: 10 } }\nroutes:\n  /x: [GET]\nstages:\n  prod: {}\n",
    )
    .unwrap();
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {}}}}"#;
    let c = import_into(&existing, doc, &options()).unwrap().config;
    assert_eq!(c.settings.api_key_required, Some(true));
    assert!(c.settings.throttle.is_some());
    // A mock whose template computes its status: run, and the mock reads
    // the status from it (a_mock_whose_template_computes_the_status_answers_with_it).
    let doc = r##"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/m": {"get": {
        "x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "#set($x = 503){\"statusCode\": $x}"}}}}}}"##;
    let i = import(doc, &options()).unwrap();
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    let m = &i.config.stages["prod"].methods["/m/GET"];
    assert!(matches!(
        m.integration,
        Some(tollgate::gateway::IntegrationConfig::Mock {
            status_from_template: true,
            ..
        })
    ));
    // A source tollgate does not map is a warning for that parameter, not a
    // refused document; a stage variable identity source is kept.
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"},
      "securityDefinitions": {"auth": {"type": "apiKey", "name": "Authorization", "in": "header",
        "x-amazon-apigateway-authorizer": {"type": "request", "identitySource": "method.request.header.Authorization, stageVariables.realm"}}},
      "paths": {"/a": {"post": {"security": [{"auth": []}], "x-amazon-apigateway-integration": {"type": "http", "uri": "http://127.0.0.1:9/a",
        "requestParameters": {"integration.request.header.x-a": "method.request.body.name", "integration.request.header.x-b": "method.request.header.b"}}}}}}"#;
    let i = import(doc, &options()).unwrap();
    assert_eq!(
        i.warnings
            .iter()
            .map(|w| w.path.as_str())
            .collect::<Vec<_>>(),
        [
            "paths.\"/a\".post.x-amazon-apigateway-integration.requestParameters.\"integration.request.header.x-a\""
        ]
    );
    let auth = &i.config.authorizers["auth"];
    assert_eq!(
        format!("{auth:?}").matches("stageVariables.realm").count(),
        1,
        "{auth:?}"
    );
}

#[tokio::test]
async fn trial_findings() {
    // A uri parameter fed from the query (AWS's own integration example)
    // cannot be filled here: a warning, and the method served by the
    // wrapped service, instead of a refused document.
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {
      "/items/{id}": {"get": {"x-amazon-apigateway-integration": {"type": "http",
        "uri": "http://127.0.0.1:9/items/{id}/{code}",
        "requestParameters": {"integration.request.path.code": "method.request.querystring.code"}}}},
      "/p/{proxy+}": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {"type": "http_proxy",
        "uri": "http://127.0.0.1:9/{proxy}", "responses": {"default": {"statusCode": "200"}}}}}}}"#;
    let i = import(doc, &options()).unwrap();
    assert_eq!(
        i.warnings
            .iter()
            .map(|w| w.path.as_str())
            .collect::<Vec<_>>(),
        ["paths.\"/items/{id}\".get.x-amazon-apigateway-integration.uri"],
        "an http_proxy's bare default status is no warning"
    );
    assert!(i.warnings[0].message.contains("`{code}`"));
    // Every stage of the config serves the document's methods.
    let existing =
        Config::from_yaml_str("routes:\n  /x: [GET]\nstages:\n  dev: {}\n  prod: {}\n").unwrap();
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/ping": {"get": {
        "x-amazon-apigateway-integration": {"type": "mock", "responses": {"default": {"statusCode": "200",
          "responseTemplates": {"application/json": "{\"stage\": \"$context.stage\"}"}}}}}}}}"#;
    let gw = Gateway::new(import_into(&existing, doc, &options()).unwrap().config).unwrap();
    for stage in ["dev", "prod"] {
        let (status, _, body) = send(
            gw.service(inner()),
            Request::get(format!("/{stage}/ping"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json_of(&body), json!({"stage": stage}));
    }
}

/// A request through a gateway built from `config`: status, error type,
/// message.
async fn ask(config: &Config, req: Request<Body>) -> (StatusCode, String, String) {
    let gw = Gateway::new(config.clone()).unwrap();
    let (status, headers, body) = send(gw.service(inner()), req).await;
    let message = if status == StatusCode::OK {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        json_of(&body)["message"].as_str().unwrap_or("").to_owned()
    };
    (status, support::error_type(&headers), message)
}

#[tokio::test]
async fn openapi3_validators_models_and_parameters_are_enforced() {
    let doc = r##"
openapi: 3.0.1
info: { title: v, version: "1" }
x-amazon-apigateway-request-validators:
  all: { validateRequestBody: true, validateRequestParameters: true }
  params: { validateRequestParameters: true }
x-amazon-apigateway-request-validator: all
paths:
  /pets:
    parameters:
      - { name: x-client, in: header, required: true, schema: { type: string } }
    get:
      x-amazon-apigateway-request-validator: params
      parameters:
        - $ref: "#/components/parameters/Type"
        - { name: page, in: query, required: false, schema: { type: integer } }
    post:
      requestBody:
        content:
          application/json: { schema: { $ref: "#/components/schemas/Pet" } }
          text/plain: { schema: { type: string, maxLength: 3 } }
components:
  parameters:
    Type: { name: type, in: query, required: true, schema: { type: string } }
  schemas:
    Tag: { type: string, maxLength: 5 }
    Pet:
      type: object
      required: [name]
      properties:
        name: { type: string }
        tags: { type: array, items: { $ref: "#/components/schemas/Tag" } }
"##;
    let imported = import(doc, &options()).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let config = imported.config;
    assert_eq!(config.settings.request_validator.as_deref(), Some("all"));
    assert_eq!(
        config.models.len(),
        3,
        "Tag, Pet and the inline text/plain schema"
    );
    let get = |uri: &str, client: bool| {
        let mut r = Request::get(uri);
        if client {
            r = r.header("x-client", "c");
        }
        r.body(Body::empty()).unwrap()
    };
    let post = |ctype: &str, body: &str| {
        Request::post("/prod/pets")
            .header("x-client", "c")
            .header("content-type", ctype)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    assert_eq!(
        ask(&config, get("/prod/pets", false)).await,
        (
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST_PARAMETERS".into(),
            "Missing required request parameters: [x-client, type]".into()
        )
    );
    assert_eq!(
        ask(&config, get("/prod/pets?type=dog", true)).await.0,
        StatusCode::OK
    );
    // POST takes the API's default validator, `all`: the path item's header,
    // then the body's model by media type.
    let no_client = Request::post("/prod/pets").body(Body::from("{}")).unwrap();
    assert_eq!(
        ask(&config, no_client).await.2,
        "Missing required request parameters: [x-client]"
    );
    for (ctype, body, want) in [
        (
            "application/json",
            r#"{"name":"Rex","tags":["ok"]}"#,
            StatusCode::OK,
        ),
        (
            "application/json",
            r#"{"name":"Rex","tags":["toolong"]}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            r#"{"tags":[]}"#,
            StatusCode::BAD_REQUEST,
        ),
        ("text/plain", r#""abc""#, StatusCode::OK),
        ("text/plain", r#""abcd""#, StatusCode::BAD_REQUEST),
        // No model for the type: not validated.
        ("application/xml", "<pet/>", StatusCode::OK),
    ] {
        let (status, kind, message) = ask(&config, post(ctype, body)).await;
        assert_eq!(status, want, "{ctype} {body}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(
                (kind.as_str(), message.as_str()),
                ("BAD_REQUEST_BODY", "Invalid request body")
            );
        }
    }
}

#[tokio::test]
async fn swagger2_body_parameters_and_definitions_are_enforced() {
    let doc = r##"{
      "swagger": "2.0", "info": {"title": "s", "version": "1"},
      "consumes": ["application/json"],
      "x-amazon-apigateway-request-validators": {"body": {"validateRequestBody": true}},
      "paths": {"/pets": {"post": {
        "x-amazon-apigateway-request-validator": "body",
        "parameters": [
          {"name": "pet", "in": "body", "schema": {"$ref": "#/definitions/Pet"}},
          {"name": "q", "in": "query", "required": true, "type": "string"}
        ]}}},
      "definitions": {"Pet": {"type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "enum": ["Rex", "Tom"]}}}}
    }"##;
    let imported = import(doc, &options()).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let config = imported.config;
    let post = |body: &str| {
        Request::post("/prod/pets")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    // The validator checks bodies only: the required `q` is not checked.
    assert_eq!(
        ask(&config, post(r#"{"name":"Rex"}"#)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        ask(&config, post(r#"{"name":"Max"}"#)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        ask(&config, post("not json")).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn validation_the_import_cannot_honour_is_a_warning_with_its_path() {
    let doc = r##"{
      "openapi": "3.0.1", "info": {"title": "w", "version": "1"},
      "x-amazon-apigateway-request-validators": {"all": {"validateRequestBody": true, "validateRequestParameters": "yes"}},
      "x-amazon-apigateway-request-validator": "missing",
      "paths": {"/a/{id}": {"post": {
        "x-amazon-apigateway-request-validator": "nope",
        "parameters": [
          {"name": "c", "in": "cookie", "required": true},
          {"name": "other", "in": "path", "required": true},
          {"$ref": "#/components/parameters/Gone"}
        ],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Broken"}}}}
      }}},
      "components": {"schemas": {
        "Broken": {"type": 12},
        "bad-name": {"type": "object"}
      }}
    }"##;
    let imported = import(doc, &options()).unwrap();
    let got: Vec<String> = imported
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    let text = got.join("\n");
    for want in [
        "x-amazon-apigateway-request-validators.all.validateRequestParameters: not true or false",
        "components.schemas.bad-name: a model name is letters and digits only",
        "paths.\"/a/{id}\".post.x-amazon-apigateway-request-validator: names no validator",
        "paths.\"/a/{id}\".post.parameters[0]: cookie parameters are not validated",
        "paths.\"/a/{id}\".post.parameters[1]: the path has no `{other}`",
        "paths.\"/a/{id}\".post.parameters[2]: a `$ref` that does not resolve",
        "models.Broken: not a valid draft 4 schema",
        "request model for \"application/json\": names no model",
        "x-amazon-apigateway-request-validator: names no validator",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // What remains is a valid config; under fail_on_warnings it is refused.
    assert!(imported.config.models.is_empty());
    let mut o = options();
    o.fail_on_warnings = true;
    assert!(matches!(import(doc, &o), Err(ImportError::Warnings(_))));
}

#[tokio::test]
async fn the_petstore_export_validates_new_pets() {
    let root = env!("CARGO_MANIFEST_DIR");
    let existing = Config::from_path(format!("{root}/examples/petstore.yaml")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/examples/petstore-openapi.yaml")).unwrap();
    let config = import_into(&existing, &doc, &options()).unwrap().config;
    let post = |body: &str| {
        Request::post("/prod/pets")
            .header("x-api-key", "demo-key-0123456789abcdef")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let gw = Gateway::builder(config)
        .authorizer(
            "bearer",
            |_req: tollgate::auth::authorizer::AuthorizerRequest| async {
                Ok(tollgate::auth::authorizer::Verdict::allow("x"))
            },
        )
        .build()
        .unwrap();
    let (status, headers, _) = send(gw.service(inner()), post(r#"{"type":"cow","price":1}"#)).await;
    assert_eq!(
        (status, support::error_type(&headers).as_str()),
        (StatusCode::BAD_REQUEST, "BAD_REQUEST_BODY")
    );
    let (status, _, body) = send(gw.service(inner()), post(r#"{"type":"cat","price":1}"#)).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"inner"[..]));
}

/// A config with what an export carries: keys, a validator and models,
/// required parameters, an HTTP integration with a path parameter and a
/// VTL mapping, an http_proxy, a mock.
fn exportable(host: &str) -> String {
    format!(
        r##"
name: roundtrip
routes:
  /pets: [GET, POST]
  /pets/{{petId}}: [GET]
  /raw/{{id}}: [GET]
  /ping: [GET]
models:
  Tag: {{ type: string, maxLength: 5 }}
  NewPet:
    type: object
    required: [name]
    properties: {{ name: {{ type: string }}, tag: {{ $ref: "#/definitions/Tag" }} }}
validators:
  all: {{ validate_request_body: true, validate_request_parameters: true }}
settings: {{ request_validator: all }}
stages:
  prod:
    settings: {{ api_key_required: true }}
    methods:
      /pets/GET:
        request_parameters: {{ method.request.querystring.type: true }}
        integration: {{ type: http, url: "http://{host}/store/pets" }}
      /pets/POST:
        request_models: {{ application/json: NewPet }}
        integration: {{ type: http, url: "http://{host}/store/pets" }}
      /pets/{{petId}}/GET:
        integration: {{ type: http, url: "http://{host}/store/pets/{{petId}}" }}
        mapping:
          language: vtl
          request: {{ set: {{ integration.request.header.x-trace: "'rt'" }} }}
          responses:
            - templates: {{ application/json: '{{"wrapped": $input.json(''$'')}}' }}
      /raw/{{id}}/GET:
        api_key_required: false
        integration: {{ type: http, url: "http://{host}/raw/{{id}}", timeout_ms: 5000 }}
      /ping/GET:
        api_key_required: false
        integration: {{ type: mock, status: 202, body: '{{"pong": true}}' }}
plans:
  basic: {{ stages: [prod] }}
keys:
  - {{ name: k, value: key-rt-0123456789abcdef, plans: [basic] }}
"##
    )
}

#[tokio::test]
async fn import_of_export_serves_the_same_routes_and_responses() {
    let up = upstream().await;
    let original = Config::from_yaml_str(&exportable(&up.to_string())).unwrap();
    for export_type in [ExportType::Oas30, ExportType::Swagger] {
        let mut o = ExportOptions::default();
        o.export_type = export_type;
        let exported = export_stage(&original, "prod", &o).unwrap();
        assert!(exported.warnings.is_empty(), "{:?}", exported.warnings);
        // JSON and YAML say the same.
        let yaml = exported.to_yaml();
        let again = import_into(&original, &yaml, &options()).unwrap();
        assert!(
            again.warnings.is_empty(),
            "{export_type:?}: {:?}",
            again.warnings
        );
        let rebuilt = import_into(&original, &exported.to_json(), &options())
            .unwrap()
            .config;
        assert_eq!(rebuilt.routes, original.routes, "{export_type:?}");
        assert_eq!(rebuilt.models.len(), 2);
        let key = "key-rt-0123456789abcdef";
        let requests: Vec<(&str, &str, Option<&str>, &str)> = vec![
            ("GET", "/prod/pets?type=dog", Some(key), ""),
            ("GET", "/prod/pets", Some(key), ""),
            ("GET", "/prod/pets?type=dog", None, ""),
            (
                "POST",
                "/prod/pets",
                Some(key),
                r#"{"name":"Rex","tag":"ok"}"#,
            ),
            (
                "POST",
                "/prod/pets",
                Some(key),
                r#"{"name":"Rex","tag":"too long"}"#,
            ),
            ("GET", "/prod/pets/7", Some(key), ""),
            ("GET", "/prod/raw/a%2Fb", None, ""),
            ("GET", "/prod/ping", None, ""),
            ("GET", "/prod/nothing", None, ""),
        ];
        for (method, uri, key, body) in requests {
            let req = || {
                let mut r = Request::builder().method(method).uri(uri);
                if let Some(k) = key {
                    r = r.header("x-api-key", k);
                }
                r.body(Body::from(body.to_owned())).unwrap()
            };
            let a = send(
                Gateway::new(original.clone()).unwrap().service(inner()),
                req(),
            )
            .await;
            let b = send(
                Gateway::new(rebuilt.clone()).unwrap().service(inner()),
                req(),
            )
            .await;
            assert_eq!(a.0, b.0, "{export_type:?} {method} {uri}");
            assert_eq!(a.2, b.2, "{export_type:?} {method} {uri}");
        }
    }
}

#[test]
fn an_export_describes_the_stage_in_api_gateways_shape() {
    let original = Config::from_yaml_str(&exportable("127.0.0.1:9")).unwrap();
    let mut o = ExportOptions::default();
    o.version = Some("2026-12-01T00:00:00Z".into());
    let doc = export_stage(&original, "prod", &o).unwrap().document;
    assert_eq!(doc["openapi"], "3.0.1");
    assert_eq!(doc["info"]["version"], "2026-12-01T00:00:00Z");
    assert_eq!(
        doc["servers"][0]["variables"]["basePath"]["default"],
        "/prod"
    );
    let get = &doc["paths"]["/pets"]["get"];
    assert_eq!(get["security"], json!([{ "api_key": [] }]));
    assert_eq!(
        get["parameters"][0],
        json!({"name": "type", "in": "query", "required": true, "schema": {"type": "string"}})
    );
    assert_eq!(
        doc["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewPet"
    );
    // A model's reference in this version's form.
    assert_eq!(
        doc["components"]["schemas"]["NewPet"]["properties"]["tag"]["$ref"],
        "#/components/schemas/Tag"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["in"],
        "header"
    );
    assert_eq!(doc["x-amazon-apigateway-request-validator"], "all");
    assert_eq!(
        doc["paths"]["/ping"]["get"]["x-amazon-apigateway-integration"]["type"],
        "mock"
    );
    assert_eq!(
        doc["paths"]["/raw/{id}"]["get"]["x-amazon-apigateway-integration"]["type"],
        "http_proxy"
    );
    // Without extensions: no x-amazon-apigateway-* anywhere.
    o.extensions = false;
    o.export_type = ExportType::Swagger;
    let plain = export_stage(&original, "prod", &o).unwrap().document;
    assert!(!plain.to_string().contains("x-amazon-apigateway"));
    assert_eq!(plain["basePath"], "/prod");
    assert_eq!(
        plain["definitions"]["NewPet"]["properties"]["tag"]["$ref"],
        "#/definitions/Tag"
    );
    // An unknown stage is an error naming it.
    assert!(
        export_stage(&original, "beta", &o)
            .unwrap_err()
            .to_string()
            .contains("beta")
    );
}

/// A document of tests/vectors/agw-openapi (API Gateway's developer guide).
fn guide(name: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/tests/vectors/agw-openapi/{name}")).unwrap()
}

#[test]
fn the_developer_guides_documents_import_without_error() {
    // Kinesis and S3 integrations are AWS service kinds tollgate does not
    // call: each is a warning with its path, the rest imports. Lambda
    // integrations to full function ARNs import as remote functions, proxy
    // or custom (the simple calculator's, with their templates).
    for (name, routes, warned) in [
        ("http-proxy-oas30.json", 1, false),
        ("http-proxy-swagger.json", 1, false),
        ("petstore-swagger.json", 2, false),
        ("calc-lambda-proxy-swagger.json", 2, true),
        ("simple-calc-swagger.json", 4, false),
        ("kinesis-proxy-oas30.json", 5, true),
        ("kinesis-proxy-swagger.json", 5, true),
        ("s3-proxy-swagger.json", 3, true),
        ("lambda-proxy-oas30.json", 1, false),
        ("lambda-proxy-swagger.json", 1, false),
    ] {
        let imported = import(&guide(name), &options()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(imported.config.routes.len(), routes, "{name}");
        assert_eq!(
            !imported.warnings.is_empty(),
            warned,
            "{name}: {:?}",
            imported.warnings
        );
        for w in &imported.warnings {
            assert!(!w.path.is_empty(), "{name}: {w}");
            // Lambda integrations are served; what is warned is a detail
            // of one (an IAM role, a header from the body), not the method.
            assert!(
                !w.message.contains("served by the wrapped service") || !name.contains("calc"),
                "{name}: {w}"
            );
        }
        if name == "http-proxy-oas30.json" {
            // cacheKeyParameters became the method's cache key (the stage
            // enables caching, as in API Gateway); a namespace no other
            // method shares is no warning.
            let m = &imported.config.stages["prod"].methods["/{proxy+}/ANY"];
            assert_eq!(
                m.cache.as_ref().unwrap().key.as_deref(),
                Some(&["path.proxy".to_owned()][..])
            );
        }
        if name == "kinesis-proxy-oas30.json" {
            // API Gateway's parameter names may hold `-`.
            assert!(
                imported
                    .config
                    .routes
                    .contains_key("/streams/{stream-name}")
            );
        }
        if name == "s3-proxy-swagger.json" {
            // AWS_IAM methods are SigV4; the host's region is a `{region}`
            // placeholder here, so the scope's region is a warned default.
            assert_eq!(imported.config.sigv4.as_ref().unwrap().region, "us-east-1");
            assert!(imported.warnings.iter().any(|w| w.path == "(sigv4)"));
        }
        Gateway::new(imported.config).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn the_developer_guides_http_apis_serve_what_they_say() {
    let up = upstream().await;
    for name in [
        "http-proxy-oas30.json",
        "http-proxy-swagger.json",
        "petstore-swagger.json",
        "kinesis-proxy-oas30.json",
    ] {
        if name.starts_with("kinesis") {
            // A `{stream-name}` route matches; its AWS integration is a
            // warning, so the wrapped service answers.
            let config = import(&guide(name), &options()).unwrap().config;
            let gw = Gateway::new(config).unwrap();
            let (status, _, body) = send(
                gw.service(inner()),
                Request::get("/prod/streams/my-stream")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"inner"[..]));
            continue;
        }
        let doc = guide(name).replace(
            "http://petstore-demo-endpoint.execute-api.com",
            &format!("http://{up}"),
        );
        let config = import(&doc, &options()).unwrap().config;
        let gw = Gateway::new(config).unwrap();
        let (path, upstream_uri) = if name.starts_with("petstore") {
            ("/prod/pets/42", "/petstore/pets/42")
        } else {
            ("/prod/pets?type=dog", "/petstore/pets?type=dog")
        };
        let (status, _, body) = send(
            gw.service(inner()),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let v = json_of(&body);
        assert_eq!(v["uri"], upstream_uri, "{name}");
        assert_eq!(v["method"], "GET", "{name}");
    }
}

/// Arbitrary JSON built from OpenAPI's and API Gateway's own words, so that
/// the importer's paths are reached rather than refused at the top.
fn openapi_like() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    const KEYS: &[&str] = &[
        "/a",
        "/a/{id}",
        "/{proxy+}",
        "get",
        "post",
        "x-amazon-apigateway-any-method",
        "x-amazon-apigateway-integration",
        "type",
        "http",
        "http_proxy",
        "mock",
        "uri",
        "httpMethod",
        "requestParameters",
        "requestTemplates",
        "responses",
        "default",
        "statusCode",
        "responseParameters",
        "responseTemplates",
        "parameters",
        "name",
        "in",
        "required",
        "$ref",
        "schema",
        "requestBody",
        "content",
        "application/json",
        "security",
        "api_key",
        "x-amazon-apigateway-request-validator",
        "properties",
        "cacheKeyParameters",
        "cacheNamespace",
        "passthroughBehavior",
        "contentHandling",
        "timeoutInMillis",
        "items",
        "definitions",
        "Pet",
    ];
    const STRINGS: &[&str] = &[
        "http://127.0.0.1:9/{id}",
        "mock",
        "http",
        "method.request.path.id",
        "integration.request.path.id",
        "#/components/schemas/Pet",
        "#/definitions/Pet",
        "query",
        "header",
        "path",
        "body",
        "{\"statusCode\": 200}",
        "$input.json('$')",
        "all",
        "",
        "'literal'",
        "x-y",
        "200",
        "4\\d\\d",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        proptest::sample::select(STRINGS).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(proptest::sample::select(KEYS), inner, 0..5).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 1024, ..Default::default() })]

    /// Whatever the document, the importer answers (a config or an error),
    /// the config builds or is refused, and its export is written: never a
    /// panic.
    #[test]
    fn arbitrary_documents_never_panic_the_importer(
        paths in openapi_like(),
        components in openapi_like(),
        v2 in proptest::prelude::any::<bool>(),
    ) {
        let doc = if v2 {
            json!({ "swagger": "2.0", "info": { "title": "p", "version": "1" }, "paths": paths, "definitions": components })
        } else {
            json!({ "openapi": "3.0.1", "info": { "title": "p", "version": "1" }, "paths": paths, "components": { "schemas": components } })
        };
        for text in [doc.to_string(), serde_json::to_string_pretty(&doc).unwrap()] {
            if let Ok(imported) = import(&text, &options())
                && Gateway::new(imported.config.clone()).is_ok()
            {
                let _ = export_stage(&imported.config, "prod", &ExportOptions::default());
            }
        }
    }
}

#[tokio::test]
async fn gateway_responses_are_imported_and_exported() {
    let doc = r#"{
      "openapi": "3.0.1", "info": {"title": "g", "version": "1"},
      "paths": {"/a": {"get": {"security": [{"api_key": []}]}}},
      "components": {"securitySchemes": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}},
      "x-amazon-apigateway-gateway-responses": {
        "DEFAULT_4XX": {
          "responseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": "'domain.com'"},
          "responseTemplates": {"application/json": "{\"message\": \"test 4xx\"}"}
        },
        "INVALID_API_KEY": {
          "statusCode": "429",
          "responseTemplates": {"application/json": "{\"message\": \"test forbidden\"}"}
        },
        "WAF_FILTERED": {"statusCode": "403"}
      }
    }"#;
    let imported = import(doc, &options()).unwrap();
    let paths: Vec<&str> = imported.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        ["x-amazon-apigateway-gateway-responses.WAF_FILTERED"]
    );
    let config = imported.config;
    let serve = |c: &Config, req: Request<Body>| {
        let gw = Gateway::new(c.clone()).unwrap();
        send(gw.service(inner()), req)
    };
    // The example of x-amazon-apigateway-gateway-responses' page, served.
    let (status, headers, body) = serve(
        &config,
        Request::get("/prod/a").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_of(&body), json!({"message": "test forbidden"}));
    assert_eq!(headers["access-control-allow-origin"], "domain.com");
    let (status, headers, body) = serve(
        &config,
        Request::get("/prod/b").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body), json!({"message": "test 4xx"}));
    assert_eq!(headers["access-control-allow-origin"], "domain.com");
    // Exported and imported again: the same answers.
    let exported = export_stage(&config, "prod", &ExportOptions::default()).unwrap();
    let again = import(&exported.to_json(), &options()).unwrap().config;
    assert_eq!(again.responses, config.responses);
}

#[tokio::test]
async fn a_resource_policy_on_source_addresses_is_enforced() {
    use std::net::{IpAddr, SocketAddr};
    use tollgate::throttle::ClientAddr;
    let with_policy = |policy: Value| {
        json!({
            "openapi": "3.0.1", "info": {"title": "p", "version": "1"},
            "paths": {"/a": {"get": {}}},
            "x-amazon-apigateway-policy": policy,
        })
        .to_string()
    };
    let from = |ip: &str| {
        let mut r = Request::get("/prod/a").body(Body::empty()).unwrap();
        let ip: IpAddr = ip.parse().unwrap();
        r.extensions_mut()
            .insert(ClientAddr(SocketAddr::new(ip, 40000)));
        r
    };
    let all = |effect: &str, condition: Option<Value>| {
        let mut st = json!({"Effect": effect, "Principal": "*", "Action": "execute-api:Invoke", "Resource": ["execute-api:/*"]});
        if let Some(c) = condition {
            st["Condition"] = c;
        }
        st
    };
    // openapi-extensions-policy.md's example: everyone but 192.0.2.0/24.
    let example = json!({"Version": "2012-10-17", "Statement": [
        all("Allow", None),
        all("Deny", Some(json!({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}))),
    ]});
    // Only 198.51.100.0/24 (a NotIpAddress deny).
    let only = json!({"Statement": [
        all("Allow", None),
        all("Deny", Some(json!({"NotIpAddress": {"aws:SourceIp": ["198.51.100.0/24"]}}))),
    ]});
    for (policy, inside, outside) in [
        (example, "198.51.100.7", "192.0.2.9"),
        (only, "198.51.100.7", "203.0.113.1"),
    ] {
        let imported = import(&with_policy(policy), &options()).unwrap();
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        let config = imported.config;
        for c in [config.clone(), {
            // Exported and imported again: the same policy.
            let e = export_stage(&config, "prod", &ExportOptions::default()).unwrap();
            import(&e.to_json(), &options()).unwrap().config
        }] {
            let gw = Gateway::new(c).unwrap();
            assert_eq!(
                send(gw.service(inner()), from(inside)).await.0,
                StatusCode::OK
            );
            let (status, headers, _) = send(gw.service(inner()), from(outside)).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(support::error_type(&headers), "RESOURCE_POLICY_DENIED");
        }
    }
    // A deny that cannot be read (one principal) refuses the document; an
    // allow that cannot be read is a warning, and nobody else is allowed.
    let odd = json!({"Statement": [
        all("Allow", None),
        {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
    ]});
    assert!(matches!(
        import(&with_policy(odd), &options()),
        Err(ImportError::Document(_))
    ));
    let narrow = json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/GET/a"},
    ]});
    let imported = import(&with_policy(narrow), &options()).unwrap();
    assert_eq!(imported.warnings.len(), 2, "{:?}", imported.warnings);
    let gw = Gateway::new(imported.config).unwrap();
    assert_eq!(
        send(gw.service(inner()), from("198.51.100.7")).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_mock_whose_template_computes_the_status_answers_with_it() {
    // API Gateway's mock answers with the status its request template
    // writes; the integration responses then select on it.
    let doc = r##"
openapi: 3.0.1
info: { title: m, version: "1" }
paths:
  /check:
    get:
      x-amazon-apigateway-integration:
        type: mock
        requestTemplates:
          application/json: |
            #if($input.params('ok') == 'yes')
            {"statusCode": 200}
            #else
            {"statusCode": 404}
            #end
        responses:
          "4\\d\\d":
            statusCode: "404"
            responseTemplates: { application/json: '{"found": false}' }
          default:
            statusCode: "200"
            responseTemplates: { application/json: '{"found": true}' }
"##;
    let imported = import(doc, &options()).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let gw = Gateway::new(imported.config).unwrap();
    for (uri, status, body) in [
        ("/prod/check?ok=yes", StatusCode::OK, json!({"found": true})),
        (
            "/prod/check?ok=no",
            StatusCode::NOT_FOUND,
            json!({"found": false}),
        ),
        (
            "/prod/check",
            StatusCode::NOT_FOUND,
            json!({"found": false}),
        ),
    ] {
        let (s, _, b) = send(
            gw.service(inner()),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!((s, json_of(&b)), (status, body), "{uri}");
    }
}

#[tokio::test]
async fn an_authorizer_api_key_source_meters_the_key_the_authorizer_returns() {
    use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
    let doc = r#"{
      "openapi": "3.0.1", "info": {"title": "k", "version": "1"},
      "x-amazon-apigateway-api-key-source": "AUTHORIZER",
      "paths": {"/me": {"get": {"security": [{"api_key": [], "tokens": []}]}}},
      "components": {"securitySchemes": {
        "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
        "tokens": {"type": "apiKey", "name": "token", "in": "query",
          "x-amazon-apigateway-authtype": "custom",
          "x-amazon-apigateway-authorizer": {"type": "request", "identitySource": "method.request.querystring.token"}}
      }}
    }"#;
    let existing = Config::from_yaml_str(
        r#"
routes: { /old: [GET] }
stages: { prod: {} }
plans: { small: { stages: [prod], quota: { limit: 5, period: day } } }
keys:
  - { name: tenant-a, value: tenant-a-key-0123456789abc, plans: [small] }
"#,
    )
    .unwrap();
    let imported = import_into(&existing, doc, &options()).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let config = imported.config;
    let exported = export_stage(&config, "prod", &ExportOptions::default()).unwrap();
    assert_eq!(
        exported.document["x-amazon-apigateway-api-key-source"],
        "AUTHORIZER"
    );
    let gw = Gateway::builder(config)
        .authorizer("tokens", |req: AuthorizerRequest| async move {
            Ok(match req.identity("querystring.token") {
                Some("t-a") => Verdict::allow("tenant-a").with_usage_identifier_key(
                    tollgate::secret::Secret::new("tenant-a-key-0123456789abc"),
                ),
                _ => Verdict::allow("stranger"),
            })
        })
        .build()
        .unwrap();
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    // The key comes from the authorizer, not from a header.
    assert_eq!(
        send(gw.service(inner()), get("/prod/me?token=t-a")).await.0,
        StatusCode::OK
    );
    let with_header = Request::get("/prod/me?token=t-b")
        .header("x-api-key", "tenant-a-key-0123456789abc")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(gw.service(inner()), with_header).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_integration_http_method_is_the_upstreams() {
    let up = upstream().await;
    let doc = format!(
        r#"{{"openapi": "3.0.1", "info": {{"title": "m", "version": "1"}},
        "paths": {{"/search": {{"post": {{"x-amazon-apigateway-integration": {{
          "type": "http_proxy", "httpMethod": "GET", "uri": "http://{up}/find"}}}}}}}}}}"#
    );
    let imported = import(&doc, &options()).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let config = imported.config;
    for c in [config.clone(), {
        let e = export_stage(&config, "prod", &ExportOptions::default()).unwrap();
        assert_eq!(
            e.document["paths"]["/search"]["post"]["x-amazon-apigateway-integration"]["httpMethod"],
            "GET"
        );
        import(&e.to_json(), &options()).unwrap().config
    }] {
        let gw = Gateway::new(c).unwrap();
        let (status, _, body) = send(
            gw.service(inner()),
            Request::post("/prod/search").body(Body::from("q")).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json_of(&body)["method"], "GET");
    }
}

#[test]
fn info_description_is_the_api_description_both_ways() {
    let doc = r#"{"openapi": "3.0.1", "info": {"title": "t", "version": "1", "description": "Pets, mostly"},
        "paths": {"/e": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}}}"#;
    let config = import(doc, &options()).unwrap().config;
    assert_eq!(config.description.as_deref(), Some("Pets, mostly"));
    let stage = config.stages.keys().next().unwrap().clone();
    let out = export_stage(&config, &stage, &ExportOptions::default()).unwrap();
    assert_eq!(out.document["info"]["description"], "Pets, mostly");
    // From YAML too; absent, the export has none.
    let config = Config::from_yaml_str(
        "description: From YAML\nroutes: { /a: [GET] }\nstages: { prod: {} }\n",
    )
    .unwrap();
    assert_eq!(config.description.as_deref(), Some("From YAML"));
    let bare = Config::from_yaml_str("routes: { /a: [GET] }\nstages: { prod: {} }\n").unwrap();
    let out = export_stage(&bare, "prod", &ExportOptions::default()).unwrap();
    assert!(out.document["info"].get("description").is_none());
}
