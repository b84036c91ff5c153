//! Lambda proxy integrations in process (issue 21): API Gateway's event
//! (payload format 1.0) to a registered function, its answer back as API
//! Gateway maps it, and every way a function can fail.

mod support;

use std::convert::Infallible;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use base64::Engine;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use support::{json_of, send};
use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
use tollgate::{Body, Config, Gateway};
use tower::service_fn;

const CONFIG: &str = r#"
name: lambdas
routes:
  /echo/{id}: [GET, POST]
  /bin: [POST]
  /who: [GET]
  /bad/{kind}: [GET]
  /eager: [GET]
  /gone: [GET]
stages:
  prod:
    variables: { color: blue }
    methods:
      /echo/{id}/*: { integration: { type: lambda, function: echo }, api_key_required: true }
      /bin/POST: { integration: { type: lambda, function: echo }, binary_media_types: [image/png] }
      /who/GET: { integration: { type: lambda, function: echo }, authorization: authorizer, authorizer: tokens }
      /bad/{kind}/GET: { integration: { type: lambda, function: bad } }
      /eager/GET: { integration: { type: lambda, function: eager } }
authorizers:
  tokens: { identity_sources: [header.Authorization] }
plans:
  basic: { stages: [prod] }
keys:
  - { name: k1, value: key-l-0123456789abcdef, plans: [basic] }
"#;

/// The event back as JSON, as the petstore's `echo`.
async fn echo(event: ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, serde_json::Error> {
    let mut res = ApiGatewayProxyResponse::default();
    res.status_code = 200;
    res.body = Some(LambdaBody::Text(serde_json::to_string(&event)?));
    Ok(res)
}

/// Each way a function's answer can be wrong, by `{kind}`.
async fn bad(event: ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, std::io::Error> {
    let mut res = ApiGatewayProxyResponse::default();
    res.status_code = 200;
    match event.path_parameters.get("kind").map(String::as_str) {
        Some("status") => res.status_code = 1000,
        Some("base64") => {
            res.is_base64_encoded = true;
            res.body = Some(LambdaBody::Text("not base64!".into()));
        }
        Some("error") => return Err(std::io::Error::other("the function's own failure")),
        Some("panic") => panic!("a function that panics"),
        Some("headers") => {
            // multiValueHeaders win; headers fill what they lack.
            res.multi_value_headers.append("x-m", "1".parse().unwrap());
            res.multi_value_headers.append("x-m", "2".parse().unwrap());
            res.headers.insert("x-m", "3".parse().unwrap());
            res.headers.insert("x-s", "4".parse().unwrap());
            res.status_code = 201;
            res.is_base64_encoded = true;
            res.body = Some(LambdaBody::Text(
                base64::engine::general_purpose::STANDARD.encode(b"\x00\x01bin"),
            ));
        }
        _ => {}
    }
    Ok(res)
}

fn gateway() -> Gateway {
    Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .lambda("echo", echo)
        .lambda("bad", bad)
        // A handler that panics when called, before it has a future.
        .lambda(
            "eager",
            |_event: ApiGatewayProxyRequest| -> std::future::Ready<
                Result<ApiGatewayProxyResponse, std::io::Error>,
            > { panic!("a function that panics at once") },
        )
        .authorizer("tokens", |req: AuthorizerRequest| async move {
            Ok(match req.identity("header.Authorization") {
                Some("Bearer a") => Verdict::allow("alice").with_context("tier", "gold"),
                _ => Verdict::deny("nobody"),
            })
        })
        .build()
        .unwrap()
}

fn inner()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("inner")))
    })
}

#[tokio::test]
async fn the_event_carries_every_field_api_gateway_sets() {
    let gw = gateway();
    let req = Request::post("/prod/echo/7?q=1&q=2&one=x")
        .header("x-api-key", "key-l-0123456789abcdef")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("user-agent", "tester/1")
        .header("host", "api.example.test:8443")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"hello": "world"}"#))
        .unwrap();
    let (status, _, body) = send(gw.service(inner()), req).await;
    assert_eq!(status, StatusCode::OK);
    let e = json_of(&body);
    assert_eq!(e["resource"], "/echo/{id}");
    assert_eq!(e["path"], "/echo/7");
    assert_eq!(e["httpMethod"], "POST");
    assert_eq!(e["headers"]["x-multi"], "b", "headers keep the last value");
    assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
    assert_eq!(e["queryStringParameters"]["q"], "2");
    assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
    assert_eq!(e["queryStringParameters"]["one"], "x");
    assert_eq!(e["pathParameters"], json!({"id": "7"}));
    assert_eq!(e["stageVariables"], json!({"color": "blue"}));
    assert_eq!(e["body"], r#"{"hello": "world"}"#);
    assert_eq!(e["isBase64Encoded"], false);
    let rc = &e["requestContext"];
    assert_eq!(rc["stage"], "prod");
    assert_eq!(rc["resourcePath"], "/echo/{id}");
    assert_eq!(rc["path"], "/prod/echo/7");
    assert_eq!(rc["httpMethod"], "POST");
    assert_eq!(rc["apiId"], "lambdas");
    assert_eq!(rc["domainName"], "api.example.test");
    assert_eq!(rc["domainPrefix"], "api");
    assert_eq!(rc["requestId"].as_str().unwrap().len(), 36);
    assert!(rc["requestTimeEpoch"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(rc["requestTime"].as_str().unwrap().ends_with("+0000"));
    assert_eq!(rc["identity"]["userAgent"], "tester/1");
    assert_eq!(rc["identity"]["apiKey"], "key-l-0123456789abcdef");
    let key_id = rc["identity"]["apiKeyId"].as_str().unwrap();
    assert!(
        !key_id.is_empty() && !key_id.contains("0123456789"),
        "the key's id, not its value: {key_id}"
    );
}

#[tokio::test]
async fn a_query_without_repeats_fills_both_query_maps_decoded() {
    let gw = gateway();
    let req = Request::get("/prod/echo/1?a=1&b=x+y%21&flag&&c=")
        .header("x-api-key", "key-l-0123456789abcdef")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(gw.service(inner()), req).await;
    assert_eq!(status, StatusCode::OK);
    let e = json_of(&body);
    assert_eq!(
        e["queryStringParameters"],
        json!({"a": "1", "b": "x y!", "flag": "", "c": ""})
    );
    assert_eq!(
        e["multiValueQueryStringParameters"],
        json!({"a": ["1"], "b": ["x y!"], "flag": [""], "c": [""]})
    );
    // No query: both empty (aws_lambda_events writes an empty map as `{}`).
    let req = Request::get("/prod/echo/1")
        .header("x-api-key", "key-l-0123456789abcdef")
        .body(Body::empty())
        .unwrap();
    let e = json_of(&send(gw.service(inner()), req).await.2);
    assert_eq!(e["queryStringParameters"], json!({}));
    assert_eq!(e["multiValueQueryStringParameters"], json!({}));
}

#[tokio::test]
async fn the_authorizers_principal_and_context_reach_the_event() {
    let gw = gateway();
    let req = Request::get("/prod/who")
        .header("authorization", "Bearer a")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(gw.service(inner()), req).await;
    assert_eq!(status, StatusCode::OK);
    let e = json_of(&body);
    assert_eq!(e["requestContext"]["authorizer"]["principalId"], "alice");
    assert_eq!(e["requestContext"]["authorizer"]["tier"], "gold");
    assert_eq!(
        e["body"],
        Value::Null,
        "no body is null, as API Gateway sends it"
    );
}

#[tokio::test]
async fn a_binary_media_type_is_base64_and_text_is_not() {
    let gw = gateway();
    let png = b"\x89PNG\r\n\x1a\n\x00\xff";
    let req = Request::post("/prod/bin")
        .header("content-type", "image/png")
        .body(Body::from(&png[..]))
        .unwrap();
    let (_, _, body) = send(gw.service(inner()), req).await;
    let e = json_of(&body);
    assert_eq!(e["isBase64Encoded"], true);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(e["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, png);
    let req = Request::post("/prod/bin")
        .header("content-type", "text/plain")
        .body(Body::from("plain"))
        .unwrap();
    let e = json_of(&send(gw.service(inner()), req).await.2);
    assert_eq!(
        (e["isBase64Encoded"].clone(), e["body"].clone()),
        (json!(false), json!("plain"))
    );
}

#[tokio::test]
async fn the_answer_is_mapped_as_api_gateway_maps_it_and_faults_are_502() {
    let gw = gateway();
    let get = |kind: &str| {
        Request::get(format!("/prod/bad/{kind}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, body) = send(gw.service(inner()), get("headers")).await;
    assert_eq!(status, StatusCode::CREATED);
    let m: Vec<_> = headers.get_all("x-m").iter().collect();
    assert_eq!(m, ["1", "2"]);
    assert_eq!(headers["x-s"], "4");
    assert_eq!(&body[..], b"\x00\x01bin", "a base64 body is decoded");
    for kind in ["status", "base64", "error", "panic"] {
        let (status, headers, body) = send(gw.service(inner()), get(kind)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{kind}");
        assert_eq!(
            json_of(&body),
            json!({"message": "Internal server error"}),
            "{kind}"
        );
        assert_eq!(
            support::error_type(&headers),
            "INTEGRATION_FAILURE",
            "{kind}"
        );
    }
    let eager = Request::get("/prod/eager").body(Body::empty()).unwrap();
    let (status, _, body) = send(gw.service(inner()), eager).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "a panic at the call");
    assert_eq!(json_of(&body), json!({"message": "Internal server error"}));
    // The gateway still serves after a panic.
    assert_eq!(
        send(gw.service(inner()), get("headers")).await.0,
        StatusCode::CREATED
    );
}

#[test]
fn an_unregistered_function_or_a_mapping_is_a_config_error() {
    let err = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .authorizer("tokens", |_req: AuthorizerRequest| async {
            Ok(Verdict::allow("x"))
        })
        .lambda("bad", bad)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no Lambda function `echo` is registered"),
        "{err}"
    );
    let err = Config::from_yaml_str(
        r#"
routes: { /a: [GET] }
stages:
  prod:
    methods:
      /a/GET:
        integration: { type: lambda, function: f }
        mapping: { request: { set: { integration.request.header.x: "'y'" } } }
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("a Lambda proxy integration takes no `mapping`"),
        "{err}"
    );
}

#[tokio::test]
async fn an_openapi_aws_proxy_naming_a_registered_function_calls_it() {
    use tollgate::openapi::{ExportOptions, ImportOptions, export, import};
    // set-up-lambda-proxy-integrations.md's document (tests/vectors/agw-openapi).
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/agw-openapi/lambda-proxy-oas30.json"
    ))
    .unwrap();
    // Not registered: the function is invoked remotely, by its ARN.
    let imported = import(&doc, &ImportOptions::default()).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let remote = serde_json::to_value(&imported.config).unwrap();
    let remote = remote.to_string();
    assert!(
        remote.contains(
            r#""arn":"arn:aws:lambda:us-east-1:123456789012:function:SimpleLambda4ProxyResource""#
        ),
        "{remote}"
    );
    // A URI whose function a stage variable names cannot be invoked: a
    // warning, the wrapped service answers.
    let staged = doc.replace(
        "function:SimpleLambda4ProxyResource/",
        "function:${stageVariables.fn}/",
    );
    let imported = import(&staged, &ImportOptions::default()).unwrap();
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.message.contains("neither registered")),
        "{:?}",
        imported.warnings
    );
    let mut options = ImportOptions::default();
    options
        .functions
        .insert("SimpleLambda4ProxyResource".to_owned());
    let imported = import(&doc, &options).unwrap();
    assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    let config = imported.config;
    for c in [config.clone(), {
        // Exported (as aws_proxy to the function's ARN) and imported again.
        let e = export(&config, "prod", &ExportOptions::default()).unwrap();
        import(&e.to_json(), &options).unwrap().config
    }] {
        let gw = Gateway::builder(c)
            .lambda("SimpleLambda4ProxyResource", echo)
            .build()
            .unwrap();
        let (status, _, body) = send(
            gw.service(inner()),
            Request::get("/prod/hello/world?x=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let e = json_of(&body);
        assert_eq!(e["resource"], "/{proxy+}");
        assert_eq!(e["pathParameters"], json!({"proxy": "hello/world"}));
        assert_eq!(e["queryStringParameters"]["x"], "1");
    }
}

/// A non-proxy (custom) Lambda integration: the request template makes the
/// payload, the answer goes through the integration responses, an error is
/// selected by its `errorMessage` (handle-errors-in-lambda-integration.md).
const CUSTOM: &str = r#"
routes:
  /pets/{id}: [GET]
  /plain: [POST]
  /bare: [POST]
  /typed: [POST]
stages:
  prod:
    methods:
      /pets/{id}/GET:
        integration: { type: lambda, function: pets, proxy: false }
        mapping:
          request:
            templates: { application/json: '{"id": "{{ input.params("id") }}", "q": "{{ input.params("q") }}"}' }
          responses:
            - selection_pattern: "Not found: .*"
              status: 404
              templates: { application/json: '{"missing": {{ input.json("$.errorMessage") }}}' }
            - selection_pattern: "Invalid.*"
              status: 400
            - templates: { application/json: '{"pet": {{ input.json("$") }}}' }
      /plain/POST:
        integration: { type: lambda, function: pets, proxy: false }
        mapping:
          responses:
            - selection_pattern: "Not found: .*"
              status: 404
      /bare/POST: { integration: { type: lambda, function: pets, proxy: false } }
      /typed/POST: { integration: { type: lambda, function: typed, proxy: false } }
"#;

async fn pets(input: Value) -> Result<Value, std::io::Error> {
    match input["id"].as_str() {
        Some("boom") => panic!("the function fell over"),
        Some("7") => Ok(json!({ "id": 7, "name": "Rex", "q": input["q"] })),
        Some("bad") => Err(std::io::Error::other("Invalid id: bad")),
        Some("odd") => Err(std::io::Error::other("something else")),
        Some(other) => Err(std::io::Error::other(format!("Not found: {other}"))),
        None => Ok(json!({ "echo": input })),
    }
}

#[tokio::test]
async fn a_custom_integration_maps_the_payload_and_selects_on_the_error_message() {
    let gw = Gateway::builder(Config::from_yaml_str(CUSTOM).unwrap())
        .lambda_json("pets", pets)
        .lambda("typed", echo)
        .build()
        .unwrap();
    let call = |method: &str, path: &str, body: &str| {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let svc = gw.service(inner());
        async move {
            let (status, _, body) = send(svc, req).await;
            (status, json_of(&body))
        }
    };
    // Success: the template's payload in, the default response's template out.
    let (status, body) = call("GET", "/prod/pets/7?q=x", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "pet": { "id": 7, "name": "Rex", "q": "x" } }));
    // A thrown error: matched whole against each pattern.
    let (status, body) = call("GET", "/prod/pets/9", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "missing": "Not found: 9" }));
    let (status, body) = call("GET", "/prod/pets/bad", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorMessage"], "Invalid id: bad");
    // No pattern matches: the default response (status 200), the error as its input.
    let (status, body) = call("GET", "/prod/pets/odd", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pet"]["errorMessage"], "something else");
    // A panic is a failed integration.
    let (status, body) = call("GET", "/prod/pets/boom", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, json!({ "message": "Internal server error" }));

    // No template: the body passes through as the payload, the answer as is.
    let (status, body) = call("POST", "/prod/plain", r#"{"a": 1}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "echo": { "a": 1 } }));
    // An error no integration response takes (no default): 502.
    let (status, _) = call("POST", "/prod/plain", r#"{"id": "odd"}"#).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _) = call("POST", "/prod/plain", r#"{"id": "3"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // No integration responses at all: an error is 502, a body that is
    // not JSON is the function's error, an empty one is `{}`.
    assert_eq!(
        call("POST", "/prod/bare", r#"{"id": "3"}"#).await.0,
        StatusCode::BAD_GATEWAY
    );
    // A body that is not JSON is no payload: refused as Lambda's Invoke
    // refuses it, 500.
    assert_eq!(
        call("POST", "/prod/bare", "not json").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        call("POST", "/prod/bare", "").await,
        (StatusCode::OK, json!({ "echo": {} }))
    );
    // A proxy handler behind a custom integration: the payload read as an
    // event, its answer written as JSON.
    let (status, body) = call(
        "POST",
        "/prod/typed",
        r#"{"httpMethod": "PUT", "body": "hi"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["statusCode"], 200);
    let event: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["httpMethod"], "PUT");
    assert_eq!(event["body"], "hi");
}

#[test]
fn a_custom_integration_takes_a_mapping_and_a_proxy_one_does_not() {
    assert!(Config::from_yaml_str(CUSTOM).is_ok());
    let proxy = CUSTOM.replace(
        "function: pets, proxy: false }\n        mapping",
        "function: pets }\n        mapping",
    );
    let err = Config::from_yaml_str(&proxy).unwrap_err().to_string();
    assert!(
        err.contains("a Lambda proxy integration takes no `mapping`"),
        "{err}"
    );
}

#[tokio::test]
async fn an_openapi_aws_integration_to_a_function_is_a_custom_lambda_integration() {
    use tollgate::openapi::{ExportOptions, ImportOptions, export, import};
    let doc = json!({
        "openapi": "3.0.1",
        "info": { "title": "pets", "version": "1" },
        "paths": {
            "/pets/{id}": { "get": {
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "ok" }, "404": { "description": "missing" } },
                "x-amazon-apigateway-integration": {
                    "type": "aws",
                    "httpMethod": "POST",
                    "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:pets/invocations",
                    "passthroughBehavior": "when_no_templates",
                    "requestTemplates": { "application/json": "{\"id\": \"$input.params('id')\"}" },
                    "responses": {
                        "Not found: .*": {
                            "statusCode": "404",
                            "responseTemplates": { "application/json": "{\"missing\": \"$input.path('$.errorMessage')\"}" }
                        },
                        "default": { "statusCode": "200" }
                    }
                }
            } },
            "/s3": { "get": {
                "responses": { "200": { "description": "ok" } },
                "x-amazon-apigateway-integration": {
                    "type": "aws", "httpMethod": "GET",
                    "uri": "arn:aws:apigateway:us-east-1:s3:path/bucket/key",
                    "responses": { "default": { "statusCode": "200" } }
                }
            } }
        }
    })
    .to_string();
    let mut options = ImportOptions::default();
    options.functions.insert("pets".to_owned());
    let imported = import(&doc, &options).unwrap();
    // Only the S3 integration is left to the wrapped service, and said so.
    assert_eq!(imported.warnings.len(), 1, "{:?}", imported.warnings);
    assert!(
        imported.warnings[0].message.contains("other than Lambda"),
        "{:?}",
        imported.warnings
    );
    let config = imported.config;
    let exported = export(&config, "prod", &ExportOptions::default())
        .unwrap()
        .to_json();
    let e: Value = serde_json::from_str(&exported).unwrap();
    let i = &e["paths"]["/pets/{id}"]["get"]["x-amazon-apigateway-integration"];
    assert_eq!(i["type"], "aws", "{i}");
    assert!(i["requestTemplates"]["application/json"].is_string(), "{i}");
    assert_eq!(i["responses"]["Not found: .*"]["statusCode"], "404", "{i}");
    for c in [config.clone(), import(&exported, &options).unwrap().config] {
        let gw = Gateway::builder(c)
            .lambda_json("pets", pets)
            .build()
            .unwrap();
        let get = |path: &str| {
            let req = Request::get(path)
                .header("content-type", "application/json")
                .body(Body::empty())
                .unwrap();
            send(gw.service(inner()), req)
        };
        let (status, _, body) = get("/prod/pets/7").await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(json_of(&body)["name"], "Rex");
        let (status, _, body) = get("/prod/pets/12").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json_of(&body), json!({ "missing": "Not found: 12" }));
    }
}
