//! SigV4 verification against AWS's own signer signing the same request.
//! `cargo bench --bench sigv4`

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Uri};
use std::hint::black_box;
use tollgate::auth::sigv4::{Credential, InMemoryCredentialStore, Verifier, VerifierSettings};
use tollgate::clock::ManualClock;
use tollgate::gateway::Secret;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const NOW: u64 = 1_800_000_000;
const URL: &str = "https://api.example.com/prod/pets?type=dog&limit=10";

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the in-memory store answers at once"),
    }
}

fn signing_params(identity: &Identity) -> aws_sigv4::http_request::SigningParams<'_> {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    v4::SigningParams::builder()
        .identity(identity)
        .region("us-east-1")
        .name("execute-api")
        .time(UNIX_EPOCH + Duration::from_secs(NOW))
        .settings(settings)
        .build()
        .expect("signing params")
        .into()
}

/// Signs `method URL` with `body`, returning the headers a client would send.
fn signed_headers(identity: &Identity, method: &str, body: &[u8]) -> HeaderMap {
    let headers = [
        ("host", "api.example.com"),
        ("content-type", "application/json"),
    ];
    let signable =
        SignableRequest::new(method, URL, headers.into_iter(), SignableBody::Bytes(body))
            .expect("signable");
    let (instructions, _) = sign(signable, &signing_params(identity))
        .expect("signed")
        .into_parts();
    let mut req = http::Request::builder()
        .method(method)
        .uri(URL)
        .body(())
        .expect("request");
    for (n, v) in headers {
        req.headers_mut().insert(n, v.parse().expect("value"));
    }
    instructions.apply_to_request_http1x(&mut req);
    req.into_parts().0.headers
}

fn bench(c: &mut Criterion) {
    let identity: Identity = Credentials::new(AKID, SECRET, None, None, "bench").into();
    let store = InMemoryCredentialStore::new();
    store.insert(Credential::new(AKID, Secret::new(SECRET), "alice"));
    let verifier = Verifier::new(
        VerifierSettings::new("us-east-1", "execute-api"),
        Arc::new(store),
        Arc::new(ManualClock::at_unix_secs(NOW)),
    );
    let uri: Uri = "/prod/pets?type=dog&limit=10".parse().expect("uri");
    let body_4k = vec![b'x'; 4096];

    for (name, method, body) in [
        ("get", "GET", &b""[..]),
        ("post_4kib", "POST", &body_4k[..]),
    ] {
        let headers = signed_headers(&identity, method, body);
        // Warm the signing-key cache, and make sure the request verifies.
        ready(verifier.verify(method, &uri, &headers, body)).expect("verifies");
        let mut g = c.benchmark_group(format!("sigv4_{name}"));
        g.bench_function("tollgate_verify", |b| {
            b.iter(|| {
                ready(verifier.verify(
                    method,
                    black_box(&uri),
                    black_box(&headers),
                    black_box(body),
                ))
                .is_ok()
            })
        });
        g.bench_function("aws_sigv4_sign", |b| {
            b.iter(|| {
                let h = [
                    ("host", "api.example.com"),
                    ("content-type", "application/json"),
                ];
                let signable = SignableRequest::new(
                    method,
                    URL,
                    h.into_iter(),
                    SignableBody::Bytes(black_box(body)),
                )
                .expect("signable");
                sign(signable, &signing_params(&identity)).expect("signed")
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
