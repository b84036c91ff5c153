//! `responses_profile`: `http` (the default) answers as HTTP does where it
//! and API Gateway differ; `aws` answers as API Gateway does, for clients
//! that expect its bytes.

mod support;

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

fn config(profile: &str, dead: std::net::SocketAddr) -> String {
    format!(
        r#"
{profile}
routes: {{ /pets: [GET], /dead: [GET] }}
stages:
  prod:
    methods:
      /dead/GET: {{ integration: {{ type: http, base: "http://{dead}" }} }}
"#
    )
}

async fn call(gw: &Gateway, method: Method, uri: &str) -> (StatusCode, http::HeaderMap, String) {
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("pets")))
    });
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let res = gw.service(ok).oneshot(req).await.unwrap();
    let (status, headers, body) = support::read(res).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn aws_answers_unknown_paths_and_methods_and_failed_integrations_as_api_gateway() {
    let gw = Gateway::new(
        Config::from_yaml_str(&config(
            "responses_profile: aws",
            support::dead_port().await,
        ))
        .unwrap(),
    )
    .unwrap();
    for (method, uri) in [
        (Method::GET, "/prod/cats"),
        (Method::GET, "/nostage/pets"),
        (Method::DELETE, "/prod/pets"),
    ] {
        let (status, headers, body) = call(&gw, method.clone(), uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
        assert_eq!(body, r#"{"message":"Missing Authentication Token"}"#);
        assert_eq!(
            support::error_type(&headers),
            "MISSING_AUTHENTICATION_TOKEN"
        );
        assert!(headers.get("allow").is_none());
    }
    let (status, headers, body) = call(&gw, Method::GET, "/prod/dead").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    assert_eq!(support::error_type(&headers), "INTEGRATION_FAILURE");
    // What API Gateway answers alike is unchanged.
    assert_eq!(call(&gw, Method::GET, "/prod/pets").await.0, StatusCode::OK);
}

#[tokio::test]
async fn http_the_default_keeps_404_405_with_allow_and_502() {
    let gw = Gateway::new(Config::from_yaml_str(&config("", support::dead_port().await)).unwrap())
        .unwrap();
    let (status, headers, body) = call(&gw, Method::GET, "/prod/cats").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#)
    );
    assert_eq!(support::error_type(&headers), "RESOURCE_NOT_FOUND");
    let (status, headers, _) = call(&gw, Method::DELETE, "/prod/pets").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET");
    assert_eq!(
        call(&gw, Method::GET, "/prod/dead").await.0,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn overrides_apply_on_top_of_the_aws_profile() {
    let yaml = config(
        "responses_profile: aws\nresponses: { MISSING_AUTHENTICATION_TOKEN: { status: 404, message: nope }, INTEGRATION_FAILURE: { status: 502 } }",
        support::dead_port().await,
    );
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let (status, _, body) = call(&gw, Method::GET, "/prod/cats").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, r#"{"message":"nope"}"#)
    );
    assert_eq!(
        call(&gw, Method::GET, "/prod/dead").await.0,
        StatusCode::BAD_GATEWAY
    );
    assert!(
        Config::from_yaml_str(
            "routes: { /a: [GET] }\nstages: { prod: {} }\nresponses_profile: gcp\n"
        )
        .is_err()
    );
}

/// A gateway whose `/auth` is behind an authorizer that fails for
/// `Bearer fail` and denies anything else, `/key` needs an API key and
/// `/slow` allows one request.
fn guarded(profile: &str) -> Gateway {
    let yaml = format!(
        r#"
{profile}
routes: {{ /auth: [GET], /key: [GET], /slow: [GET] }}
stages:
  prod:
    methods:
      /auth/GET: {{ authorization: authorizer, authorizer: bearer }}
      /key/GET: {{ api_key_required: true }}
      /slow/GET: {{ throttle: {{ rate: 0.001, burst: 1 }} }}
authorizers:
  bearer: {{ identity_sources: [header.Authorization] }}
"#
    );
    Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
        .authorizer(
            "bearer",
            |req: tollgate::auth::authorizer::AuthorizerRequest| async move {
                match req.identity("header.Authorization") {
                    Some("Bearer fail") => Err(tollgate::store::StoreError::unavailable("down")),
                    _ => Ok(tollgate::auth::authorizer::Verdict::deny("anonymous")),
                }
            },
        )
        .build()
        .unwrap()
}

async fn send(
    gw: &Gateway,
    uri: &str,
    auth: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = gw
        .service(support::ok())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers, body) = support::read(res).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn aws_answers_a_failed_authorizer_500_with_a_null_message() {
    let gw = guarded("responses_profile: aws");
    let (status, headers, body) = send(&gw, "/prod/auth", Some("Bearer fail")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, r#"{"message":null}"#);
    assert_eq!(
        headers["x-amzn-errortype"],
        "AuthorizerConfigurationException"
    );
    assert_eq!(
        support::error_type(&headers),
        "AUTHORIZER_CONFIGURATION_ERROR"
    );
    // The default profile keeps tollgate's 503 and sends no x-amzn-ErrorType.
    let gw = guarded("");
    let (status, headers, body) = send(&gw, "/prod/auth", Some("Bearer fail")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"message":"Service Unavailable"}"#);
    assert_eq!(support::error_type(&headers), "BACKEND_UNAVAILABLE");
    assert!(headers.get("x-amzn-errortype").is_none());
}

#[tokio::test]
async fn aws_names_each_refusal_in_x_amzn_error_type() {
    let gw = guarded("responses_profile: aws");
    for (uri, auth, status, error_type) in [
        (
            "/prod/nowhere",
            None,
            403,
            "MissingAuthenticationTokenException",
        ),
        ("/prod/key", None, 403, "ForbiddenException"),
        ("/prod/auth", Some("Bearer x"), 403, "AccessDeniedException"),
        ("/prod/auth", None, 401, "UnauthorizedException"),
    ] {
        let (got, headers, _) = send(&gw, uri, auth).await;
        assert_eq!(got.as_u16(), status, "{uri}");
        assert_eq!(headers["x-amzn-errortype"], error_type, "{uri}");
    }
    assert_eq!(send(&gw, "/prod/slow", None).await.0, StatusCode::OK);
    let (status, headers, _) = send(&gw, "/prod/slow", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["x-amzn-errortype"], "TooManyRequestsException");
}
