//! SigV4 through the gateway, with requests signed by AWS's own signer
//! (`aws-sigv4`): header and presigned forms, bodies, session tokens, clock
//! skew and expiry on both sides, and single mutations that must be refused.

mod support;

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use support::gateway;
use tollgate::auth::sigv4::SigV4Identity;
use tollgate::clock::ManualClock;
use tollgate::{Body, Config, Gateway};
use tower::{Service, service_fn};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const NOW: u64 = 1_800_000_000;
const HOST: &str = "api.example.com";

const CONFIG: &str = r#"
routes:
  /pets: [GET, POST]
  /pets/{id}: [GET, PUT]
  /open: [GET]
stages:
  prod:
    settings: { authorization: sigv4 }
    methods: { /open/GET: { authorization: none } }
credentials:
  - { access_key_id: AKIDEXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", principal: alice }
sigv4: { region: us-east-1, service: execute-api, max_skew: 300, max_body: 65536 }
"#;

/// An inner service that tells who signed and what body arrived.
fn echo() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let who = req
            .extensions()
            .get::<SigV4Identity>()
            .map(|i| i.principal.clone());
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let v = serde_json::json!({ "principal": who, "body_len": body.len(), "body": String::from_utf8_lossy(&body) });
        Ok::<_, Infallible>(Response::new(Body::from(v.to_string())))
    })
}

struct Signed {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Signs with aws-sigv4 at `at`, as an SDK would.
fn sign_request(
    method: &str,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    at: SystemTime,
    presign: Option<Duration>,
    token: Option<&str>,
) -> Signed {
    let identity = Credentials::new(AKID, SECRET, token.map(str::to_owned), None, "test").into();
    let mut settings = SigningSettings::default();
    if let Some(expires) = presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    } else {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let mut headers: Vec<(String, String)> = vec![("host".into(), HOST.into())];
    headers.extend(
        extra_headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    let url = format!("https://{HOST}{path_and_query}");
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = Request::builder()
        .method(method)
        .uri(&url)
        .body(())
        .unwrap();
    for (n, v) in &headers {
        req.headers_mut()
            .append(n.parse::<http::HeaderName>().unwrap(), v.parse().unwrap());
    }
    instructions.apply_to_request_http1x(&mut req);
    let (parts, ()) = req.into_parts();
    Signed {
        method: method.to_owned(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: body.to_vec(),
    }
}

async fn send(gw: &Gateway, s: &Signed) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(s.method.as_str())
        .uri(s.path_and_query.as_str());
    for (n, v) in &s.headers {
        req = req.header(n.as_str(), v.as_bytes());
    }
    let (status, headers, bytes) = support::send(
        gw.service(echo()),
        req.body(Body::from(s.body.clone())).unwrap(),
    )
    .await;
    (status, headers, support::json_or_null(&bytes))
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn requests_signed_by_aws_sigv4_verify() {
    let clock = ManualClock::at_unix_secs(NOW);
    let gw = gateway(CONFIG, &clock);
    let get = sign_request(
        "GET",
        "/prod/pets?type=dog&a=1&a=0",
        &[],
        b"",
        at(NOW),
        None,
        None,
    );
    let (status, _, v) = send(&gw, &get).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["principal"], "alice");

    let body = br#"{"type":"bird","price":12.5}"#;
    let post = sign_request(
        "POST",
        "/prod/pets",
        &[("content-type", "application/json")],
        body,
        at(NOW),
        None,
        None,
    );
    let (status, _, v) = send(&gw, &post).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"],
        std::str::from_utf8(body).unwrap(),
        "the buffered body reaches the service"
    );

    let odd = sign_request(
        "PUT",
        "/prod/pets/caf%C3%A9%20%21?q=a%20b&empty=&x=%2F",
        &[("x-odd", "  a   b  ")],
        b"{}",
        at(NOW),
        None,
        None,
    );
    assert_eq!(send(&gw, &odd).await.0, StatusCode::OK);

    // A method without `authorization: sigv4` needs no signature.
    let open = Signed {
        method: "GET".into(),
        path_and_query: "/prod/open".into(),
        headers: vec![],
        body: vec![],
    };
    assert_eq!(send(&gw, &open).await.0, StatusCode::OK);
}

#[tokio::test]
async fn presigned_urls_verify_until_they_expire() {
    let clock = ManualClock::at_unix_secs(NOW);
    let gw = gateway(CONFIG, &clock);
    let url = sign_request(
        "GET",
        "/prod/pets/7",
        &[],
        b"",
        at(NOW),
        Some(Duration::from_secs(600)),
        None,
    );
    assert!(url.path_and_query.contains("X-Amz-Signature="));
    assert_eq!(send(&gw, &url).await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        send(&gw, &url).await.0,
        StatusCode::OK,
        "the last second is still valid"
    );
    clock.advance(Duration::from_secs(1));
    let (status, headers, v) = send(&gw, &url).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-error-type"], "EXPIRED_TOKEN");
    assert_eq!(v["message"], "Request has expired");
}

#[tokio::test]
async fn skew_is_allowed_up_to_five_minutes_on_both_sides() {
    let clock = ManualClock::at_unix_secs(NOW);
    let gw = gateway(CONFIG, &clock);
    for offset in [-300i64, 300] {
        let s = sign_request(
            "GET",
            "/prod/pets",
            &[],
            b"",
            at(NOW.saturating_add_signed(offset)),
            None,
            None,
        );
        assert_eq!(send(&gw, &s).await.0, StatusCode::OK, "{offset}");
    }
    let old = sign_request("GET", "/prod/pets", &[], b"", at(NOW - 301), None, None);
    let (status, headers, v) = send(&gw, &old).await;
    assert_eq!(
        (status, &headers["x-tollgate-error-type"]),
        (StatusCode::FORBIDDEN, &"EXPIRED_TOKEN".parse().unwrap())
    );
    assert_eq!(
        v["message"],
        "Signature expired: 20270115T075459Z is now earlier than 20270115T075500Z (20270115T080000Z - 5 min.)"
    );
    let future = sign_request("GET", "/prod/pets", &[], b"", at(NOW + 301), None, None);
    let (status, _, v) = send(&gw, &future).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature not yet current: 20270115T080501Z"),
        "{v}"
    );
}

#[tokio::test]
async fn session_tokens_must_match_the_credentials() {
    let clock = ManualClock::at_unix_secs(NOW);
    let gw = gateway(CONFIG, &clock);
    // Long-term credentials: a token the store does not know is refused.
    let s = sign_request(
        "GET",
        "/prod/pets",
        &[],
        b"",
        at(NOW),
        None,
        Some("session-token-1"),
    );
    let (status, headers, _) = send(&gw, &s).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-error-type"], "UNRECOGNIZED_CLIENT");

    use std::sync::Arc;
    use tollgate::auth::sigv4::{Credential, InMemoryCredentialStore};
    use tollgate::gateway::Secret;
    let store = InMemoryCredentialStore::new();
    store.insert(
        Credential::new(AKID, Secret::new(SECRET), "temp")
            .with_session_token(Secret::new("session-token-1")),
    );
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .credential_store(Arc::new(store))
        .build()
        .unwrap();
    let (status, _, v) = send(&gw, &s).await;
    assert_eq!(
        (status, v["principal"].as_str()),
        (StatusCode::OK, Some("temp"))
    );
    let other = sign_request(
        "GET",
        "/prod/pets",
        &[],
        b"",
        at(NOW),
        None,
        Some("session-token-2"),
    );
    assert_eq!(send(&gw, &other).await.0, StatusCode::FORBIDDEN);
    let none = sign_request("GET", "/prod/pets", &[], b"", at(NOW), None, None);
    assert_eq!(send(&gw, &none).await.0, StatusCode::FORBIDDEN);
    // Presigned with the token.
    let url = sign_request(
        "GET",
        "/prod/pets",
        &[],
        b"",
        at(NOW),
        Some(Duration::from_secs(60)),
        Some("session-token-1"),
    );
    assert_eq!(send(&gw, &url).await.0, StatusCode::OK);
}

#[tokio::test]
async fn refusals_name_what_is_wrong_and_never_the_secret() {
    let clock = ManualClock::at_unix_secs(NOW);
    let gw = gateway(CONFIG, &clock);
    let unsigned = Signed {
        method: "GET".into(),
        path_and_query: "/prod/pets".into(),
        headers: vec![],
        body: vec![],
    };
    let (status, headers, v) = send(&gw, &unsigned).await;
    assert_eq!(
        (status, &headers["x-tollgate-error-type"]),
        (
            StatusCode::FORBIDDEN,
            &"MISSING_AUTHENTICATION_TOKEN".parse().unwrap()
        )
    );
    assert_eq!(v["message"], "Missing Authentication Token");

    let mut s = sign_request("GET", "/prod/pets", &[], b"", at(NOW), None, None);
    for (n, v) in &mut s.headers {
        if n == "authorization" {
            *v = v.replace(AKID, "AKIDUNKNOWN");
        }
    }
    let (_, headers, _) = send(&gw, &s).await;
    assert_eq!(headers["x-tollgate-error-type"], "UNRECOGNIZED_CLIENT");

    let wrong_region = sign_request("GET", "/prod/pets", &[], b"", at(NOW), None, None);
    let mut wrong_region = wrong_region;
    for (n, v) in &mut wrong_region.headers {
        if n == "authorization" {
            *v = v.replace("us-east-1", "eu-west-1");
        }
    }
    let (_, _, v) = send(&gw, &wrong_region).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Credential should be scoped to a valid region"),
        "{v}"
    );

    let big = vec![b'x'; 65_537];
    let s = sign_request("POST", "/prod/pets", &[], &big, at(NOW), None, None);
    let (status, headers, _) = send(&gw, &s).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["x-tollgate-error-type"], "REQUEST_TOO_LARGE");

    let mut bad = sign_request("GET", "/prod/pets", &[], b"", at(NOW), None, None);
    for (n, v) in &mut bad.headers {
        if n == "authorization" {
            let i = v.len() - 1;
            let last = if v.ends_with('0') { "1" } else { "0" };
            v.replace_range(i.., last);
        }
    }
    let (status, headers, v) = send(&gw, &bad).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-error-type"], "INVALID_SIGNATURE");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match")
    );
    assert!(!v.to_string().contains(SECRET));
}

/// One byte changed somewhere the signature covers.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    Path,
    Query,
    Header,
    Body,
    Date,
    Signature,
}

/// Changes the last digit of query parameter `name` (a presigned URL's date
/// or signature).
fn mutate_query_digit(s: &mut Signed, name: &str) {
    let Some(start) = s.path_and_query.find(&format!("{name}=")) else {
        return;
    };
    let end = s.path_and_query[start..]
        .find('&')
        .map_or(s.path_and_query.len(), |i| start + i);
    let last = s.path_and_query[..end]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_ascii_digit());
    if let Some((i, c)) = last {
        let to = if c == '1' { "2" } else { "1" };
        s.path_and_query.replace_range(i..i + 1, to);
    }
}

fn mutate(s: &mut Signed, m: Mutation) {
    let flip = |c: char| if c == 'a' { 'b' } else { 'a' };
    let presigned = s.path_and_query.contains("X-Amz-Signature=");
    match m {
        Mutation::Signature if presigned => mutate_query_digit(s, "X-Amz-Signature"),
        Mutation::Date if presigned => mutate_query_digit(s, "X-Amz-Date"),
        Mutation::Path => {
            // One more character at the end of the last segment: the same
            // route, a different path.
            let end = s.path_and_query.find('?').unwrap_or(s.path_and_query.len());
            s.path_and_query.insert(end, 'x');
        }
        Mutation::Query => s.path_and_query.push_str("&extra=1"),
        Mutation::Header | Mutation::Date | Mutation::Signature => {
            let name = match m {
                Mutation::Header => "x-custom",
                Mutation::Date => "x-amz-date",
                _ => "authorization",
            };
            for (n, v) in &mut s.headers {
                if n == name {
                    let c = v.pop().unwrap_or('0');
                    let replacement =
                        match m {
                            Mutation::Date | Mutation::Signature if c.is_ascii_digit() => {
                                if c == '1' { '2' } else { '1' }
                            }
                            _ => flip(c),
                        };
                    v.push(replacement);
                }
            }
        }
        Mutation::Body => {
            if let Some(b) = s.body.first_mut() {
                *b ^= 1;
            } else {
                s.body.push(b'x');
            }
        }
    }
}

fn path_segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a"),
            Just("Z9"),
            Just("%20"),
            Just("%C3%A9"),
            Just("-._~"),
            Just("%2F"),
            Just("!")
        ],
        1..4,
    )
    .prop_map(|v| v.concat())
}

fn query_pair() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("k"), Just("k"), Just("A-b"), Just("%E2%9C%93")],
        prop_oneof![
            Just(""),
            Just("v"),
            Just("a%20b"),
            Just("%2B"),
            Just("x%3Dy")
        ],
    )
        .prop_map(|(k, v)| format!("{k}={v}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn anything_aws_sigv4_signs_verifies_and_every_single_mutation_is_refused(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        segment in path_segment(),
        query in prop::collection::vec(query_pair(), 0..4),
        header in "[a-z ]{0,6}[a-z]",
        body_len in 0usize..=65_536,
        presign in any::<bool>(),
        token in prop::option::of("[A-Za-z0-9]{8,16}"),
        mutation in prop_oneof![Just(Mutation::Path), Just(Mutation::Query), Just(Mutation::Header), Just(Mutation::Body), Just(Mutation::Date), Just(Mutation::Signature)],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let clock = ManualClock::at_unix_secs(NOW);
        let yaml = CONFIG.replace("/pets/{id}: [GET, PUT]", "/pets/{id}: [GET, PUT, POST]");
        let gw = match &token {
            None => gateway(&yaml, &clock),
            Some(t) => {
                use tollgate::auth::sigv4::{Credential, InMemoryCredentialStore};
                let store = InMemoryCredentialStore::new();
                store.insert(Credential::new(AKID, tollgate::gateway::Secret::new(SECRET), "temp").with_session_token(tollgate::gateway::Secret::new(t.clone())));
                Gateway::builder(Config::from_yaml_str(&yaml).unwrap()).clock(clock.clone()).credential_store(std::sync::Arc::new(store)).build().unwrap()
            }
        };
        let path = format!("/prod/pets/{segment}");
        let pq = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
        let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
        let expires = presign.then_some(Duration::from_secs(300));
        let s = sign_request(method, &pq, &[("x-custom", &header)], &body, at(NOW), expires, token.as_deref());
        let (status, _, v) = rt.block_on(send(&gw, &s));
        prop_assert_eq!(status, StatusCode::OK, "{} {} {}", method, pq, v);

        let mut m = s;
        mutate(&mut m, mutation);
        let (status, _, _) = rt.block_on(send(&gw, &m));
        prop_assert_ne!(status, StatusCode::OK, "{:?} was not detected", mutation);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Hostile headers and URLs never panic the parsers or the canonicalizer.
    #[test]
    fn arbitrary_bytes_never_panic(
        auth in prop::collection::vec(any::<u8>(), 0..300),
        auth_text in "AWS4-HMAC-SHA256[ ,=/;a-zA-Z0-9]{0,200}",
        query in prop::collection::vec(any::<u8>(), 0..300),
        path in prop::collection::vec(any::<u8>(), 0..300),
        value in prop::collection::vec(any::<u8>(), 0..100),
        signed in prop::collection::vec("[a-z-]{1,12}", 1..5),
    ) {
        use tollgate::auth::sigv4::{CanonicalOptions, canonical_query, canonical_request, canonical_uri, parse_authorization, parse_presigned};
        let _ = parse_authorization(&String::from_utf8_lossy(&auth));
        let parsed = parse_authorization(&auth_text);
        let _ = parse_presigned(&String::from_utf8_lossy(&query));
        for opts in [CanonicalOptions::new(true, true), CanonicalOptions::new(false, false)] {
            let _ = canonical_uri(&path, opts);
        }
        let _ = canonical_query(&query, true, false);
        let _ = parsed;
        let valid = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let mut p = parse_authorization(valid).unwrap();
        p.signed_headers = signed;
        let headers = [("x-a", value.as_slice()), ("host", b"h".as_slice())];
        for presigned in [false, true] {
            let _ = canonical_request("GET", &path, &query, headers.iter().copied(), &p, "", CanonicalOptions::new(presigned, presigned));
        }
    }
}

#[tokio::test]
async fn credentials_are_cached_with_ttl_negative_ttl_and_resilience() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tollgate::auth::sigv4::{
        CachingCredentialStore, Credential, CredentialStore, InMemoryCredentialStore,
    };
    use tollgate::gateway::Secret;
    use tollgate::store::StoreError;

    #[derive(Debug, Default)]
    struct Remote {
        inner: InMemoryCredentialStore,
        down: AtomicBool,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl CredentialStore for Remote {
        async fn get(&self, id: &str) -> Result<Option<Arc<Credential>>, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("remote is down"));
            }
            self.inner.get(id).await
        }
    }

    let clock = ManualClock::at_unix_secs(NOW);
    let remote = Arc::new(Remote::default());
    remote
        .inner
        .insert(Credential::new(AKID, Secret::new(SECRET), "alice"));
    let cache = CachingCredentialStore::new(remote.clone(), clock.clone()).resilient(true);
    for _ in 0..3 {
        assert!(cache.get(AKID).await.unwrap().is_some());
        assert!(cache.get("AKIDNOBODY").await.unwrap().is_none());
    }
    assert_eq!(
        remote.calls.load(Ordering::SeqCst),
        2,
        "one call per id within the TTLs"
    );
    clock.advance(Duration::from_secs(11));
    assert!(cache.get("AKIDNOBODY").await.unwrap().is_none());
    assert_eq!(
        remote.calls.load(Ordering::SeqCst),
        3,
        "a miss is remembered 10 s"
    );
    clock.advance(Duration::from_secs(300));
    remote.down.store(true, Ordering::SeqCst);
    let served = cache
        .get(AKID)
        .await
        .unwrap()
        .expect("the last known credentials serve");
    assert_eq!(served.principal, "alice");
    let plain = CachingCredentialStore::new(remote.clone(), clock.clone());
    assert!(
        plain.get(AKID).await.is_err(),
        "without resilience an outage is an error"
    );
    remote.down.store(false, Ordering::SeqCst);
    remote.inner.remove(AKID);
    cache.invalidate(AKID);
    assert!(
        cache.get(AKID).await.unwrap().is_none(),
        "recovery: the backend's answer is used again"
    );
}

#[tokio::test]
async fn only_credentials_allowed_to_invalidate_refresh_a_cached_entry() {
    for allowed in [false, true] {
        let yaml = format!(
            r#"
routes:
  /pets: [GET]
stages:
  prod:
    settings: {{ authorization: sigv4, cache: {{ enabled: true, unauthorized: FAIL_WITH_403 }} }}
credentials:
  - {{ access_key_id: AKIDEXAMPLE, secret_access_key: "{SECRET}", principal: alice, can_invalidate_cache: {allowed} }}
sigv4: {{ region: us-east-1 }}
"#
        );
        let clock = ManualClock::at_unix_secs(NOW);
        let gw = gateway(&yaml, &clock);
        let plain = sign_request("GET", "/prod/pets", &[], b"", at(NOW), None, None);
        let (_, headers, _) = send(&gw, &plain).await;
        assert_eq!(headers["x-cache"], "Miss");
        let (_, headers, _) = send(&gw, &plain).await;
        assert_eq!(headers["x-cache"], "Hit");
        let refresh = sign_request(
            "GET",
            "/prod/pets",
            &[("cache-control", "max-age=0")],
            b"",
            at(NOW),
            None,
            None,
        );
        let (status, headers, body) = send(&gw, &refresh).await;
        if allowed {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["x-cache"], "Miss");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(headers["x-tollgate-error-type"], "ACCESS_DENIED");
            assert!(body["message"].as_str().unwrap().contains("invalidate"));
        }
    }
}
