//! An HTTPS round trip on loopback: `HttpIntegration` against hyper-rustls
//! used directly (the same rustls client config, a pooled hyper-util
//! client), both to one local TLS server offering HTTP/1.1, in the same run.
//! What the integration adds (URL template, header rewriting, the timeout)
//! over the client it is built on. `cargo bench --bench tls`

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tollgate::Body;
use tollgate::integration::{HttpIntegration, TlsConfig};
use tower::{Service, ServiceExt};

fn tls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A CA and a server certificate for 127.0.0.1; the CA as a PEM file
    // for the integration's `ca_file`.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let ca_file =
        std::env::temp_dir().join(format!("tollgate-bench-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let addr = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Body::from(r#"{"id":1}"#)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        addr
    });

    let config = TlsConfig::default().ca_file(ca_file.to_str().unwrap());
    // hyper-rustls directly, on the same client config.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.client_config().unwrap())
        .https_only()
        .enable_http1()
        .build();
    let direct: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let url: http::Uri = format!("https://{addr}/pets/1").parse().unwrap();
    let integration = HttpIntegration::new(&format!("https://{addr}/pets/1"))
        .unwrap()
        .tls(&config)
        .unwrap();

    let mut g = c.benchmark_group("https_round_trip");
    g.bench_function("hyper_rustls_direct", |b| {
        b.to_async(&rt).iter(|| {
            let req = Request::get(url.clone()).body(Empty::new()).unwrap();
            let direct = direct.clone();
            async move {
                let res = direct.request(req).await.unwrap();
                res.into_body().collect().await.unwrap();
            }
        })
    });
    g.bench_function("http_integration", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = integration.clone();
            async move {
                let req = Request::get("/pets/1").body(Body::empty()).unwrap();
                let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap();
            }
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&ca_file);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = tls
}
criterion_main!(benches);
