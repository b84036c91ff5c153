//! Cache invalidation: `Cache-Control: max-age=0` refreshes an entry only
//! for callers allowed to invalidate, under each unauthorized strategy; a
//! refresh that cannot be stored removes the entry; and through the gateway
//! the permission is the API key's.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::cache::{Backend, T0, layer, send};
use tollgate::cache::{
    CacheInvalidator, CacheLayer, CachePolicy, CacheStatus, MokaCacheStore, UnauthorizedStrategy,
};
use tollgate::clock::ManualClock;
use tollgate::{Body, Config, Gateway};
use tower::{Layer, Service, ServiceExt};

/// A request with `Cache-Control: max-age=0`, optionally allowed to invalidate.
async fn refresh<S>(
    svc: &S,
    allowed: bool,
) -> (StatusCode, Option<CacheStatus>, http::HeaderMap, Bytes)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::get("/pets")
        .header("cache-control", "no-transform, max-age=0")
        .body(Body::empty())
        .unwrap();
    if allowed {
        req.extensions_mut().insert(CacheInvalidator);
    }
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cache = res.extensions().get::<CacheStatus>().copied();
    let headers = res.headers().clone();
    (
        status,
        cache,
        headers,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn max_age_0_refreshes_only_for_callers_allowed_to_invalidate() {
    for strategy in [
        UnauthorizedStrategy::FailWith403,
        UnauthorizedStrategy::SucceedWithResponseHeader,
        UnauthorizedStrategy::SucceedWithoutResponseHeader,
    ] {
        let clock = ManualClock::at_unix_secs(T0);
        let backend = Backend::new();
        let mut policy = CachePolicy::default();
        policy.unauthorized = strategy;
        let svc = CacheLayer::new(Arc::new(MokaCacheStore::default()), policy)
            .with_clock(Arc::new(clock.clone()))
            .layer(backend.clone());
        let (_, _, _, first) = send(&svc, Method::GET, "/pets").await;

        let (status, s, headers, body) = refresh(&svc, false).await;
        match strategy {
            UnauthorizedStrategy::FailWith403 => {
                assert_eq!(status, StatusCode::FORBIDDEN);
                assert_eq!(headers["x-tollgate-error-type"], "ACCESS_DENIED");
                assert_eq!(s, None);
            }
            UnauthorizedStrategy::SucceedWithResponseHeader => {
                assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Hit)));
                assert_eq!(body, first);
                let warning = headers["warning"].to_str().unwrap();
                assert!(warning.starts_with("199 "), "{warning}");
                assert!(warning.contains("ignored"), "{warning}");
            }
            _ => {
                assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Hit)));
                assert_eq!(body, first);
                assert!(!headers.contains_key("warning"));
            }
        }
        assert_eq!(
            backend.calls(),
            1,
            "{strategy:?}: the backend was not asked"
        );

        // Allowed: the backend answers and its response replaces the entry.
        let (status, s, headers, second) = refresh(&svc, true).await;
        assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Miss)));
        assert!(!headers.contains_key("warning"));
        assert_ne!(second, first);
        assert_eq!(backend.calls(), 2);
        let (_, s, _, body) = send(&svc, Method::GET, "/pets").await;
        assert_eq!(s, Some(CacheStatus::Hit));
        assert_eq!(body, second, "{strategy:?}: the refreshed entry is served");
    }
}

#[tokio::test]
async fn a_refresh_that_cannot_be_stored_removes_the_old_entry() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    backend.unavailable.store(true, Ordering::SeqCst);
    let (status, s, _, _) = refresh(&svc, true).await;
    assert_eq!(
        (status, s),
        (StatusCode::SERVICE_UNAVAILABLE, Some(CacheStatus::Miss))
    );
    backend.unavailable.store(false, Ordering::SeqCst);
    let (_, s, _, _) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s, Some(CacheStatus::Miss), "the invalidated entry is gone");
}

#[tokio::test]
async fn without_require_authorization_anyone_may_refresh() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let mut policy = CachePolicy::default();
    policy.require_authorization = false;
    let svc = CacheLayer::new(Arc::new(MokaCacheStore::default()), policy)
        .with_clock(Arc::new(clock.clone()))
        .layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    let (_, s, _, _) = refresh(&svc, false).await;
    assert_eq!(s, Some(CacheStatus::Miss));
    assert_eq!(backend.calls(), 2);
}

const INVALIDATION: &str = r#"
routes:
  /fail: [GET]
  /warn: [GET]
  /quiet: [GET]
stages:
  prod:
    settings: { api_key_required: true, cache: { enabled: true } }
    methods:
      /fail/GET: { cache: { unauthorized: FAIL_WITH_403 } }
      /warn/GET: { cache: { unauthorized: SUCCEED_WITH_RESPONSE_HEADER } }
      /quiet/GET: { cache: { unauthorized: SUCCEED_WITHOUT_RESPONSE_HEADER } }
plans:
  p: { stages: [prod] }
keys:
  - { name: admin, value: admin-key-0123456789abcdef, plans: [p], can_invalidate_cache: true }
  - { name: user, value: user-key-0123456789abcdefg, plans: [p] }
"#;

#[tokio::test]
async fn gateway_invalidation_follows_the_key_permission_and_each_strategy() {
    let clock = ManualClock::at_unix_secs(T0);
    let gw = Gateway::builder(Config::from_yaml_str(INVALIDATION).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let backend = Backend::new();
    let svc = gw.service(backend.clone());
    let call = |path: &'static str, key: &'static str, refresh: bool| {
        let svc = svc.clone();
        async move {
            let mut req = Request::get(path).header("x-api-key", key);
            if refresh {
                req = req.header("cache-control", "max-age=0");
            }
            let res = svc.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            (
                res.status(),
                res.headers().get("x-cache").cloned(),
                res.headers().contains_key("warning"),
            )
        }
    };
    let user = "user-key-0123456789abcdefg";
    let admin = "admin-key-0123456789abcdef";
    let hit = Some(HeaderValue::from_static("Hit"));
    let miss = Some(HeaderValue::from_static("Miss"));
    for path in ["/prod/fail", "/prod/warn", "/prod/quiet"] {
        assert_eq!(call(path, user, false).await.1, miss);
    }
    assert_eq!(backend.calls(), 3);

    assert_eq!(
        call("/prod/fail", user, true).await,
        (StatusCode::FORBIDDEN, None, false)
    );
    assert_eq!(
        call("/prod/warn", user, true).await,
        (StatusCode::OK, hit.clone(), true)
    );
    assert_eq!(
        call("/prod/quiet", user, true).await,
        (StatusCode::OK, hit.clone(), false)
    );
    assert_eq!(
        backend.calls(),
        3,
        "no unauthorized refresh reached the backend"
    );

    for path in ["/prod/fail", "/prod/warn", "/prod/quiet"] {
        assert_eq!(
            call(path, admin, true).await,
            (StatusCode::OK, miss.clone(), false)
        );
    }
    assert_eq!(backend.calls(), 6);

    // The permission is on the key record: granting it at run time works.
    let keys = gw.key_manager();
    let id = keys
        .list()
        .await
        .unwrap()
        .iter()
        .find(|r| r.name == "user")
        .unwrap()
        .id
        .clone();
    assert!(
        keys.allow_cache_invalidation(&id, true)
            .await
            .unwrap()
            .can_invalidate_cache
    );
    assert_eq!(
        call("/prod/fail", user, true).await,
        (StatusCode::OK, miss.clone(), false)
    );
    assert_eq!(backend.calls(), 7);
}

/// A shared tier that follows: it keeps the memory tier it is given, so
/// the test can deliver "another process's" invalidation at a chosen time.
#[derive(Debug, Default)]
struct Shared {
    entry: std::sync::Mutex<Option<Arc<tollgate::cache::CachedResponse>>>,
    follower: std::sync::Mutex<Option<std::sync::Weak<dyn tollgate::cache::CacheStore>>>,
}

#[async_trait::async_trait]
impl tollgate::cache::CacheStore for Shared {
    async fn get(
        &self,
        _key: &tollgate::cache::CacheKey,
    ) -> Result<Option<Arc<tollgate::cache::CachedResponse>>, tollgate::store::StoreError> {
        Ok(self.entry.lock().unwrap().clone())
    }
    async fn put(
        &self,
        _key: tollgate::cache::CacheKey,
        entry: Arc<tollgate::cache::CachedResponse>,
    ) -> Result<(), tollgate::store::StoreError> {
        *self.entry.lock().unwrap() = Some(entry);
        Ok(())
    }
    async fn invalidate(
        &self,
        _key: &tollgate::cache::CacheKey,
    ) -> Result<(), tollgate::store::StoreError> {
        *self.entry.lock().unwrap() = None;
        Ok(())
    }
    async fn flush(&self) -> Result<(), tollgate::store::StoreError> {
        *self.entry.lock().unwrap() = None;
        Ok(())
    }
    fn follow(&self, local: std::sync::Weak<dyn tollgate::cache::CacheStore>) {
        *self.follower.lock().unwrap() = Some(local);
    }
}

/// A memory tier whose `put` lands late (a task descheduled under load).
#[derive(Debug, Default)]
struct SlowPut(MokaCacheStore);

#[async_trait::async_trait]
impl tollgate::cache::CacheStore for SlowPut {
    async fn get(
        &self,
        key: &tollgate::cache::CacheKey,
    ) -> Result<Option<Arc<tollgate::cache::CachedResponse>>, tollgate::store::StoreError> {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: tollgate::cache::CacheKey,
        entry: Arc<tollgate::cache::CachedResponse>,
    ) -> Result<(), tollgate::store::StoreError> {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.0.put(key, entry).await
    }
    async fn invalidate(
        &self,
        key: &tollgate::cache::CacheKey,
    ) -> Result<(), tollgate::store::StoreError> {
        self.0.invalidate(key).await
    }
    async fn flush(&self) -> Result<(), tollgate::store::StoreError> {
        self.0.flush().await
    }
    async fn invalidate_matching(
        &self,
        matches: &(dyn for<'k> Fn(&'k tollgate::cache::CacheKey) -> bool + Send + Sync),
    ) -> Result<(), tollgate::store::StoreError> {
        self.0.invalidate_matching(matches).await
    }
}

#[tokio::test]
async fn an_invalidation_racing_a_copy_from_the_shared_tier_leaves_no_old_entry() {
    use tollgate::cache::{CacheKey, CacheStore, CachedResponse, TieredCacheStore};
    let shared = Arc::new(Shared::default());
    let tiered = TieredCacheStore::new(Arc::new(SlowPut::default()), shared.clone());
    let key = CacheKey::from_parts([&b"GET"[..], b"/pets"]);
    let old = Arc::new(CachedResponse::new(
        StatusCode::OK,
        http::HeaderMap::new(),
        Bytes::from_static(b"old"),
        1,
        std::time::Duration::from_secs(300),
    ));
    shared.put(key.clone(), old).await.unwrap();
    // The lookup reads "old" from the shared tier and is putting it in
    // memory (slowly) when another process's invalidation arrives.
    let lookup = tokio::spawn({
        let (tiered, key) = (tiered.clone(), key.clone());
        async move { tiered.get(&key).await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    shared.invalidate(&key).await.unwrap();
    let follower = shared.follower.lock().unwrap().clone().unwrap();
    let memory = follower.upgrade().expect("the memory tier lives");
    memory
        .invalidate_matching(&|k: &CacheKey| *k == key)
        .await
        .unwrap();
    // The lookup answers with what it read, but leaves nothing behind.
    assert_eq!(
        lookup.await.unwrap().unwrap().body(),
        &Bytes::from_static(b"old")
    );
    assert!(
        tiered.get(&key).await.unwrap().is_none(),
        "the old entry came back after the invalidation"
    );
}
