//! Resource policies on source addresses: allow, deny, deny wins, API
//! Gateway's two messages, IPv6, a trusted proxy's X-Forwarded-For, the
//! API/stage/method overlay, and the order against keys and authorizers.

mod support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response, StatusCode};
use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
name: petstore
routes: { /pets: [GET], /keyed: [GET], /open: [GET], /me: [GET], /v6: [GET] }
settings:
  policy: { allow: ["203.0.113.0/24", "2001:db8::/32"], deny: ["203.0.113.7"] }
throttle_options: { trusted_proxies: ["10.0.0.1"] }
stages:
  prod:
    methods:
      /keyed/GET: { api_key_required: true }
      # A method override replaces the whole policy: this one is open.
      /open/GET: { policy: {} }
      /me/GET: { authorization: authorizer, authorizer: bearer }
      /v6/GET: { policy: { deny: ["2001:db8::bad/128"] } }
  test:
    # A stage override: only the deny list.
    settings: { policy: { deny: ["198.51.100.0/24"] } }
authorizers:
  bearer: { identity_sources: [header.Authorization] }
keys:
  - { name: k, value: key-0123456789abcdef0123 }
"#;

fn gateway(calls: Arc<AtomicUsize>) -> Gateway {
    Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .authorizer("bearer", move |req: AuthorizerRequest| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(match req.identity("header.Authorization") {
                    Some("Bearer ok") => Verdict::allow("user"),
                    _ => Verdict::deny("anonymous"),
                })
            }
        })
        .build()
        .unwrap()
}

/// `GET uri` from `ip` (with extra headers): status, error type, message.
async fn from(
    gw: &Gateway,
    uri: &str,
    ip: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let mut req = Request::get(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let ip: IpAddr = ip.parse().unwrap();
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::new(ip, 40000)));
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from(r#"{"ok":true}"#)))
    });
    let res = gw.service(ok).oneshot(req).await.unwrap();
    let (status, headers, body) = support::read(res).await;
    let message = support::json_or_null(&body)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, support::error_type(&headers), message)
}

const DENY: &str = "User: anonymous is not authorized to perform: execute-api:Invoke on resource: petstore/prod/GET/pets with an explicit deny";
const NOT_ALLOWED: &str = "User: anonymous is not authorized to perform: execute-api:Invoke on resource: petstore/prod/GET/pets";

#[tokio::test]
async fn allow_deny_and_deny_wins_with_api_gateways_messages() {
    let gw = gateway(Arc::default());
    assert_eq!(
        from(&gw, "/prod/pets", "203.0.113.9", &[]).await.0,
        StatusCode::OK
    );
    // In `allow` and in `deny`: deny wins, "with an explicit deny".
    assert_eq!(
        from(&gw, "/prod/pets", "203.0.113.7", &[]).await,
        (
            StatusCode::FORBIDDEN,
            "RESOURCE_POLICY_DENIED".into(),
            DENY.into()
        )
    );
    // In neither list: an implicit deny, without those words.
    assert_eq!(
        from(&gw, "/prod/pets", "198.51.100.1", &[]).await,
        (
            StatusCode::FORBIDDEN,
            "RESOURCE_POLICY_DENIED".into(),
            NOT_ALLOWED.into()
        )
    );
    // IPv6, and an IPv4-mapped IPv6 peer is its IPv4 address.
    assert_eq!(
        from(&gw, "/prod/pets", "2001:db8::1", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        from(&gw, "/prod/pets", "2001:db9::1", &[]).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        from(&gw, "/prod/pets", "::ffff:203.0.113.7", &[]).await.1,
        "RESOURCE_POLICY_DENIED"
    );
    let (status, _, message) = from(&gw, "/prod/v6", "2001:db8::bad", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.ends_with("petstore/prod/GET/v6 with an explicit deny"),
        "{message}"
    );
    assert_eq!(
        from(&gw, "/prod/v6", "2001:db8::bae", &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_trusted_proxy_forwards_for_the_client_and_nobody_else_does() {
    let gw = gateway(Arc::default());
    let xff = |v| [("x-forwarded-for", v)];
    // Through the trusted proxy, the forwarded address decides.
    assert_eq!(
        from(&gw, "/prod/pets", "10.0.0.1", &xff("203.0.113.9"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        from(&gw, "/prod/pets", "10.0.0.1", &xff("203.0.113.7"))
            .await
            .1,
        "RESOURCE_POLICY_DENIED"
    );
    // From anyone else, the header is the client's word, not believed.
    assert_eq!(
        from(&gw, "/prod/pets", "198.51.100.1", &xff("203.0.113.9"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn stage_and_method_overrides_replace_the_api_policy() {
    let gw = gateway(Arc::default());
    // `/open` has an empty policy of its own: anyone.
    assert_eq!(
        from(&gw, "/prod/open", "198.51.100.1", &[]).await.0,
        StatusCode::OK
    );
    // `test` denies one block and allows everyone else.
    assert_eq!(
        from(&gw, "/test/pets", "192.0.2.1", &[]).await.0,
        StatusCode::OK
    );
    let (status, kind, message) = from(&gw, "/test/pets", "198.51.100.1", &[]).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "RESOURCE_POLICY_DENIED")
    );
    assert!(message.ends_with("petstore/test/GET/pets with an explicit deny"));
}

#[tokio::test]
async fn the_policy_answers_before_keys_and_authorizers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gw = gateway(calls.clone());
    // No key from a denied address: the policy answers, not the key check.
    assert_eq!(
        from(&gw, "/prod/keyed", "203.0.113.7", &[]).await.1,
        "RESOURCE_POLICY_DENIED"
    );
    assert_eq!(
        from(&gw, "/prod/keyed", "203.0.113.9", &[]).await.1,
        "INVALID_API_KEY"
    );
    // An explicit deny is decided before the authorizer is called.
    let bearer = [("authorization", "Bearer ok")];
    assert_eq!(
        from(&gw, "/prod/me", "203.0.113.7", &bearer).await.1,
        "RESOURCE_POLICY_DENIED"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Outside `allow` but not denied: the authorizer decides (API Gateway's
    // Table A: an authorizer's allow and a policy's silence admit).
    assert_eq!(
        from(&gw, "/prod/me", "198.51.100.1", &bearer).await.0,
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // And its refusal is its own answer.
    assert_eq!(
        from(
            &gw,
            "/prod/me",
            "198.51.100.1",
            &[("authorization", "Bearer no")]
        )
        .await
        .1,
        "ACCESS_DENIED"
    );
}

#[tokio::test]
async fn an_ipv4_mapped_entry_is_its_ipv4_block() {
    // Found by the hostile review: such entries never matched.
    let yaml = "routes: { /pets: [GET] }\nsettings:\n  policy: { deny: [\"::ffff:203.0.113.7\", \"::ffff:198.51.100.0/120\"] }\nstages: { prod: {} }\n";
    let gw = Gateway::new(Config::from_yaml_str(yaml).unwrap()).unwrap();
    for peer in ["203.0.113.7", "::ffff:203.0.113.7", "198.51.100.9"] {
        assert_eq!(
            from(&gw, "/prod/pets", peer, &[]).await.1,
            "RESOURCE_POLICY_DENIED",
            "{peer}"
        );
    }
    assert_eq!(
        from(&gw, "/prod/pets", "198.51.101.9", &[]).await.0,
        StatusCode::OK
    );
}

#[test]
fn entries_that_are_not_addresses_are_config_errors() {
    let yaml = r#"
routes: { /a: [GET] }
settings: { policy: { allow: [example.com] } }
stages:
  prod:
    methods: { /a/GET: { policy: { deny: ["10.0.0.0/40"] } } }
"#;
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    for expected in [
        "settings.policy.allow[0]: `example.com` is not an IP address or CIDR block",
        r#"stages.prod.methods."/a/GET".policy.deny[0]: `10.0.0.0/40` is not an IP address or CIDR block"#,
    ] {
        assert!(err.contains(expected), "`{expected}` in:\n{err}");
    }
}
