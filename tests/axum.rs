//! The Gateway in front of an axum Router, as examples/axum_router.rs serves it.

use axum::extract::{Extension, Path};
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tollgate::{Config, Gateway, RequestContext};
use tower::ServiceExt;

async fn hello(Path(name): Path<String>, Extension(ctx): Extension<RequestContext>) -> String {
    format!(
        "{} {name} {}",
        ctx.endpoint().stage(),
        ctx.endpoint().stage_variable("greeting").unwrap_or("-")
    )
}

#[tokio::test]
async fn axum_routes_on_the_stripped_path_and_sees_the_context() {
    let config = Config::from_yaml_str(
        "routes: { \"/hello/{name}\": [GET] }\nstages: { prod: { variables: { greeting: hi } } }\n",
    )
    .unwrap();
    let gateway = Gateway::new(config).unwrap();
    let app = axum::Router::new().route("/hello/{name}", get(hello));
    let service = axum::Router::new().fallback_service(gateway.service(app));

    let res = service
        .clone()
        .oneshot(
            Request::get("/prod/hello/world")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-amzn-requestid"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"prod world hi");

    let res = service
        .oneshot(
            Request::get("/prod/goodbye")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["x-tollgate-error-type"], "RESOURCE_NOT_FOUND");
}
