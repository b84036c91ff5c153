//! Limits in `mode: shadow` (evaluated, counted and reported, but admitted)
//! and a plan's quota `alerts` (one notice per key, threshold and period).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{Request, Response};
use tollgate::clock::ManualClock;
use tollgate::usage::{Notice, Reporter, SinkError, UsageEvent, UsageSink};
use tollgate::{Body, Config, Gateway, GatewayResponseKind};
use tower::{ServiceExt, service_fn};

/// Keeps every event and notice it is given.
#[derive(Default)]
struct Collect {
    events: Mutex<Vec<UsageEvent>>,
    notices: Mutex<Vec<Notice>>,
}

#[async_trait]
impl UsageSink for Collect {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        self.events.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }

    async fn notify(&self, notices: &[Notice]) -> Result<(), SinkError> {
        self.notices.lock().unwrap().extend_from_slice(notices);
        Ok(())
    }
}

const NOW: u64 = 1_800_000_000;

fn gateway(yaml: &str, sink: &Arc<Collect>, clock: &ManualClock) -> (Gateway, Reporter) {
    let reporter = Reporter::new(sink.clone());
    let gateway = Gateway::builder(Config::from_yaml_str(yaml).unwrap())
        .clock(clock.clone())
        .reporter(reporter.clone())
        .build()
        .unwrap();
    (gateway, reporter)
}

fn clock() -> ManualClock {
    let c = ManualClock::new();
    c.set(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
    c
}

async fn statuses(gateway: &Gateway, path: &str, key: Option<&str>, n: usize) -> Vec<u16> {
    let svc = gateway.service(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    }));
    let mut out = Vec::new();
    for _ in 0..n {
        let mut r = Request::get(path);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        let res = svc
            .clone()
            .oneshot(r.body(Body::empty()).unwrap())
            .await
            .unwrap();
        out.push(res.status().as_u16());
    }
    out
}

fn shadow_marks(sink: &Collect) -> Vec<Option<GatewayResponseKind>> {
    let mut events = sink.events.lock().unwrap().clone();
    events.sort_by_key(|e| e.time_unix_nanos);
    events.iter().map(|e| e.shadow_rejection).collect()
}

#[tokio::test]
async fn a_shadow_throttle_admits_and_marks_while_an_enforced_one_still_refuses() {
    let sink = Arc::new(Collect::default());
    let clock = clock();
    let (gateway, reporter) = gateway(
        r#"
routes: { /pets: [GET] }
throttle: { rate: 0.001, burst: 4 }
stages:
  prod:
    settings: { throttle: { rate: 0.001, burst: 2, mode: shadow } }
"#,
        &sink,
        &clock,
    );
    let got = statuses(&gateway, "/prod/pets", None, 6).await;
    // The shadow bucket (2) would refuse the 3rd on; the gateway's (4)
    // does refuse the 5th on.
    assert_eq!(got, [200, 200, 200, 200, 429, 429]);
    reporter.shutdown().await;
    let t = Some(GatewayResponseKind::Throttled);
    assert_eq!(shadow_marks(&sink), [None, None, t, t, None, None]);
    assert_eq!(gateway.throttle().shadow_rejections(), 4);
    let json = serde_json::to_value(&sink.events.lock().unwrap()[2]).unwrap();
    assert!(json.get("shadowRejection").is_some());
}

#[tokio::test]
async fn a_shadow_quota_admits_past_its_limit_and_marks_the_excess() {
    let sink = Arc::new(Collect::default());
    let clock = clock();
    let (gateway, reporter) = gateway(
        r#"
routes: { /pets: [GET] }
stages: { prod: { settings: { api_key_required: true } } }
plans:
  trial: { stages: [prod], quota: { limit: 2, period: day, mode: shadow } }
keys:
  - { name: k, value: trial-key-0123456789abcdef, plans: [trial] }
"#,
        &sink,
        &clock,
    );
    let got = statuses(
        &gateway,
        "/prod/pets",
        Some("trial-key-0123456789abcdef"),
        4,
    )
    .await;
    assert_eq!(got, [200, 200, 200, 200]);
    reporter.shutdown().await;
    let q = Some(GatewayResponseKind::QuotaExceeded);
    assert_eq!(shadow_marks(&sink), [None, None, q, q]);
    assert_eq!(gateway.meter().shadow_rejections(), 2);
    // Counted as if enforced: the period's counter stops at the limit.
    let id = gateway.key_manager().list().await.unwrap()[0]
        .id
        .to_string();
    assert_eq!(gateway.usage().remaining(&id, "trial").await.unwrap(), 0);
}

#[tokio::test]
async fn quota_alerts_fire_once_per_threshold_key_and_period() {
    let sink = Arc::new(Collect::default());
    let clock = clock();
    let (gateway, reporter) = gateway(
        r#"
routes: { /pets: [GET] }
stages: { prod: { settings: { api_key_required: true } } }
plans:
  basic: { stages: [prod], quota: { limit: 4, period: day }, alerts: [50, 100] }
keys:
  - { name: a, value: alpha-key-0123456789abcdef, plans: [basic] }
  - { name: b, value: bravo-key-0123456789abcdef, plans: [basic] }
"#,
        &sink,
        &clock,
    );
    let got = statuses(
        &gateway,
        "/prod/pets",
        Some("alpha-key-0123456789abcdef"),
        6,
    )
    .await;
    assert_eq!(got, [200, 200, 200, 200, 429, 429]);
    statuses(
        &gateway,
        "/prod/pets",
        Some("bravo-key-0123456789abcdef"),
        2,
    )
    .await;
    // The next day, a new period: the thresholds fire again.
    clock.advance(Duration::from_secs(86_400));
    statuses(
        &gateway,
        "/prod/pets",
        Some("alpha-key-0123456789abcdef"),
        2,
    )
    .await;
    reporter.shutdown().await;
    let keys = gateway.key_manager().list().await.unwrap();
    let name_of = |id: &str| keys.iter().find(|k| &*k.id == id).unwrap().name.clone();
    let alerts: Vec<(String, u8, i64, i64, i64)> = sink
        .notices
        .lock()
        .unwrap()
        .iter()
        .map(|n| match n {
            Notice::QuotaAlert(a) => (
                name_of(&a.key_id),
                a.threshold_percent,
                a.used,
                a.limit,
                a.period_start,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let day = |d: i64| (NOW as i64 / 86_400 + d) * 86_400;
    assert_eq!(
        alerts,
        [
            ("a".to_owned(), 50, 2, 4, day(0)),
            ("a".to_owned(), 100, 4, 4, day(0)),
            ("b".to_owned(), 50, 2, 4, day(0)),
            ("a".to_owned(), 50, 2, 4, day(1)),
        ]
    );
    assert_eq!(reporter.dropped_notices(), 0);
    let json = serde_json::to_value(&sink.notices.lock().unwrap()[1]).unwrap();
    assert_eq!(json["type"], "quotaAlert");
    assert_eq!(json["thresholdPercent"], 100);
}

#[test]
fn alerts_and_modes_are_checked() {
    let err = |yaml: &str| Config::from_yaml_str(yaml).unwrap_err().to_string();
    let base = "routes: { /a: [GET] }\nstages: { prod: {} }\n";
    let e = err(&format!(
        "{base}plans: {{ p: {{ stages: [prod], quota: {{ limit: 5, period: day }}, alerts: [0, 101] }} }}\n"
    ));
    assert!(e.contains("plans.p.alerts[0]: a percentage"), "{e}");
    assert!(e.contains("plans.p.alerts[1]: a percentage"), "{e}");
    let e = err(&format!(
        "{base}plans: {{ p: {{ stages: [prod], alerts: [50] }} }}\n"
    ));
    assert!(e.contains("plans.p.alerts: alerts need a `quota`"), "{e}");
    let e = err(&format!(
        "{base}throttle: {{ rate: 1, burst: 1, mode: maybe }}\n"
    ));
    assert!(e.contains("throttle.mode"), "{e}");
}
