//! Custom domain names and base path mappings: the longest base path wins,
//! the mapped prefix is stripped, `""` is the `(none)` mapping, a known
//! domain with no mapping for the path is 403 Forbidden, a `Host` with a
//! port or in upper case still matches, and `disable_execute_api_endpoint`
//! turns the `/{stage}/...` form off.

mod support;

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use tollgate::{Body, Config, Gateway, RequestContext};
use tower::ServiceExt;

const CONFIG: &str = r#"
name: shop
routes: { /pets: [GET], "/pets/{id}": [GET], /: [GET] }
stages: { prod: {}, beta: {} }
domains:
  api.example.test:
    base_paths:
      "": { stage: prod }
      v2/beta: { api: shop, stage: beta }
      beta: { stage: beta }
  only.example.test:
    base_paths:
      store: { stage: prod }
"#;

/// Sends `GET path` with `host` to a gateway on `yaml` whose inner service
/// answers `STAGE PATH-IT-SAW ID`.
async fn get(yaml: &str, host: Option<&str>, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let gw = Gateway::new(Config::from_yaml_str(yaml).unwrap()).unwrap();
    let inner = tower::service_fn(|req: Request<Body>| async move {
        let ctx = req.extensions().get::<RequestContext>().unwrap();
        let text = format!(
            "{} {} {}",
            ctx.endpoint().stage(),
            req.uri().path(),
            ctx.path_param("id").unwrap_or("-")
        );
        Ok::<_, Infallible>(Response::new(Body::from(text)))
    });
    let mut req = Request::get(path);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let res = gw
        .service(inner)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers, body) = support::read(res).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_longest_base_path_wins_and_its_prefix_is_stripped() {
    let host = Some("api.example.test");
    assert_eq!(
        get(CONFIG, host, "/v2/beta/pets/7").await.2,
        "beta /pets/7 7"
    );
    assert_eq!(get(CONFIG, host, "/beta/pets").await.2, "beta /pets -");
    // `v2` alone is no base path: the (none) mapping takes it, and prod has
    // no `/v2/...` resource.
    assert_eq!(get(CONFIG, host, "/v2/pets").await.0, StatusCode::NOT_FOUND);
    // The (none) mapping: the whole path is the resource path.
    assert_eq!(get(CONFIG, host, "/pets/3").await.2, "prod /pets/3 3");
    assert_eq!(get(CONFIG, host, "/").await.2, "prod / -");
    // A base path is whole segments.
    assert_eq!(get(CONFIG, host, "/betamax").await.0, StatusCode::NOT_FOUND);
    // The base path alone is the stage's root.
    assert_eq!(get(CONFIG, host, "/beta").await.2, "beta / -");
}

#[tokio::test]
async fn a_host_with_a_port_or_in_upper_case_matches_and_authority_counts() {
    assert_eq!(
        get(CONFIG, Some("API.Example.TEST:8443"), "/beta/pets")
            .await
            .2,
        "beta /pets -"
    );
    // No `Host` header: the URI's authority, as HTTP/2's `:authority`.
    assert_eq!(
        get(CONFIG, None, "https://api.example.test/beta/pets")
            .await
            .2,
        "beta /pets -"
    );
}

#[tokio::test]
async fn a_known_domain_without_a_mapping_is_forbidden() {
    let (status, headers, body) = get(CONFIG, Some("only.example.test"), "/pets").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, r#"{"message":"Forbidden"}"#);
    assert_eq!(support::error_type(&headers), "UNMAPPED_REQUEST");
    assert_eq!(
        get(CONFIG, Some("only.example.test"), "/store/pets")
            .await
            .2,
        "prod /pets -"
    );
}

#[tokio::test]
async fn other_hosts_use_the_execute_api_form_unless_it_is_disabled() {
    assert_eq!(
        get(CONFIG, Some("127.0.0.1:8080"), "/beta/pets").await.2,
        "beta /pets -"
    );
    let disabled = format!("{CONFIG}disable_execute_api_endpoint: true\n");
    let (status, headers, _) = get(&disabled, Some("127.0.0.1:8080"), "/beta/pets").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(support::error_type(&headers), "UNMAPPED_REQUEST");
    // The domain still serves.
    assert_eq!(
        get(&disabled, Some("api.example.test"), "/beta/pets")
            .await
            .2,
        "beta /pets -"
    );
}

#[test]
fn mappings_to_what_does_not_exist_are_config_errors() {
    let yaml = r#"
routes: { /pets: [GET] }
stages: { prod: {} }
domains:
  a.example.test: { base_paths: { v1: { stage: gamma }, v2: { api: other, stage: prod }, "/v3": { stage: prod } } }
"#;
    let issues = support::issues(yaml);
    for expected in [
        "unknown stage `gamma`",
        "unknown API `other` (this config's API is `tollgate`)",
        "`/v3` is not a base path",
    ] {
        assert!(
            issues.iter().any(|i| i.contains(expected)),
            "{expected}\n{issues:#?}"
        );
    }
}

#[tokio::test]
async fn the_request_targets_authority_wins_and_two_hosts_are_refused() {
    // An absolute-form target names its host; `Host` is then ignored
    // (RFC 9112 section 3.2.2), as a proxy in front reads it.
    assert_eq!(
        get(
            CONFIG,
            Some("api.example.test"),
            "http://only.example.test/store/pets"
        )
        .await
        .2,
        "prod /pets -"
    );
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let req = Request::get("/beta/pets")
        .header("host", "api.example.test")
        .header("host", "only.example.test")
        .body(Body::empty())
        .unwrap();
    let res = gw.service(support::ok()).oneshot(req).await.unwrap();
    let (status, headers, _) = support::read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(support::error_type(&headers), "BAD_REQUEST_PARAMETERS");
}

#[tokio::test]
async fn an_asterisk_target_is_no_path_on_any_domain() {
    // `OPTIONS *` with a `*` base path configured: a 404, not a panic.
    let yaml = CONFIG.replace("store: { stage: prod }", "\"*\": { stage: prod }");
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    for host in ["only.example.test", "api.example.test"] {
        let req = Request::options("*")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        let res = gw.service(support::ok()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{host}");
    }
}

#[test]
fn turning_the_execute_api_form_off_without_a_domain_is_refused() {
    let yaml = "routes: { /a: [GET] }\nstages: { prod: {} }\ndisable_execute_api_endpoint: true\n";
    let issues = support::issues(yaml);
    assert_eq!(
        issues,
        [
            "disable_execute_api_endpoint: with no `domains`, every request would be refused: map a domain first"
        ]
    );
}
