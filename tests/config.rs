//! Config parsing, validation and settings resolution.

mod support;

use std::time::Duration;

use support::issues;
use tollgate::Gateway;
use tollgate::cache::CacheKeyParam;
use tollgate::gateway::{Authorization, Config, ConfigErrorKind};
use tollgate::throttle::Rate;

const BASE: &str = r#"
routes:
  /pets: [GET, POST]
  /pets/{petId}: [GET, PUT, DELETE]
  /files/{proxy+}: [ANY]
stages:
  prod: {}
"#;

fn assert_issue(yaml: &str, expected: &str) {
    let found = issues(yaml);
    assert!(
        found.iter().any(|i| i == expected),
        "expected `{expected}` among {found:#?}"
    );
}

fn with_prod(prod: &str) -> String {
    format!(
        "routes:\n  /pets: [GET, POST]\n  /pets/{{petId}}: [GET, PUT, DELETE]\n  /files/{{proxy+}}: [ANY]\nstages:\n  prod:\n{}\n",
        indent(prod, 4)
    )
}

fn indent(s: &str, n: usize) -> String {
    s.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_config_and_its_json_twin_are_the_same_model() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let yaml = Config::from_path(format!("{dir}/examples/petstore.yaml")).unwrap();
    let json = Config::from_path(format!("{dir}/examples/petstore.json")).unwrap();
    assert_eq!(yaml, json);
    assert_eq!(yaml.stages.len(), 2);
    assert_eq!(yaml.keys[0].plans, vec!["basic"]);
}

#[test]
fn negative_rate_is_rejected_with_its_path() {
    assert_issue(
        &with_prod("methods:\n  /pets/GET: { throttle: { rate: -1, burst: 5 } }"),
        r#"stages.prod.methods."/pets/GET".throttle.rate: must be >= 0 (got -1)"#,
    );
}

#[test]
fn nan_rate_is_rejected_with_its_path() {
    assert_issue(
        &with_prod("settings: { throttle: { rate: .nan, burst: 5 } }"),
        "stages.prod.settings.throttle.rate: must be a number, not NaN",
    );
}

#[test]
fn zero_rate_with_positive_burst_and_the_reverse_are_rejected() {
    assert_issue(
        &format!("{BASE}throttle: {{ rate: 0, burst: 10 }}\n"),
        "throttle.rate: must be > 0 when burst is > 0 (rate 0 with burst 0 blocks every request)",
    );
    assert_issue(
        &format!("{BASE}throttle: {{ rate: 10, burst: 0 }}\n"),
        "throttle.burst: must be > 0 when rate is > 0 (an empty bucket admits nothing)",
    );
    // Rate 0 with burst 0 is valid: it blocks everything.
    assert!(issues(&format!("{BASE}throttle: {{ rate: 0, burst: 0 }}\n")).is_empty());
}

#[test]
fn a_limit_needs_both_fields_unless_it_inherits_one() {
    assert_issue(
        &format!("{BASE}throttle: {{ rate: 10 }}\n"),
        "throttle.burst: is required",
    );
    // A method override may name only the rate when the stage gives a burst.
    let ok = with_prod(
        "settings: { throttle: { rate: 100, burst: 50 } }\nmethods:\n  /pets/POST: { throttle: { rate: 5 } }",
    );
    assert!(issues(&ok).is_empty(), "{:?}", issues(&ok));
    let bad = with_prod("methods:\n  /pets/POST: { throttle: { rate: 5 } }");
    assert_issue(
        &bad,
        r#"stages.prod.methods."/pets/POST".throttle.burst: is required"#,
    );
}

#[test]
fn cache_ttl_over_an_hour_is_rejected() {
    assert_issue(
        &with_prod("settings: { cache: { enabled: true, ttl: 3601 } }"),
        "stages.prod.settings.cache.ttl: must be <= 3600 seconds (got 3601)",
    );
    assert!(
        issues(&with_prod(
            "settings: { cache: { enabled: true, ttl: 3600 } }"
        ))
        .is_empty()
    );
}

#[test]
fn cache_key_parameters_are_checked() {
    let found = issues(&with_prod(
        "methods:\n  /pets/{petId}/GET: { cache: { key: [querystring.type, path.id, cookie.x, \"header.bad name\"] } }",
    ));
    let p = r#"stages.prod.methods."/pets/{petId}/GET".cache.key"#;
    assert!(
        found.contains(&format!(
            "{p}[1]: `/pets/{{petId}}` has no path parameter `id`"
        )),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|i| i.starts_with(&format!("{p}[2]: `cookie.x` is not a cache key parameter")))
    );
    assert!(
        found.contains(&format!("{p}[3]: `bad name` is not a valid header name")),
        "{found:#?}"
    );
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn unknown_routes_and_methods_in_overrides_are_rejected() {
    let found = issues(&with_prod(
        "methods:\n  /cats/GET: {}\n  /pets/PATCH: {}\n  /pets/FETCH: {}\n  nonsense: {}",
    ));
    assert!(
        found.contains(&r#"stages.prod.methods."/cats/GET": unknown route `/cats`"#.to_owned()),
        "{found:#?}"
    );
    assert!(found.contains(
        &r#"stages.prod.methods."/pets/PATCH": the route `/pets` has no method `PATCH`"#.to_owned()
    ));
    assert!(
        found.contains(&r#"stages.prod.methods."/pets/FETCH": `FETCH` is not a method"#.to_owned())
    );
    assert!(found.contains(
        &"stages.prod.methods.nonsense: must be `RESOURCE/METHOD` (such as `/pets/GET`)".to_owned()
    ));
}

#[test]
fn unknown_fields_are_all_reported_with_their_paths() {
    let yaml = format!(
        "{BASE}  dev:\n    variable: {{ a: b }}\n    settings: {{ throttle: {{ rate: 1, burst: 1, brust: 2 }} }}\nthrotle: {{}}\n"
    );
    let err = Config::from_yaml_str(&yaml).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Syntax);
    let found: Vec<String> = err.issues().iter().map(ToString::to_string).collect();
    for expected in [
        "stages.dev.variable: unknown field",
        "stages.dev.settings.throttle.brust: unknown field",
        "throtle: unknown field",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
}

#[test]
fn unknown_plans_on_keys_and_unknown_stages_on_plans_are_rejected() {
    let yaml = format!(
        "{BASE}plans:\n  gold: {{ stages: [prod, staging] }}\nkeys:\n  - {{ name: a, value: aaaaaaaaaaaaaaaaaaaaaaaa, plans: [gold, silver] }}\n"
    );
    assert_issue(&yaml, "plans.gold.stages[1]: unknown stage `staging`");
    assert_issue(&yaml, "keys[0].plans[1]: unknown plan `silver`");
}

#[test]
fn duplicate_key_values_are_rejected_without_echoing_them() {
    let digest = "0f0c3d58b5c7e0a16ed3fd2b2dcb4d6a1a0e8ec6c0d0f5dfc3f6ab6fb1e0d2e1";
    let yaml = format!(
        "{BASE}keys:\n  - {{ name: a, value: the-same-secret-value-0001 }}\n  - {{ name: b, value: the-same-secret-value-0001 }}\n  - {{ name: c, value_sha256: {digest} }}\n  - {{ name: d, value_sha256: {} }}\n",
        digest.to_uppercase()
    );
    let err = Config::from_yaml_str(&yaml).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("keys[1]: has the same key value as keys[0]"),
        "{text}"
    );
    assert!(
        text.contains("keys[3]: has the same key value as keys[2]"),
        "{text}"
    );
    assert!(
        !text.contains("the-same-secret"),
        "a key value leaked: {text}"
    );
}

#[test]
fn key_rules() {
    let yaml = format!(
        "{BASE}plans:\n  a: {{ stages: [prod] }}\n  b: {{ stages: [prod] }}\nkeys:\n  - {{ name: short, value: too-short }}\n  - {{ name: both, value: aaaaaaaaaaaaaaaaaaaaaaaa, value_sha256: ab }}\n  - {{ name: none }}\n  - {{ name: none, value_sha256: xyz }}\n  - {{ name: two, value: bbbbbbbbbbbbbbbbbbbbbbbbb, plans: [a, b], expires: tomorrow }}\n"
    );
    let found = issues(&yaml);
    for expected in [
        "keys[0].value: an API key is 20 to 128 printable ASCII characters without spaces",
        "keys[1]: give `value` or `value_sha256`, not both",
        "keys[2]: `value` or `value_sha256` is required",
        "keys[3].name: `none` is also the name of keys[2]",
        "keys[3].value_sha256: must be 64 hexadecimal digits",
        "keys[4].plans[1]: plans `a` and `b` both cover stage `prod` (a key may be in one plan per stage)",
        "keys[4].expires: must be an RFC 3339 time such as 2027-01-31T00:00:00Z",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
    assert!(!found.iter().any(|i| i.contains("too-short")));
}

#[test]
fn route_rules() {
    let yaml = "routes:\n  pets: [GET]\n  /a/{x+}/b: [GET]\n  /b: []\n  /c: [GET, GET, FETCH]\n  /d/{id}: [GET]\n  /d/{name}: [GET]\nstages:\n  prod: {}\n";
    let found = issues(yaml);
    for expected in [
        "routes.pets: a resource path must start with `/`",
        r#"routes."/a/{x+}/b": the greedy parameter `{x+}` must be the last segment"#,
        r#"routes."/b": a route needs at least one method"#,
        r#"routes."/c"[1]: `GET` is listed twice"#,
        r#"routes."/c"[2]: `FETCH` is not a method (use one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, ANY)"#,
        r#"routes."/d/{name}": conflicts with the route `/d/{id}` (the same paths would match both)"#,
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
}

#[test]
fn stages_and_routes_are_required_and_stage_names_checked() {
    let found = issues("name: x\n");
    assert!(found.contains(&"routes: at least one route is required".to_owned()));
    assert!(found.contains(&"stages: at least one stage is required".to_owned()));
    assert_issue(
        "routes: { /a: [GET] }\nstages:\n  \"pro d\": { variables: { \"x-y\": v } }\n",
        r#"stages."pro d": a stage name is 1 to 128 letters, digits, `-` or `_`"#,
    );
    assert_issue(
        "routes: { /a: [GET] }\nstages:\n  prod: { variables: { \"x-y\": v } }\n",
        "stages.prod.variables.x-y: a variable name is letters, digits and `_`",
    );
}

#[test]
fn plan_rules() {
    let yaml = format!(
        "{BASE}plans:\n  p:\n    stages: [prod]\n    throttle: {{ rate: 1 }}\n    quota: {{ limit: 10, period: day, offset: 10 }}\n    methods:\n      /pets/GET: {{ throttle: {{ rate: -2, burst: 1 }} }}\n      \"*/*\": {{}}\n"
    );
    let found = issues(&yaml);
    for expected in [
        "plans.p.throttle.burst: is required",
        "plans.p.quota.offset: must be < limit (10)",
        r#"plans.p.methods."/pets/GET".throttle.rate: must be >= 0 (got -2)"#,
        r#"plans.p.methods."*/*": `*/*` is not allowed here; name a `RESOURCE/METHOD`"#,
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
    assert_issue(
        &format!("{BASE}plans:\n  p: {{ quota: {{ limit: 0, period: month }} }}\n"),
        "plans.p.quota.limit: must be > 0",
    );
    assert_issue(
        &format!("{BASE}plans:\n  p: {{ quota: {{ limit: 5, period: fortnight }} }}\n"),
        // The value is not quoted: a misplaced secret must not be echoed.
        "plans.p.quota.period: unknown variant, expected one of minute, hour, day, week, month, year, eternity at line 9, column 35",
    );
}

#[test]
fn credential_and_sigv4_rules() {
    let yaml = format!(
        "{BASE}credentials:\n  - {{ access_key_id: AKIDEXAMPLE, secret_access_key: s }}\n  - {{ access_key_id: AKIDEXAMPLE, secret_access_key: \"\" }}\n  - {{ access_key_id: lower, secret_access_key: s }}\nsigv4: {{ region: \"\", max_skew: 0 }}\n"
    );
    let found = issues(&yaml);
    for expected in [
        "credentials[1].access_key_id: `AKIDEXAMPLE` is also the id of credentials[0]",
        "credentials[1].secret_access_key: must not be empty",
        "credentials[2].access_key_id: an access key id is 1 to 128 upper-case letters and digits",
        "sigv4.region: must not be empty",
        "sigv4.max_skew: must be between 1 and 3600 seconds",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
    assert_issue(
        &with_prod("methods:\n  /pets/POST: { authorization: sigv4 }"),
        "sigv4: is required because a method uses `authorization: sigv4`",
    );
}

#[test]
fn response_override_rules() {
    let yaml = format!(
        "{BASE}responses:\n  NOT_A_KIND: {{ status: 404 }}\n  THROTTLED: {{ status: 700, headers: {{ \"bad header\": x }} }}\n"
    );
    let found = issues(&yaml);
    for expected in [
        "responses.NOT_A_KIND: unknown gateway response kind (RESOURCE_NOT_FOUND, THROTTLED, DEFAULT_4XX, ...)",
        "responses.THROTTLED.status: status must be between 100 and 599",
        r#"responses.THROTTLED.headers."bad header": `bad header` is not a valid header name"#,
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
}

#[test]
fn type_errors_name_their_path() {
    assert_issue(
        &with_prod("settings: { throttle: { rate: 1, burst: -1 } }"),
        "stages.prod.settings.throttle.burst: invalid u32 at line 7, column 45",
    );
    let json = r#"{"routes": {"/a": ["GET"]}, "stages": {"prod": {"cache_capacity": "lots"}}}"#;
    let err = Config::from_json_str(json).unwrap_err();
    assert_eq!(err.issues()[0].path(), "stages.prod.cache_capacity");
    assert!(err.issues()[0].message().contains("not a size"), "{err}");
    assert!(!err.to_string().contains("lots"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = with_prod(
        "settings: { throttle: { rate: -1, burst: 1 }, cache: { ttl: 9999 } }\nmethods:\n  /nope/GET: {}",
    );
    let err = Config::from_yaml_str(&yaml).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Invalid);
    assert_eq!(err.issues().len(), 3, "{err}");
    assert!(
        err.to_string()
            .starts_with("invalid gateway config (3 problems):")
    );
}

#[test]
fn garbage_gets_a_clear_error_not_a_panic() {
    // 1 MiB of pseudo-random bytes, mapped into printable and control characters.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: String = (0..(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b" \n\t:{}[]-,'\"&*!|>%@abc0123"[(x % 26) as usize])
        })
        .collect();
    let err = Config::from_yaml_str(&garbage).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Syntax);
    assert!(!err.issues().is_empty());
    let err = Config::from_json_str(&garbage).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Syntax);

    // Invalid UTF-8 in a file.
    let dir = std::env::temp_dir().join(format!("tollgate-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(&file, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let err = Config::from_path(&file).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Syntax);
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    let err = Config::from_path("/nonexistent/tollgate.yaml").unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Io);
}

#[test]
fn settings_resolve_field_by_field() {
    let yaml = with_prod(
        "settings:\n  throttle: { rate: 1000, burst: 500 }\n  cache: { enabled: true, ttl: 300 }\nmethods:\n  /pets/GET:\n    cache: { ttl: 60, key: [querystring.type] }\n  /pets/*:\n    throttle: { burst: 20 }\n  /pets/POST:\n    throttle: { rate: 5 }\n    cache: { enabled: false }\n  /files/{proxy+}/ANY:\n    api_key_required: false\n    authorization: none",
    );
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let get = gw.endpoint("prod", "/pets", "GET").unwrap().settings();
    assert_eq!(get.throttle, Some(Rate::new(1000.0, 20)));
    assert!(get.cache.enabled, "enabled is kept from the stage");
    assert_eq!(get.cache.ttl, Duration::from_secs(60));
    assert_eq!(get.cache.key, vec![CacheKeyParam::Query("type".into())]);

    let post = gw.endpoint("prod", "/pets", "POST").unwrap().settings();
    assert_eq!(post.throttle, Some(Rate::new(5.0, 20)));
    assert!(!post.cache.enabled);
    assert_eq!(post.cache.ttl, Duration::from_secs(300));

    let pet = gw
        .endpoint("prod", "/pets/{petId}", "GET")
        .unwrap()
        .settings();
    assert_eq!(pet.throttle, Some(Rate::new(1000.0, 500)));
    let any = gw
        .endpoint("prod", "/files/{proxy+}", "ANY")
        .unwrap()
        .settings();
    assert_eq!(any.authorization, Authorization::None);

    // Each endpoint has its own dense index.
    let mut idx: Vec<usize> = gw.endpoints().map(|e| e.index()).collect();
    idx.sort_unstable();
    assert_eq!(idx, (0..6).collect::<Vec<_>>());
}

#[test]
fn star_star_in_methods_is_the_stage_default() {
    let yaml = with_prod(
        "methods:\n  \"*/*\": { cache: { enabled: true } }\n  /pets/GET: { cache: { ttl: 10 } }",
    );
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let get = gw.endpoint("prod", "/pets", "GET").unwrap().settings();
    assert!(get.cache.enabled);
    assert_eq!(get.cache.ttl, Duration::from_secs(10));
    assert_issue(
        &with_prod(
            "settings: { cache: { enabled: true } }\nmethods:\n  \"*/*\": { cache: { enabled: true } }",
        ),
        r#"stages.prod.methods."*/*": give stage-wide settings either in `settings` or in `methods."*/*"`, not both"#,
    );
}

#[test]
fn authorizer_rules() {
    assert_issue(
        &with_prod("methods:\n  /pets/POST: { authorization: authorizer }"),
        r#"stages.prod.methods."/pets/POST".authorizer: `authorization: authorizer` needs `authorizer: NAME`"#,
    );
    assert_issue(
        &with_prod("methods:\n  /pets/POST: { authorization: authorizer, authorizer: nope }"),
        r#"stages.prod.methods."/pets/POST".authorizer: unknown authorizer `nope`"#,
    );
    let yaml = format!(
        "{BASE}authorizers:\n  a: {{ identity_sources: [header.Authorization, cookie.x], ttl: 7200 }}\n  b: {{ identity_sources: [] }}\n"
    );
    let found = issues(&yaml);
    for expected in [
        "authorizers.a.identity_sources[1]: `cookie.x` is not an identity source (header.NAME, querystring.NAME, stageVariables.NAME)",
        "authorizers.a.ttl: must be <= 3600 seconds (got 7200)",
        "authorizers.b.identity_sources: at least one identity source is required",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} not in {found:#?}"
        );
    }
    // A configured authorizer must have an implementation.
    let yaml = format!(
        "{}authorizers: {{ bearer: {{ identity_sources: [header.Authorization] }} }}\n",
        with_prod("methods:\n  /pets/POST: { authorization: authorizer, authorizer: bearer }")
    );
    let err = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("authorizers.bearer: no implementation is registered for it"),
        "{err}"
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let yaml = format!(
        "{BASE}keys:\n  - {{ name: k, value: my-very-secret-api-key-value }}\ncredentials:\n  - {{ access_key_id: AKIDEXAMPLE, secret_access_key: my-secret-access-key }}\n"
    );
    let config = Config::from_yaml_str(&yaml).unwrap();
    let shown = format!("{config:?} {:?}", Gateway::new(config.clone()).unwrap());
    assert!(!shown.contains("my-very-secret"), "{shown}");
    assert!(!shown.contains("my-secret-access-key"), "{shown}");
}

#[test]
fn cache_grace_statuses_and_strategy_are_checked() {
    let found = issues(&with_prod(
        "settings: { cache: { enabled: true, stale_if_error: 3601, statuses: [200, 42, 600] } }",
    ));
    let p = "stages.prod.settings.cache";
    assert!(
        found.contains(&format!(
            "{p}.stale_if_error: must be <= 3600 seconds (got 3601)"
        )),
        "{found:#?}"
    );
    assert!(
        found.contains(&format!(
            "{p}.statuses[1]: must be an HTTP status, 100 to 599 (got 42)"
        )),
        "{found:#?}"
    );
    assert!(
        found.contains(&format!(
            "{p}.statuses[2]: must be an HTTP status, 100 to 599 (got 600)"
        )),
        "{found:#?}"
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    let found = issues(&with_prod(
        "settings: { cache: { unauthorized: FAIL_WITH_401 } }",
    ));
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("stages.prod.settings.cache.unauthorized")),
        "{found:#?}"
    );
}

#[test]
fn cache_settings_resolve_and_only_a_method_s_own_override_caches_it() {
    use tollgate::cache::UnauthorizedStrategy;
    let yaml = with_prod(
        "settings:\n  cache: { enabled: true, stale_if_error: 60, unauthorized: FAIL_WITH_403 }\nmethods:\n  /pets/*:\n    cache: { enabled: true, statuses: [200, 404] }\n  /pets/{petId}/PUT:\n    cache: { enabled: true, headers: false, require_authorization: false }",
    );
    let gw = Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
        .build()
        .unwrap();
    let cache = |resource: &str, method: &str| {
        gw.endpoint("prod", resource, method)
            .unwrap()
            .settings()
            .cache
            .clone()
    };
    let get = cache("/pets", "GET");
    assert!(get.enabled && !get.method_override);
    assert_eq!(get.stale_if_error, Duration::from_secs(60));
    assert_eq!(get.unauthorized, UnauthorizedStrategy::FailWith403);
    assert_eq!(
        get.statuses,
        [http::StatusCode::OK, http::StatusCode::NOT_FOUND]
    );
    assert!(get.headers && get.require_authorization && get.honor_max_age);
    // `/pets/*` names `enabled`, but it is not POST's own override.
    assert!(!cache("/pets", "POST").method_override);
    let put = cache("/pets/{petId}", "PUT");
    assert!(put.enabled && put.method_override);
    assert!(!put.headers && !put.require_authorization);
    assert!(put.statuses.is_empty(), "2xx");
    assert!(!cache("/pets/{petId}", "DELETE").method_override);
}

#[test]
fn unknown_fields_inside_the_integration_block_are_errors() {
    for yaml in [
        with_prod("settings: { integration: { type: mock, status: 200, bdy: x } }"),
        with_prod(
            "settings: { integration: { type: http, url: 'http://127.0.0.1:1/', tmeout_ms: 5 } }",
        ),
    ] {
        let found = issues(&yaml);
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("stages.prod.settings.integration: unknown field")),
            "{found:#?}"
        );
    }
    let json = r#"{"routes": {"/a": ["GET"]}, "stages": {"prod": {"settings": {"integration": {"type": "mock", "bdy": 1}}}}}"#;
    let e = Config::from_json_str(json).unwrap_err().to_string();
    assert!(e.contains("unknown field"), "{e}");
}

/// A small file cannot ask for unbounded memory: stages times route methods
/// is capped (here 101 stages of 1000 methods), and said at `stages`.
#[test]
fn endpoints_are_capped() {
    let mut yaml = String::from("routes:\n");
    for i in 0..1000 {
        yaml.push_str(&format!("  /r{i}: [GET]\n"));
    }
    yaml.push_str("stages:\n");
    for s in 0..101 {
        yaml.push_str(&format!("  s{s}: {{}}\n"));
    }
    let err = Config::from_yaml_str(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("stages: 101 stages of 1000 methods are 101000 endpoints; at most 100000"),
        "{err}"
    );
    // 100 stages of those routes are within it.
    let fits = yaml.replace("  s100: {}\n", "");
    assert!(Config::from_yaml_str(&fits).is_ok());
}

/// An integration URL quoted by an error has its password taken out.
#[test]
fn url_errors_never_quote_a_password() {
    for url in [
        "ftp://user:SeCrEt-pw@x/",
        "http://user:SeCrEt-pw@x/{a",
        "ht tp://u:SeCrEt-pw@x/",
    ] {
        let yaml = format!(
            "routes: {{ /a: [GET] }}\nstages: {{ prod: {{ settings: {{ integration: {{ type: http, url: \"{url}\" }} }} }} }}\n"
        );
        let err = Config::from_yaml_str(&yaml).unwrap_err().to_string();
        assert!(!err.contains("SeCrEt"), "{err}");
        assert!(err.contains("****@x/"), "{err}");
    }
}

/// `Debug` of a config, and of the endpoints built from it, shows neither a
/// password in an integration URL nor a literal a mapping sends the backend.
#[test]
fn debug_output_hides_url_passwords_and_mapping_literals() {
    let yaml = r#"
routes: { /a: [GET] }
stages:
  prod:
    settings:
      integration: { type: http, url: "http://svc:SeCrEt-pw@backend.internal/a" }
      mapping:
        request:
          set: { integration.request.header.authorization: "'Bearer SeCrEt-token'" }
          templates: { application/json: '{"token": "SeCrEt-in-template"}' }
        responses:
          - headers: { x-upstream: "'SeCrEt-header'" }
"#;
    let config = Config::from_yaml_str(yaml).unwrap();
    let gw = tollgate::Gateway::new(config.clone()).unwrap();
    let endpoint = gw.endpoint("prod", "/a", "GET").unwrap();
    for shown in [format!("{config:?}"), format!("{endpoint:?}")] {
        assert!(!shown.contains("SeCrEt"), "{shown}");
        assert!(shown.contains("****@backend.internal"), "{shown}");
        assert!(
            shown.contains("integration.request.header.authorization"),
            "{shown}"
        );
    }
}

/// `key=value` typed for `key: value` is one unknown field whose name holds
/// the value: the error shows the name only up to the `=`.
#[test]
fn an_unknown_field_is_not_quoted_past_its_equals_sign() {
    let yaml = "routes: { /a: [GET] }\nstages: { prod: {} }\napi_key_options: { pepper=SeCrEt-pepper-value }\n";
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(!err.contains("SeCrEt"), "{err}");
    assert!(
        err.contains("api_key_options.\"pepper=…\": unknown field"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_config_path_that_is_no_regular_file_is_refused_not_read_without_end() {
    let err = Config::from_path("/dev/zero").unwrap_err();
    assert_eq!(err.kind(), tollgate::config::ConfigErrorKind::Io);
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = Config::from_path(std::env::temp_dir()).unwrap_err();
    assert_eq!(err.kind(), tollgate::config::ConfigErrorKind::Io);
}

#[test]
fn api_level_methods_sit_between_settings_and_the_stages() {
    let config = Config::from_yaml_str(
        r#"
routes:
  /pets: [GET, POST]
  /pets/{id}: [GET]
settings: { api_key_required: false }
methods:
  /pets/GET: { api_key_required: true, throttle: { rate: 5, burst: 5 } }
  /pets/*: { authorization: none }
stages:
  prod:
    methods: { /pets/GET: { api_key_required: false } }
  dev: {}
"#,
    )
    .unwrap();
    let gateway = Gateway::new(config).unwrap();
    let get = |stage: &str, resource: &str, method: &str| {
        gateway
            .endpoint(stage, resource, method)
            .unwrap()
            .settings()
            .clone()
    };
    // The API's method layer applies on every stage...
    assert!(get("dev", "/pets", "GET").api_key_required);
    assert!(get("dev", "/pets", "GET").throttle.is_some());
    assert!(!get("dev", "/pets", "POST").api_key_required);
    // ...and a stage's own override wins over it, field by field.
    assert!(!get("prod", "/pets", "GET").api_key_required);
    assert!(get("prod", "/pets", "GET").throttle.is_some());
    assert!(!get("dev", "/pets/{id}", "GET").api_key_required);
}

#[test]
fn api_level_methods_name_a_resource() {
    let yaml = "routes: { /pets: [GET] }\nmethods:\n  \"*/*\": { api_key_required: true }\n  /cats/GET: { api_key_required: true }\n  /pets/GET: { throttle: { rate: -1, burst: 1 } }\nstages: { prod: {}, dev: {} }\n";
    let found = issues(yaml);
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("methods.\"*/*\": API-wide settings go in `settings`")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|i| i.starts_with("methods.\"/cats/GET\"")),
        "{found:#?}"
    );
    // Reported once, not once per stage.
    let rate: Vec<_> = found
        .iter()
        .filter(|i| i.contains("throttle.rate"))
        .collect();
    assert_eq!(rate.len(), 1, "{found:#?}");
}
