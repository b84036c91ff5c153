//! Routing through the Gateway: stages, templates, 404/405, hostile paths.

mod support;

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tollgate::{Body, Config, Gateway, RequestContext};
use tower::{Service, ServiceExt, service_fn};

const CONFIG: &str = r#"
routes:
  /: [GET]
  /pets: [GET, POST]
  /pets/{petId}: [GET, PUT, DELETE]
  /pets/{petId}/toys/{toyId}: [GET]
  /pets/search: [GET]
  /files/{proxy+}: [ANY]
  /mixed: [GET, ANY]
stages:
  prod: { variables: { tier: gold } }
  dev: {}
"#;

/// An inner service that answers with what it saw, as JSON.
fn echo()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
{
    service_fn(|req: Request<Body>| async move {
        let ctx = req.extensions().get::<RequestContext>().cloned();
        let seen = match ctx {
            Some(ctx) => json!({
                "path": req.uri().path(),
                "query": req.uri().query(),
                "original": ctx.original_uri().to_string(),
                "stage": ctx.endpoint().stage(),
                "resource": ctx.endpoint().resource(),
                "method": ctx.endpoint().method_name(),
                "params": ctx.path_params().map(|(k, v)| (k.to_owned(), Value::from(v))).collect::<serde_json::Map<_, _>>(),
                "tier": ctx.endpoint().stage_variable("tier"),
                "request_id": ctx.request_id().to_string(),
            }),
            None => json!({ "context": null }),
        };
        Ok::<_, Infallible>(Response::new(Body::from(seen.to_string())))
    })
}

async fn call_with(
    config: &str,
    method: Method,
    uri: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let gateway = Gateway::new(Config::from_yaml_str(config).unwrap()).unwrap();
    let svc = gateway.service(echo());
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let (status, headers, bytes) = support::send(svc, req).await;
    (status, headers, support::json_or_null(&bytes))
}

async fn call(method: Method, uri: &str) -> (StatusCode, http::HeaderMap, Value) {
    call_with(CONFIG, method, uri).await
}

#[tokio::test]
async fn a_template_matches_and_the_stage_prefix_is_stripped() {
    let (status, headers, seen) = call(Method::GET, "/prod/pets/42?x=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["path"], "/pets/42");
    assert_eq!(seen["query"], "x=1");
    assert_eq!(seen["original"], "/prod/pets/42?x=1");
    assert_eq!(seen["stage"], "prod");
    assert_eq!(seen["resource"], "/pets/{petId}");
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["params"], json!({ "petId": "42" }));
    assert_eq!(seen["tier"], "gold");
    assert_eq!(
        headers["x-amzn-requestid"],
        seen["request_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn several_parameters_and_static_segments_take_priority() {
    let (_, _, seen) = call(Method::GET, "/dev/pets/7/toys/ball").await;
    assert_eq!(seen["params"], json!({ "petId": "7", "toyId": "ball" }));
    assert_eq!(seen["tier"], Value::Null);
    let (_, _, seen) = call(Method::GET, "/prod/pets/search").await;
    assert_eq!(seen["resource"], "/pets/search");
}

#[tokio::test]
async fn the_greedy_parameter_takes_one_or_more_segments() {
    let (status, _, seen) = call(Method::GET, "/prod/files/a/b/c.txt").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["params"], json!({ "proxy": "a/b/c.txt" }));
    assert_eq!(seen["path"], "/files/a/b/c.txt");
    // A trailing slash stays part of the greedy value.
    let (_, _, seen) = call(Method::GET, "/prod/files/dir/").await;
    assert_eq!(seen["params"], json!({ "proxy": "dir/" }));
    // `{proxy+}` needs at least one segment.
    assert_eq!(
        call(Method::GET, "/prod/files").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(Method::GET, "/prod/files/").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn any_takes_every_method_and_an_explicit_method_wins() {
    for m in [
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::from_bytes(b"PURGE").unwrap(),
    ] {
        let (status, _, seen) = call(m.clone(), "/prod/files/x").await;
        assert_eq!(status, StatusCode::OK, "{m}");
        assert_eq!(seen["method"], "ANY");
    }
    assert_eq!(call(Method::GET, "/prod/mixed").await.2["method"], "GET");
    assert_eq!(call(Method::POST, "/prod/mixed").await.2["method"], "ANY");
}

#[tokio::test]
async fn a_trailing_slash_is_ignored() {
    let (status, _, seen) = call(Method::GET, "/prod/pets/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["resource"], "/pets");
    assert_eq!(seen["path"], "/pets/");
    let (_, _, seen) = call(Method::GET, "/prod/pets/9/").await;
    assert_eq!(seen["params"], json!({ "petId": "9" }));
}

#[tokio::test]
async fn the_root_resource_is_the_stage_itself() {
    for uri in ["/prod", "/prod/"] {
        let (status, _, seen) = call(Method::GET, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(seen["resource"], "/");
        assert_eq!(seen["path"], "/");
    }
}

#[tokio::test]
async fn percent_encoded_parameters_are_decoded_and_stay_in_their_segment() {
    let (status, _, seen) = call(Method::GET, "/prod/pets/a%2Fb").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["resource"], "/pets/{petId}");
    assert_eq!(seen["params"], json!({ "petId": "a/b" }));
    assert_eq!(
        seen["path"], "/pets/a%2Fb",
        "the inner service sees the raw path"
    );
    let (_, _, seen) = call(Method::GET, "/prod/pets/caf%C3%A9%20au%20lait").await;
    assert_eq!(seen["params"], json!({ "petId": "café au lait" }));
    // `+` is not a space in a path.
    let (_, _, seen) = call(Method::GET, "/prod/pets/a+b").await;
    assert_eq!(seen["params"], json!({ "petId": "a+b" }));
}

#[tokio::test]
async fn unknown_stage_and_unknown_path_are_404_gateway_responses() {
    for uri in [
        "/test/pets",
        "/PROD/pets",
        "/prod/cats",
        "/prod/pets/1/2",
        "/",
        "//pets",
        "/prod//pets",
    ] {
        let (status, headers, body) = call(Method::GET, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-tollgate-error-type"], "RESOURCE_NOT_FOUND");
        assert_eq!(body, json!({ "message": "Not Found" }));
        assert!(headers.contains_key("x-amzn-requestid"));
    }
}

#[tokio::test]
async fn a_known_path_with_a_wrong_method_is_405_with_allow() {
    let (status, headers, body) = call(Method::PATCH, "/prod/pets/1").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, PUT, DELETE");
    assert_eq!(headers["x-tollgate-error-type"], "METHOD_NOT_ALLOWED");
    assert_eq!(body, json!({ "message": "Method Not Allowed" }));
    // HEAD is not implied by GET, as in API Gateway.
    let (status, headers, _) = call(Method::HEAD, "/prod/pets").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, POST");
}

#[tokio::test]
async fn status_and_message_are_overridable_from_config() {
    let config = format!(
        "{CONFIG}responses:\n  RESOURCE_NOT_FOUND: {{ status: 403, message: Missing Authentication Token }}\n  DEFAULT_4XX: {{ headers: {{ access-control-allow-origin: \"*\" }} }}\n"
    );
    let (status, headers, body) = call_with(&config, Method::GET, "/prod/nope").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({ "message": "Missing Authentication Token" }));
    assert_eq!(headers["x-tollgate-error-type"], "RESOURCE_NOT_FOUND");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let (status, headers, _) = call_with(&config, Method::PUT, "/prod/pets").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        headers["access-control-allow-origin"], "*",
        "DEFAULT_4XX applies to 405 too"
    );
}

#[tokio::test]
async fn every_request_gets_its_own_id() {
    let (_, a, _) = call(Method::GET, "/prod/pets").await;
    let (_, b, _) = call(Method::GET, "/prod/nope").await;
    assert_ne!(a["x-amzn-requestid"], b["x-amzn-requestid"]);
    assert_eq!(a["x-amzn-requestid"].len(), 36);
}

#[tokio::test]
async fn hostile_paths_get_clear_answers() {
    // A path of 64 KiB less three bytes, the longest `http::Uri` holds (a
    // longer one never reaches a tower service: hyper answers 414 itself).
    let max = u16::MAX as usize - 2;
    let long = format!("/prod/pets/{}", "a".repeat(max - "/prod/pets/".len()));
    assert_eq!(long.len(), max);
    let (status, _, seen) = call(Method::GET, &long).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["params"]["petId"].as_str().unwrap().len(), max - 11);
    let long = format!("/prod/{}", "x/".repeat((max - 6) / 2));
    assert_eq!(call(Method::GET, &long).await.0, StatusCode::NOT_FOUND);

    // Invalid UTF-8 once decoded.
    let (status, headers, body) = call(Method::GET, "/prod/pets/%FF%FE").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-tollgate-error-type"], "BAD_REQUEST_PARAMETERS");
    assert!(body["message"].as_str().unwrap().contains("UTF-8"));
    // A truncated escape is kept as it is (as browsers and API Gateway do).
    let (status, _, seen) = call(Method::GET, "/prod/pets/100%").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["params"]["petId"], "100%");

    // 10,000 query parameters (distinct names, no values, to fit in the
    // longest URI) pass through untouched.
    let query: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let uri = format!("/prod/pets?{}", query.join("&"));
    let (status, _, seen) = call(Method::GET, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seen["query"].as_str().unwrap().len(),
        uri.len() - "/prod/pets?".len()
    );
}

#[tokio::test]
async fn absolute_form_uris_keep_scheme_and_authority() {
    let (status, _, seen) = call(Method::GET, "http://api.example:8080/prod/pets/3?a=b").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["path"], "/pets/3");
    assert_eq!(seen["original"], "http://api.example:8080/prod/pets/3?a=b");
}

#[tokio::test]
async fn the_route_layer_works_without_the_gateway() {
    let config = Config::from_yaml_str(CONFIG).unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(tollgate::route::RouteLayer::new(&config).unwrap())
        .service(echo());
    let res = svc
        .oneshot(Request::get("/dev/pets/5").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let seen: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(seen["params"], json!({ "petId": "5" }));
}

/// More parameters than are held in place, some percent-encoded: every one
/// reads back decoded, in path order, by name.
#[tokio::test]
async fn six_parameters_read_back_in_order_and_by_name() {
    let config = Config::from_yaml_str(
        "routes: { \"/x/{a}/{b}/{c}/{d}/{e}/{f}\": [GET] }\nstages: { prod: {} }\n",
    )
    .unwrap();
    let svc = Gateway::new(config)
        .unwrap()
        .service(service_fn(|req: Request<Body>| async move {
            let ctx = req.extensions().get::<RequestContext>().unwrap();
            let all: Vec<String> = ctx.path_params().map(|(n, v)| format!("{n}={v}")).collect();
            let f = ctx.path_param("f").unwrap_or("-").to_owned();
            Ok::<_, Infallible>(Response::new(Body::from(format!(
                "{} f={f}",
                all.join(",")
            ))))
        }));
    let res = svc
        .oneshot(
            Request::get("/prod/x/1/two/%C3%A9/4/five%2Fsix/6")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], "a=1,b=two,c=é,d=4,e=five/six,f=6 f=6".as_bytes());
}
