//! Quotas: calendar periods, exact counting under concurrency, offsets,
//! the meter through a gateway, and usage records.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use time::macros::{date, datetime};
use tollgate::clock::ManualClock;
use tollgate::plans::{CounterKey, CounterKind, InMemoryCounterStore, Period, Quota, Window};
use tollgate::{Body, Config, Gateway};
use tower::{Service, service_fn};

fn w(p: Period, t: time::OffsetDateTime) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let win = p.window_at(t.unix_timestamp());
    assert_eq!(
        win,
        p.window(t),
        "integer and calendar arithmetic agree for {p:?} at {t}"
    );
    let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
    (at(win.start), at(win.end))
}

#[test]
fn minute_hour_and_day_roll_over() {
    let t = datetime!(2024-12-31 23:59:59.999 UTC);
    assert_eq!(
        w(Period::Minute, t),
        (
            datetime!(2024-12-31 23:59 UTC),
            datetime!(2025-01-01 00:00 UTC)
        )
    );
    assert_eq!(
        w(Period::Hour, t),
        (
            datetime!(2024-12-31 23:00 UTC),
            datetime!(2025-01-01 00:00 UTC)
        )
    );
    assert_eq!(
        w(Period::Day, t),
        (
            datetime!(2024-12-31 00:00 UTC),
            datetime!(2025-01-01 00:00 UTC)
        )
    );
    let next = datetime!(2025-01-01 00:00 UTC);
    assert_eq!(w(Period::Day, next).0, next);
}

#[test]
fn weeks_start_on_monday() {
    // 2025-03-16 is a Sunday, 2025-03-17 a Monday.
    let sunday = datetime!(2025-03-16 23:59:59 UTC);
    assert_eq!(
        w(Period::Week, sunday),
        (
            datetime!(2025-03-10 00:00 UTC),
            datetime!(2025-03-17 00:00 UTC)
        )
    );
    let monday = datetime!(2025-03-17 00:00 UTC);
    assert_eq!(w(Period::Week, monday).0, monday);
    // Across a year end, and before 1970-01-05 (the first Monday after the epoch).
    assert_eq!(
        w(Period::Week, datetime!(2026-01-01 12:00 UTC)).0,
        datetime!(2025-12-29 00:00 UTC)
    );
    assert_eq!(
        w(Period::Week, datetime!(1970-01-02 00:00 UTC)).0,
        datetime!(1969-12-29 00:00 UTC)
    );
}

#[test]
fn month_ends_and_leap_years() {
    for (t, start, end) in [
        (
            datetime!(2023-02-28 23:00 UTC),
            date!(2023 - 02 - 01),
            date!(2023 - 03 - 01),
        ),
        (
            datetime!(2024-02-29 23:00 UTC),
            date!(2024 - 02 - 01),
            date!(2024 - 03 - 01),
        ),
        (
            datetime!(2025-04-30 12:00 UTC),
            date!(2025 - 04 - 01),
            date!(2025 - 05 - 01),
        ),
        (
            datetime!(2025-01-31 12:00 UTC),
            date!(2025 - 01 - 01),
            date!(2025 - 02 - 01),
        ),
        (
            datetime!(2025-12-31 23:59 UTC),
            date!(2025 - 12 - 01),
            date!(2026 - 01 - 01),
        ),
    ] {
        let (s, e) = w(Period::Month, t);
        assert_eq!((s.date(), e.date()), (start, end), "{t}");
    }
    let (s, e) = w(Period::Year, datetime!(2024-02-29 12:00 UTC));
    assert_eq!(
        (s.date(), e.date()),
        (date!(2024 - 01 - 01), date!(2025 - 01 - 01))
    );
    assert_eq!(
        Period::Eternity.window_at(1_700_000_000),
        Window {
            start: 0,
            end: i64::MAX
        }
    );
}

#[test]
fn offset_applies_to_the_first_period_only() {
    let q = Quota::new(100, Period::Month).with_offset(30);
    let created = datetime!(2025-05-20 10:00 UTC).unix_timestamp();
    let may = Period::Month.window_at(created);
    let june = Period::Month.window_at(datetime!(2025-06-02 00:00 UTC).unix_timestamp());
    assert_eq!(q.limit_in(may, Some(created)), 70);
    assert_eq!(q.limit_in(june, Some(created)), 100);
    assert_eq!(q.limit_in(may, None), 100);
}

#[test]
fn eight_threads_spend_a_quota_of_ten_thousand_exactly() {
    let store = Arc::new(InMemoryCounterStore::new());
    let admitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, admitted) = (store.clone(), admitted.clone());
            std::thread::spawn(move || {
                let key = CounterKey {
                    key_id: "k",
                    plan: "p",
                    kind: CounterKind::Quota,
                    start: 0,
                };
                for _ in 0..5_000 {
                    if store.try_increment(&key, 10_000, i64::MAX).admitted {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 10_000);
    let key = CounterKey {
        key_id: "k",
        plan: "p",
        kind: CounterKind::Quota,
        start: 0,
    };
    assert_eq!(
        store.value(&key),
        10_000,
        "refused attempts are not counted"
    );
}

const CONFIG: &str = r#"
# Admitted responses name the binding limit: a test below reads it.
throttle_options: { headers: true }
routes: { /pets: [GET] }
stages:
  prod: { settings: { api_key_required: true } }
plans:
  daily:
    stages: [prod]
    quota: { limit: 3, period: day }
  weekly:
    stages: []
    quota: { limit: 5, period: week, offset: 1 }
keys:
  - { name: a, value: key-a-0123456789abcdef, plans: [daily] }
  - { name: b, value: key-b-0123456789abcdef, plans: [daily] }
"#;

fn ok() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) })
}

/// GETs `/prod/pets` with `key` as the API key.
async fn get(
    svc: &mut (impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send),
    key: &str,
) -> Response<Body> {
    let req = Request::get("/prod/pets")
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    support::call(svc, req).await
}

#[tokio::test]
async fn a_quota_resets_at_midnight_utc_and_refuses_with_the_time_left() {
    let clock = ManualClock::at(datetime!(2025-06-01 23:59:00 UTC).into());
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut svc = gw.service(ok());
    for _ in 0..3 {
        assert_eq!(
            get(&mut svc, "key-a-0123456789abcdef").await.status(),
            StatusCode::OK
        );
    }
    let over = get(&mut svc, "key-a-0123456789abcdef").await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.headers()["x-tollgate-error-type"], "QUOTA_EXCEEDED");
    assert_eq!(over.headers()["retry-after"], "60");
    assert_eq!(over.headers()["ratelimit-policy"], "\"quota\";q=3;w=86400");
    let body = http_body_util::BodyExt::collect(over.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], br#"{"message":"Limit Exceeded"}"#);
    // Another key has its own count.
    assert_eq!(
        get(&mut svc, "key-b-0123456789abcdef").await.status(),
        StatusCode::OK
    );
    // A new day.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        get(&mut svc, "key-a-0123456789abcdef").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn rejected_requests_do_not_count() {
    let clock = ManualClock::at(datetime!(2025-06-01 12:00:00 UTC).into());
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = gw.service(ok());
    // Bad keys are refused before the meter.
    for _ in 0..10 {
        assert_eq!(
            get(&mut svc, "key-x-0123456789abcdef").await.status(),
            StatusCode::FORBIDDEN
        );
    }
    for _ in 0..3 {
        assert_eq!(
            get(&mut svc, "key-a-0123456789abcdef").await.status(),
            StatusCode::OK
        );
    }
    // Over-quota refusals do not eat into tomorrow's count either.
    for _ in 0..5 {
        assert_eq!(
            get(&mut svc, "key-a-0123456789abcdef").await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let key_id = gw
        .key_manager()
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "a")
        .unwrap()
        .id
        .clone();
    assert_eq!(gw.usage().remaining(&key_id, "daily").await.unwrap(), 0);
}

#[tokio::test]
async fn usage_records_match_what_was_admitted_and_can_be_granted_and_reset() {
    let clock = ManualClock::at(datetime!(2025-06-01 08:00:00 UTC).into());
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut svc = gw.service(ok());
    let ids: std::collections::HashMap<String, String> = gw
        .key_manager()
        .list()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.name.clone(), r.id.to_string()))
        .collect();
    // Day 1: a spends 2, b spends 3 (+1 refused). Day 2: a spends 1. Day 3: nothing.
    for _ in 0..2 {
        get(&mut svc, "key-a-0123456789abcdef").await;
    }
    for _ in 0..4 {
        get(&mut svc, "key-b-0123456789abcdef").await;
    }
    clock.advance(Duration::from_secs(86_400));
    get(&mut svc, "key-a-0123456789abcdef").await;
    clock.advance(Duration::from_secs(86_400));

    let usage = gw
        .usage()
        .get_usage("daily", date!(2025 - 06 - 01), date!(2025 - 06 - 03), None)
        .await
        .unwrap();
    assert_eq!(usage.items[&ids["a"]], vec![[2, 1], [1, 2], [0, 3]]);
    assert_eq!(usage.items[&ids["b"]], vec![[3, 0], [0, 3], [0, 3]]);
    let one = gw
        .usage()
        .get_usage(
            "daily",
            date!(2025 - 06 - 01),
            date!(2025 - 06 - 01),
            Some(&ids["b"]),
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);

    // UpdateUsage: grant b two more today, then reset.
    for _ in 0..3 {
        get(&mut svc, "key-b-0123456789abcdef").await;
    }
    assert_eq!(gw.usage().remaining(&ids["b"], "daily").await.unwrap(), 0);
    assert_eq!(gw.usage().grant(&ids["b"], "daily", 2).await.unwrap(), 2);
    assert_eq!(
        get(&mut svc, "key-b-0123456789abcdef").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&mut svc, "key-b-0123456789abcdef").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&mut svc, "key-b-0123456789abcdef").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    gw.usage().reset(&ids["b"], "daily").await.unwrap();
    assert_eq!(gw.usage().remaining(&ids["b"], "daily").await.unwrap(), 3);
}

#[tokio::test]
async fn plans_created_at_run_time_apply_at_once_in_every_layer() {
    use tollgate::gateway::{PlanConfig, QuotaConfig, ThrottleConfig};
    let clock = ManualClock::at(datetime!(2025-06-01 12:00:00 UTC).into());
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = gw.service(ok());
    let keys = gw.key_manager();
    let (record, value) = keys
        .create(tollgate::keys::NewKey::named("late"))
        .await
        .unwrap();
    let v = value.expose().to_owned();
    // No plan for prod yet: refused.
    assert_eq!(get(&mut svc, &v).await.status(), StatusCode::FORBIDDEN);

    // A new plan: 2 per day, a bucket of 5.
    let mut silver = PlanConfig::default();
    silver.stages = vec!["prod".into()];
    silver.throttle = Some(ThrottleConfig::new(1.0, 5));
    silver.quota = Some(QuotaConfig::new(2, Period::Day));
    gw.plans().put("silver", silver).unwrap();
    // One plan per stage: `daily` covers prod too.
    keys.attach(&record.id, "daily").await.unwrap();
    let both = keys.attach(&record.id, "silver").await.unwrap_err();
    assert!(
        both.to_string().contains("both cover stage `prod`"),
        "{both}"
    );
    keys.detach(&record.id, "daily").await.unwrap();
    keys.attach(&record.id, "silver").await.unwrap();
    assert!(
        keys.attach(&record.id, "gone").await.is_err(),
        "unknown plans are refused"
    );

    assert_eq!(get(&mut svc, &v).await.status(), StatusCode::OK);
    let res = get(&mut svc, &v).await;
    assert_eq!(
        res.headers()["ratelimit-policy"],
        "\"plan\";q=5;w=5",
        "the new plan's throttle applies"
    );
    let over = get(&mut svc, &v).await;
    assert_eq!(
        over.headers()["x-tollgate-error-type"],
        "QUOTA_EXCEEDED",
        "the new plan's quota applies"
    );
    assert_eq!(gw.usage().remaining(&record.id, "silver").await.unwrap(), 0);

    // An invalid plan is refused with the config's own messages, and changes nothing.
    let mut bad = PlanConfig::default();
    bad.throttle = Some(ThrottleConfig::new(-1.0, 5));
    let err = gw.plans().put("silver", bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("plans.silver.throttle.rate: must be >= 0"),
        "{err}"
    );
    assert_eq!(
        get(&mut svc, &v).await.headers()["x-tollgate-error-type"],
        "QUOTA_EXCEEDED"
    );

    // Deleting the plan refuses its keys on its stages.
    assert!(gw.plans().delete("silver").unwrap());
    assert_eq!(get(&mut svc, &v).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(gw.plans().names(), vec!["daily", "weekly"]);
}

/// Plan changes racing from several threads: the plans served afterwards
/// are the ones the config says, every time (each thread flips its own plan
/// between two stages and ends on `prod`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_plan_changes_are_served_as_committed() {
    use tollgate::gateway::PlanConfig;
    use tower::ServiceExt;
    const THREADS: usize = 8;
    let mut yaml = String::from(
        "routes: { /a: [GET] }\nstages:\n  prod: { settings: { api_key_required: true } }\n  test: {}\nplans:\n",
    );
    for i in 0..THREADS {
        yaml.push_str(&format!("  p{i}: {{ stages: [prod] }}\n"));
    }
    yaml.push_str("keys:\n");
    for i in 0..THREADS {
        yaml.push_str(&format!(
            "  - {{ name: k{i}, value: key-value-{i:04}-abcdefghijklmnop, plans: [p{i}] }}\n"
        ));
    }
    let gw = Arc::new(Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap());
    let plan = |stage: &str| {
        let mut p = PlanConfig::default();
        p.stages = vec![stage.into()];
        p
    };
    for round in 0..300 {
        let barrier = Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let (gw, barrier) = (gw.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for n in 0..20 {
                        let stage = if n % 2 == 0 { "test" } else { "prod" };
                        gw.plans().put(&format!("p{i}"), plan(stage)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for i in 0..THREADS {
            let req = Request::get("/prod/a")
                .header("x-api-key", format!("key-value-{i:04}-abcdefghijklmnop"))
                .body(Body::empty())
                .unwrap();
            let res = gw.service(support::ok()).oneshot(req).await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::OK,
                "round {round}: key k{i} is served an old plan"
            );
        }
    }
}

/// A plan's name is 1 to 128 characters without control characters, in a
/// config and through the plan manager alike.
#[test]
fn plan_names_are_checked() {
    use tollgate::gateway::PlanConfig;
    let gw = Gateway::new(
        Config::from_yaml_str("routes: { /a: [GET] }\nstages: { prod: {} }\n").unwrap(),
    )
    .unwrap();
    for bad in ["", "p\0", &"x".repeat(129)] {
        let err = gw
            .plans()
            .put(bad, PlanConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a plan name is 1 to 128 characters"),
            "{bad:?}: {err}"
        );
    }
    assert!(gw.plans().names().is_empty());
    gw.plans().put("gold-2027", PlanConfig::default()).unwrap();
}
