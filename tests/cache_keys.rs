//! Response cache keys: method, path and query for the layer alone; listed
//! query parameters and headers, path parameters and the API key
//! (`per_key`) through the gateway; and keys that never show their parts.

mod support;

use http::Method;
use support::cache::{Backend, T0, gateway, get, layer, send};
use tollgate::cache::{CacheKey, CacheStatus};
use tollgate::clock::ManualClock;
use tower::Layer;

#[tokio::test]
async fn standalone_keys_are_method_path_and_query() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets?type=dog").await;
    send(&svc, Method::GET, "/pets?type=cat").await;
    send(&svc, Method::GET, "/pets").await;
    let (_, s, _, _) = send(&svc, Method::GET, "/pets?type=dog").await;
    assert_eq!(s, Some(CacheStatus::Hit));
    assert_eq!(backend.calls(), 3);
}

#[test]
fn keys_do_not_show_their_parts() {
    let key = CacheKey::from_parts([&b"Authorization: Bearer secret-token"[..]]);
    assert!(!format!("{key:?}").contains("secret"));
}

#[tokio::test]
async fn listed_parameters_split_entries_and_unlisted_ones_do_not() {
    let clock = ManualClock::at_unix_secs(T0);
    let (gw, backend) = gateway(&clock);
    let svc = gw.service(backend.clone());
    assert_eq!(
        get(&svc, "/prod/pets?type=dog&page=1", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    // `page` is not in the key: same entry.
    assert_eq!(
        get(&svc, "/prod/pets?page=2&type=dog", &[]).await.0,
        Some(CacheStatus::Hit)
    );
    // `type` is.
    assert_eq!(
        get(&svc, "/prod/pets?type=cat", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    // So is the Accept header.
    assert_eq!(
        get(&svc, "/prod/pets?type=dog", &[("accept", "text/plain")])
            .await
            .0,
        Some(CacheStatus::Miss)
    );
    // Path parameters always are.
    assert_eq!(
        get(&svc, "/prod/pets/1", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(
        get(&svc, "/prod/pets/2", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(
        get(&svc, "/prod/pets/1?x=1", &[]).await.0,
        Some(CacheStatus::Hit)
    );
    assert_eq!(backend.calls(), 5);
}

#[tokio::test]
async fn per_key_separates_tenants() {
    let clock = ManualClock::at_unix_secs(T0);
    let (gw, backend) = gateway(&clock);
    let svc = gw.service(backend.clone());
    let alice = [("x-api-key", "alice-key-0123456789abcdef")];
    let bob = [("x-api-key", "bob-key-0123456789abcdefgh")];
    let (s, a1) = get(&svc, "/prod/mine", &alice).await;
    assert_eq!(s, Some(CacheStatus::Miss));
    let (s, b1) = get(&svc, "/prod/mine", &bob).await;
    assert_eq!(s, Some(CacheStatus::Miss), "bob never gets alice's entry");
    assert_ne!(a1, b1);
    let (s, a2) = get(&svc, "/prod/mine", &alice).await;
    assert_eq!(s, Some(CacheStatus::Hit));
    assert_eq!(a1, a2);
    assert_eq!(backend.calls(), 2);
}

/// One app's API key shared by its users, each told apart by a custom
/// authorizer: with `per_key`, each user's responses are their own (the key
/// id alone would put every user of the app in one entry).
#[tokio::test]
async fn per_key_tells_users_of_one_api_key_apart_by_their_principal() {
    use http::Request;
    use std::convert::Infallible;
    use tollgate::auth::authorizer::{AuthorizerContext, AuthorizerRequest, Verdict};
    use tollgate::{Body, Config, Gateway};
    use tower::{ServiceExt, service_fn};

    let config = Config::from_yaml_str(
        r#"
routes: { /me: [GET] }
stages:
  prod:
    settings:
      authorization: authorizer
      authorizer: bearer
      api_key_required: true
      cache: { enabled: true, per_key: true }
plans: { p: { stages: [prod] } }
keys: [{ name: app, value: shared-app-key-0123456789abcdef, plans: [p] }]
authorizers: { bearer: { identity_sources: [header.Authorization], ttl: 0 } }
"#,
    )
    .unwrap();
    let bearer = |req: AuthorizerRequest| async move {
        let name = req
            .identity("header.Authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        Ok(name.map_or_else(|| Verdict::deny("anonymous"), Verdict::allow))
    };
    let gw = Gateway::builder(config)
        .clock(ManualClock::at_unix_secs(T0))
        .authorizer("bearer", bearer)
        .build()
        .unwrap();
    let whoami = service_fn(|req: Request<Body>| async move {
        let who = req
            .extensions()
            .get::<AuthorizerContext>()
            .map(|c| c.principal_id.clone());
        Ok::<_, Infallible>(http::Response::new(Body::from(format!(
            "data of {}",
            who.unwrap_or_default()
        ))))
    });
    for user in ["alice", "bob", "alice"] {
        let req = Request::get("/prod/me")
            .header("x-api-key", "shared-app-key-0123456789abcdef")
            .header("authorization", format!("Bearer {user}"))
            .body(Body::empty())
            .unwrap();
        let res = gw.service(whoami).oneshot(req).await.unwrap();
        let (status, _, body) = support::read(res).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!("data of {user}").as_bytes(),
            "{user} got another user's response"
        );
    }
}
