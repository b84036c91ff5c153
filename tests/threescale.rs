//! The `threescale` authorizer and usage sink against a local server that
//! answers as 3scale's Service Management API reference says: `authrep`
//! 200 / 403 / 409 with its XML documents, `report` 202.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tollgate::threescale::{ThreeScaleConfig, ThreeScaleSink};
use tollgate::usage::{Reporter, ReporterConfig};
use tollgate::{Body, Config, Gateway};
use tower::service_fn;

const TOKEN: &str = "service-token-s3cr3t";
const SERVICE: &str = "2555417777820";

/// What the fake 3scale saw and how it behaves.
#[derive(Default)]
struct Fake {
    /// Hits counted per application (user key or app id) and metric.
    hits: Mutex<BTreeMap<(String, String), u64>>,
    authreps: AtomicUsize,
    reports: AtomicUsize,
    /// Answer the next this-many reports 500 without counting them.
    fail_reports: AtomicU32,
    /// 0 normal, 1 every call 500, 2 every call hangs.
    mode: AtomicU32,
    /// The query of each authrep.
    queries: Mutex<Vec<Vec<(String, String)>>>,
    /// When set, every authrep gets this status and body instead.
    authrep_answer: Mutex<Option<(u16, String)>>,
    /// Milliseconds each report waits before it is answered.
    report_delay_ms: AtomicU32,
}

impl Fake {
    fn hits(&self) -> BTreeMap<(String, String), u64> {
        self.hits.lock().unwrap().clone()
    }

    fn answer(&self, method: &Method, path: &str, form: &[(String, String)]) -> (u16, String) {
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("service_token") != Some(TOKEN) || get("service_id") != Some(SERVICE) {
            return (
                403,
                r#"<error code="service_token_invalid">service token "x" is invalid</error>"#
                    .into(),
            );
        }
        match (method.as_str(), path) {
            ("GET", "/transactions/authrep.xml") => {
                self.authreps.fetch_add(1, Ordering::SeqCst);
                self.queries.lock().unwrap().push(form.to_vec());
                if let Some(answer) = self.authrep_answer.lock().unwrap().clone() {
                    return answer;
                }
                let usage: Vec<(String, u64)> = form
                    .iter()
                    .filter_map(|(k, v)| {
                        let m = k.strip_prefix("usage[")?.strip_suffix(']')?;
                        Some((m.to_owned(), v.parse().ok()?))
                    })
                    .collect();
                let who = match (get("user_key"), get("app_id"), get("app_key")) {
                    (Some("good-key"), None, _) => "good-key",
                    (Some("limited-key"), None, _) => {
                        return (409, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><status><authorized>false</authorized><reason>usage limits are exceeded</reason><plan>Basic</plan></status>".into());
                    }
                    (Some("asleep-key"), None, _) => {
                        return (409, "<status><authorized>false</authorized><reason>application is not active</reason></status>".into());
                    }
                    (None, Some("app-1"), Some("app-1-key")) => "app-1",
                    (None, Some("app-1"), _) => {
                        return (409, "<status><authorized>false</authorized><reason>application key \"x\" is invalid</reason></status>".into());
                    }
                    (Some(k), None, _) => {
                        return (
                            403,
                            format!(
                                r#"<error code="user_key_invalid">user key "{k}" is invalid</error>"#
                            ),
                        );
                    }
                    _ => {
                        return (404, r#"<error code="application_not_found">application with id="x" was not found</error>"#.into());
                    }
                };
                let mut hits = self.hits.lock().unwrap();
                for (m, n) in usage {
                    *hits.entry((who.to_owned(), m)).or_insert(0) += n;
                }
                (200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><status><authorized>true</authorized><plan>Basic</plan></status>".into())
            }
            ("POST", "/transactions.xml") => {
                self.reports.fetch_add(1, Ordering::SeqCst);
                if self
                    .fail_reports
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return (500, String::new());
                }
                // transactions[i][user_key|app_id] and transactions[i][usage][m].
                let mut who: HashMap<String, String> = HashMap::new();
                let mut usage: Vec<(String, String, u64)> = Vec::new();
                for (k, v) in form {
                    let Some(rest) = k.strip_prefix("transactions[") else {
                        continue;
                    };
                    let (i, rest) = rest.split_once(']').unwrap();
                    if rest == "[user_key]" || rest == "[app_id]" {
                        who.insert(i.to_owned(), v.clone());
                    } else if let Some(m) = rest.strip_prefix("[usage][") {
                        let m = m.strip_suffix(']').unwrap();
                        usage.push((i.to_owned(), m.to_owned(), v.parse().unwrap()));
                    } else {
                        return (422, String::new());
                    }
                }
                let mut hits = self.hits.lock().unwrap();
                for (i, m, n) in usage {
                    *hits.entry((who[&i].clone(), m)).or_insert(0) += n;
                }
                (202, String::new())
            }
            _ => (404, String::new()),
        }
    }
}

/// Serves `fake` on a local port; its base URL.
async fn serve(fake: Arc<Fake>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let fake = fake.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let form_text = match parts.method {
                            Method::GET => parts.uri.query().unwrap_or("").as_bytes().to_vec(),
                            _ => body.to_vec(),
                        };
                        let form: Vec<(String, String)> = form_urlencoded::parse(&form_text)
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                        match fake.mode.load(Ordering::SeqCst) {
                            1 => {
                                let mut res = Response::new(Full::new(Bytes::from("oops")));
                                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                return Ok::<_, Infallible>(res);
                            }
                            2 => tokio::time::sleep(Duration::from_secs(5)).await,
                            _ => {}
                        }
                        if parts.method == Method::POST {
                            let ms = fake.report_delay_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(ms.into())).await;
                        }
                        let (status, text) = fake.answer(&parts.method, parts.uri.path(), &form);
                        let mut res = Response::new(Full::new(Bytes::from(text)));
                        *res.status_mut() = StatusCode::from_u16(status).unwrap();
                        res.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/vnd.3scale-v2.0+xml"),
                        );
                        Ok(res)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Waits (up to 5 s) until `good-key` has `n` hits of `hits`.
async fn wait_for_hits(fake: &Fake, n: u64) {
    for tries in 0.. {
        if fake.hits().get(&("good-key".into(), "hits".into())) == Some(&n) {
            return;
        }
        assert!(tries < 250, "{:?}", fake.hits());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway whose `/pets` methods use a `threescale` authorizer at `url`.
fn gateway(url: &str, extra: &str) -> Gateway {
    let yaml = format!(
        r#"
routes: {{ /pets: [GET, POST], /apps: [GET] }}
stages:
  prod:
    settings: {{ authorization: authorizer, authorizer: three }}
    methods:
      /apps/GET: {{ authorizer: apps }}
authorizers:
  three:
    identity_sources: [header.X-User-Key]
    {extra}
    threescale:
      url: {url}
      service_id: "{SERVICE}"
      service_token: {TOKEN}
      metrics: {{ /pets/POST: create_pet }}
      report_interval_ms: 3600000
      timeout_ms: 300
  apps:
    identity_sources: [header.X-App-Id, header.X-App-Key]
    ttl: 0
    threescale:
      url: {url}
      service_id: "{SERVICE}"
      service_token: {TOKEN}
      credentials: app_id
"#
    );
    Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
        .build()
        .unwrap()
}

fn backend()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let who = req
            .extensions()
            .get::<tollgate::auth::authorizer::AuthorizerContext>()
            .map(|c| c.principal_id.clone())
            .unwrap_or_default();
        Ok(Response::new(Body::from(who)))
    })
}

async fn call(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, body) =
        support::send(gw.service(backend()), req.body(Body::empty()).unwrap()).await;
    let json = serde_json::from_slice(&body)
        .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, json)
}

/// Sends `n` requests, each of which must be answered `expected`.
async fn calls(
    gw: &Gateway,
    n: usize,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    expected: StatusCode,
) {
    for i in 0..n {
        let (status, body) = call(gw, method, path, headers).await;
        assert_eq!(status, expected, "{method} {path} #{i}: {body}");
    }
}

#[tokio::test]
async fn each_verdict_is_answered_as_documented() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let gw = gateway(&url, "ttl: 0");

    // Authorized: the call goes on, its principal never the key.
    let (status, body) = call(&gw, "GET", "/prod/pets", &[("x-user-key", "good-key")]).await;
    assert_eq!(status, StatusCode::OK);
    let principal = body.as_str().unwrap().to_owned();
    assert!(principal.starts_with("user_key:"), "{principal}");
    assert!(!principal.contains("good-key"));
    // authrep carried the service, the key and the method's metric.
    let q = fake.queries.lock().unwrap()[0].clone();
    let has = |k: &str, v: &str| q.iter().any(|(a, b)| a == k && b == v);
    assert!(
        has("service_token", TOKEN) && has("service_id", SERVICE),
        "{q:?}"
    );
    assert!(
        has("user_key", "good-key") && has("usage[hits]", "1"),
        "{q:?}"
    );
    // The POST method's own metric.
    let (status, _) = call(&gw, "POST", "/prod/pets", &[("x-user-key", "good-key")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.hits()[&("good-key".into(), "create_pet".into())], 1);

    // 403 unknown key: INVALID_API_KEY, and the key is not echoed.
    let (status, body) = call(&gw, "GET", "/prod/pets", &[("x-user-key", "who-knows")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, serde_json::json!({ "message": "Forbidden" }));
    // 409 over a limit: 429 with 3scale's reason.
    let (status, body) = call(&gw, "GET", "/prod/pets", &[("x-user-key", "limited-key")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body,
        serde_json::json!({ "message": "usage limits are exceeded" })
    );
    // Another 409 (not active): refused as a bad key.
    let (status, _) = call(&gw, "GET", "/prod/pets", &[("x-user-key", "asleep-key")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No key: 401 without asking 3scale.
    let before = fake.authreps.load(Ordering::SeqCst);
    let (status, _) = call(&gw, "GET", "/prod/pets", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(fake.authreps.load(Ordering::SeqCst), before);

    // app_id and app_key: the app id is the principal; a wrong key (409
    // that is not a limit) and an unknown app (404) are 403.
    let (status, body) = call(
        &gw,
        "GET",
        "/prod/apps",
        &[("x-app-id", "app-1"), ("x-app-key", "app-1-key")],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, Some("app-1")));
    let (status, body) = call(
        &gw,
        "GET",
        "/prod/apps",
        &[("x-app-id", "app-1"), ("x-app-key", "wrong")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.to_string().contains("wrong"));
    let (status, _) = call(
        &gw,
        "GET",
        "/prod/apps",
        &[("x-app-id", "app-9"), ("x-app-key", "k")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(fake.hits()[&("app-1".into(), "hits".into())], 1);
    // Refusals counted nothing.
    assert_eq!(fake.hits().len(), 3, "{:?}", fake.hits());
}

#[tokio::test]
async fn three_scale_unreachable_follows_the_fail_mode() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    // Nothing listens on a port just closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let key = [("x-user-key", "good-key")];
    for (url, mode) in [(&closed, 0), (&url, 1), (&url, 2)] {
        fake.mode.store(mode, Ordering::SeqCst);
        let closed_gw = gateway(url, "ttl: 0");
        let open_gw = gateway(url, "ttl: 0\n    fail_mode: open");
        // A hanging 3scale costs the timeout (300 ms), not its 5 s.
        let both = tokio::time::timeout(Duration::from_secs(3), async {
            let closed = call(&closed_gw, "GET", "/prod/pets", &key).await.0;
            (closed, call(&open_gw, "GET", "/prod/pets", &key).await.0)
        });
        let (closed, open) = both.await.expect("the 3scale timeout bounds each call");
        assert_eq!(closed, StatusCode::SERVICE_UNAVAILABLE, "{url} mode {mode}");
        assert_eq!(open, StatusCode::OK, "{url} mode {mode}");
        assert_eq!(closed_gw.authorizers().failures(), 1);
    }
    // Failures are not cached: 3scale back, the same key is allowed.
    fake.mode.store(0, Ordering::SeqCst);
    let gw = gateway(&url, "ttl: 300");
    fake.mode.store(1, Ordering::SeqCst);
    assert_eq!(
        call(&gw, "GET", "/prod/pets", &key).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    fake.mode.store(0, Ordering::SeqCst);
    assert_eq!(call(&gw, "GET", "/prod/pets", &key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn cached_verdicts_still_report_every_hit() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let gw = gateway(&url, "ttl: 300");
    let key = [("x-user-key", "good-key")];
    calls(&gw, 50, ("GET", "/prod/pets"), &key, StatusCode::OK).await;
    calls(&gw, 20, ("POST", "/prod/pets"), &key, StatusCode::OK).await;
    // A cached refusal is not a hit.
    calls(
        &gw,
        5,
        ("GET", "/prod/pets"),
        &[("x-user-key", "limited-key")],
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    // One authrep per key and method; the rest waits for a report.
    assert_eq!(fake.authreps.load(Ordering::SeqCst), 3);
    gw.shutdown_reporters().await;
    let hits = fake.hits();
    assert_eq!(hits[&("good-key".into(), "hits".into())], 50);
    assert_eq!(hits[&("good-key".into(), "create_pet".into())], 20);
    assert_eq!(hits.len(), 2, "{hits:?}");
    let calls = fake.authreps.load(Ordering::SeqCst) + fake.reports.load(Ordering::SeqCst);
    assert!(calls < 70, "{calls} calls for 70 requests");

    // A report 3scale refuses keeps its counts for the next.
    fake.fail_reports.store(1, Ordering::SeqCst);
    for _ in 0..10 {
        call(&gw, "GET", "/prod/pets", &key).await;
    }
    gw.shutdown_reporters().await;
    assert_eq!(fake.hits()[&("good-key".into(), "hits".into())], 50);
    gw.shutdown_reporters().await;
    assert_eq!(fake.hits()[&("good-key".into(), "hits".into())], 60);
}

#[tokio::test]
async fn the_report_interval_sends_cached_hits_without_a_shutdown() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let yaml = format!(
        r#"
routes: {{ /pets: [GET] }}
stages: {{ prod: {{ settings: {{ authorization: authorizer, authorizer: three }} }} }}
authorizers:
  three:
    threescale: {{ url: "{url}", service_id: "{SERVICE}", service_token: {TOKEN}, report_interval_ms: 100 }}
"#
    );
    let yaml_gw = Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
        .build()
        .unwrap();
    // APIcast's default location: the `user_key` query parameter.
    calls(
        &yaml_gw,
        5,
        ("GET", "/prod/pets?user_key=good-key"),
        &[],
        StatusCode::OK,
    )
    .await;
    wait_for_hits(&fake, 5).await;
}

#[test]
fn config_mistakes_are_reported_with_their_paths() {
    let issues = |section: &str, sources: &str| {
        let yaml = format!(
            "routes: {{ /a: [GET] }}\nstages: {{ s: {{}} }}\nauthorizers:\n  t:\n    {sources}\n    threescale: {section}\n"
        );
        support::issues(&yaml)
    };
    let ok =
        format!("{{ url: \"http://127.0.0.1:1\", service_id: \"1\", service_token: {TOKEN} }}");
    assert!(issues(&ok, "").is_empty(), "{:?}", issues(&ok, ""));
    let bad_url = issues(
        "{ url: \"ftp://x/y\", service_id: \"1\", service_token: t }",
        "",
    );
    assert!(
        bad_url
            .iter()
            .any(|i| i.contains("authorizers.t.threescale.url")),
        "{bad_url:?}"
    );
    let no_token = issues(
        "{ url: \"http://x\", service_id: \"1\", service_token: \"\" }",
        "",
    );
    assert!(
        no_token
            .iter()
            .any(|i| i.contains("threescale.service_token")),
        "{no_token:?}"
    );
    let two = issues(&ok, "identity_sources: [header.a, header.b]");
    assert!(
        two.iter()
            .any(|i| i.contains("`user_key` takes one identity source")),
        "{two:?}"
    );
    let metric = issues(
        "{ url: \"http://x\", service_id: \"1\", service_token: t, metrics: { /a/GET: \"no spaces\" } }",
        "",
    );
    assert!(
        metric
            .iter()
            .any(|i| i.contains("metrics") && i.contains("not a metric")),
        "{metric:?}"
    );
    // The token never appears in an error or in Debug output.
    for i in bad_url.iter().chain(&no_token).chain(&two) {
        assert!(!i.contains(TOKEN), "{i}");
    }
    let config = Config::from_yaml_str(&format!(
        "routes: {{ /a: [GET] }}\nstages: {{ s: {{}} }}\nauthorizers: {{ t: {{ threescale: {ok} }} }}\n"
    ))
    .unwrap();
    assert!(!format!("{config:?}").contains(TOKEN));
    // A registered implementation for a threescale authorizer is refused.
    let err = Gateway::builder(config)
        .authorizer("t", |_r| async {
            Ok(tollgate::auth::authorizer::Verdict::allow("x"))
        })
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no implementation may be registered"),
        "{err}"
    );
}

#[tokio::test]
async fn the_sink_reports_batches_per_key_and_metric_and_retries() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    // tollgate keeps the keys; 3scale has an application per key id.
    let yaml = r#"
routes: { /pets: [GET, POST] }
stages: { prod: { settings: { api_key_required: true } } }
plans: { p: { stages: [prod] } }
keys: [{ name: k, value: key-0123456789abcdefghij, plans: [p] }]
"#;
    let section: ThreeScaleConfig = serde_json::from_value(serde_json::json!({
        "url": url, "service_id": SERVICE, "service_token": TOKEN,
        "metrics": { "/pets/POST": "create_pet" },
    }))
    .unwrap();
    let sink = ThreeScaleSink::new(section).unwrap();
    assert!(!format!("{sink:?}").contains(TOKEN));
    let mut config = ReporterConfig::default();
    config.batch_size = 16;
    config.flush_interval = Duration::from_secs(3600);
    config.retry_base = Duration::from_millis(10);
    let reporter = Reporter::with_config(Arc::new(sink), config);
    let gw = Gateway::builder(Config::from_yaml_str(yaml).unwrap())
        .reporter(reporter.clone())
        .build()
        .unwrap();
    // The first report fails: the reporter sends the batch again.
    fake.fail_reports.store(1, Ordering::SeqCst);
    let key = [("x-api-key", "key-0123456789abcdefghij")];
    calls(&gw, 40, ("GET", "/prod/pets"), &key, StatusCode::OK).await;
    calls(&gw, 8, ("POST", "/prod/pets"), &key, StatusCode::OK).await;
    // Rejected by the gateway: not reported.
    calls(
        &gw,
        5,
        ("GET", "/prod/pets"),
        &[("x-api-key", "nope")],
        StatusCode::FORBIDDEN,
    )
    .await;
    gw.shutdown_reporters().await;
    let hits = fake.hits();
    let apps: Vec<&String> = hits.keys().map(|(a, _)| a).collect();
    assert!(apps.iter().all(|a| !a.contains("0123456789")), "{apps:?}");
    let total = |metric: &str| {
        hits.iter()
            .filter(|((_, m), _)| m == metric)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert_eq!(total("hits"), 40, "{hits:?}");
    assert_eq!(total("create_pet"), 8, "{hits:?}");
    assert_eq!(hits.len(), 2, "one application: {hits:?}");
    // 53 events in batches of 16: 4 batches, one retried.
    assert!(reporter.retries() >= 1);
    assert!(
        fake.reports.load(Ordering::SeqCst) <= 6,
        "{}",
        fake.reports.load(Ordering::SeqCst)
    );
    assert!(
        ThreeScaleSink::new(
            serde_json::from_value(serde_json::json!({
                "url": "ftp://x", "service_id": SERVICE, "service_token": TOKEN,
            }))
            .unwrap()
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_dropped_gateway_still_reports_what_its_cache_let_through() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    // Reports once an hour: only the drop can send these in time.
    let gw = gateway(&url, "ttl: 300");
    calls(
        &gw,
        7,
        ("GET", "/prod/pets"),
        &[("x-user-key", "good-key")],
        StatusCode::OK,
    )
    .await;
    drop(gw);
    wait_for_hits(&fake, 7).await;
}

#[tokio::test]
async fn calls_admitted_while_three_scale_is_down_are_reported_when_it_is_back() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    for ttl in ["ttl: 0", "ttl: 300"] {
        *fake.hits.lock().unwrap() = BTreeMap::new();
        let gw = gateway(&url, &format!("{ttl}\n    fail_mode: open"));
        fake.mode.store(1, Ordering::SeqCst);
        calls(
            &gw,
            4,
            ("GET", "/prod/pets"),
            &[("x-user-key", "good-key")],
            StatusCode::OK,
        )
        .await;
        // Still down: the report fails and keeps its counts.
        gw.shutdown_reporters().await;
        assert!(fake.hits().is_empty(), "{ttl}: {:?}", fake.hits());
        fake.mode.store(0, Ordering::SeqCst);
        gw.shutdown_reporters().await;
        assert_eq!(fake.hits()[&("good-key".into(), "hits".into())], 4, "{ttl}");
    }
}

#[tokio::test]
async fn answers_that_are_not_three_scales_verdict_follow_the_fail_mode_uncached() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let gw = gateway(&url, "ttl: 300");
    let key = [("x-user-key", "good-key")];
    let deep = "<a>".repeat(4000);
    let odd: [(u16, &str); 7] = [
        (200, "<html><body>ok</body></html>"),
        (404, "<html><body>Not Found</body></html>"),
        (
            403,
            r#"<error code="service_token_invalid">service token "x" is invalid</error>"#,
        ),
        (
            404,
            r#"<error code="service_id_invalid">service id not found</error>"#,
        ),
        (409, ""),
        // Nested deep enough to exhaust a worker's stack in a recursive
        // parser: refused before parsing.
        (409, &deep),
        (
            200,
            "<!DOCTYPE status [<!ENTITY a \"aaaa\">]><status><authorized>&a;</authorized></status>",
        ),
    ];
    for (status, body) in odd {
        *fake.authrep_answer.lock().unwrap() = Some((status, body.to_owned()));
        let (got, _) = call(&gw, "GET", "/prod/pets", &key).await;
        assert_eq!(
            got,
            StatusCode::SERVICE_UNAVAILABLE,
            "{status} {}",
            &body[..body.len().min(60)]
        );
    }
    assert_eq!(gw.authorizers().failures(), odd.len() as u64);
    // None of them was cached: 3scale back, the key is allowed.
    *fake.authrep_answer.lock().unwrap() = None;
    assert_eq!(call(&gw, "GET", "/prod/pets", &key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_reason_reaches_the_client_without_control_or_formatting_characters() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let gw = gateway(&url, "ttl: 0");
    let reason = "usage limits are exceeded\u{202E}\u{2028}\t\"}x";
    *fake.authrep_answer.lock().unwrap() = Some((
        409,
        format!("<status><authorized>false</authorized><reason>{reason}</reason></status>"),
    ));
    let (status, body) = call(&gw, "GET", "/prod/pets", &[("x-user-key", "k")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body,
        serde_json::json!({ "message": "usage limits are exceeded\"}x" })
    );
}

#[tokio::test]
async fn a_gateway_dropped_while_a_report_is_in_flight_still_delivers_its_counts() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone()).await;
    let yaml = format!(
        r#"
routes: {{ /pets: [GET] }}
stages: {{ prod: {{ settings: {{ authorization: authorizer, authorizer: three }} }} }}
authorizers:
  three:
    threescale: {{ url: "{url}", service_id: "{SERVICE}", service_token: {TOKEN}, report_interval_ms: 100 }}
"#
    );
    let gw = Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
        .build()
        .unwrap();
    // The first report is slow and then refused.
    fake.report_delay_ms.store(300, Ordering::SeqCst);
    fake.fail_reports.store(1, Ordering::SeqCst);
    calls(
        &gw,
        6,
        ("GET", "/prod/pets?user_key=good-key"),
        &[],
        StatusCode::OK,
    )
    .await;
    // Wait for that report to be in flight, then drop the gateway.
    for tries in 0.. {
        if fake.reports.load(Ordering::SeqCst) > 0 {
            break;
        }
        assert!(tries < 250, "no report started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(gw);
    fake.report_delay_ms.store(0, Ordering::SeqCst);
    // One hit by authrep, five by the report the drop's task sends.
    wait_for_hits(&fake, 6).await;
}

#[test]
fn the_sink_refuses_what_the_authorizer_refuses() {
    for bad in [
        serde_json::json!({ "url": "http://127.0.0.1:1", "service_id": SERVICE, "service_token": TOKEN, "timeout_ms": 0 }),
        serde_json::json!({ "url": "http://127.0.0.1:1", "service_id": SERVICE, "service_token": TOKEN, "metric": "not a metric]&x=1" }),
        serde_json::json!({ "url": "http://127.0.0.1:1", "service_id": "", "service_token": TOKEN }),
    ] {
        let config: ThreeScaleConfig = serde_json::from_value(bad.clone()).unwrap();
        let err = ThreeScaleSink::new(config).unwrap_err().to_string();
        assert!(!err.contains(TOKEN), "{err}");
        assert!(!err.is_empty(), "{bad}");
    }
}
