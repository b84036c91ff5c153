//! HTTPS upstreams: HTTP integrations and `HttpSink` against local TLS
//! servers whose certificates come from a test CA made with rcgen. Success
//! (HTTP/2 by ALPN, and HTTP/1.1), an unknown CA, a wrong host name, and a
//! client certificate the server requires.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::json;
use support::{Captured, json_of};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tollgate::integration::{HttpIntegration, TlsConfig};
use tollgate::usage::{HttpSink, UsageSink};
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

/// A test CA and what it signed, written as PEM files in a directory of
/// this test's own.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tollgate-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tollgate test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let pki = Self { dir, ca, ca_key };
        pki.write("ca.pem", &pki.ca.pem());
        pki
    }

    fn write(&self, file: &str, pem: &str) -> String {
        let path = self.dir.join(file);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    /// A leaf for `names` signed by the CA: (certificate, key) in DER.
    fn leaf(
        &self,
        names: &[&str],
    ) -> (
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
        String,
        String,
    ) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        (der, key_der, cert.pem(), key.serialize_pem())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS server on a free loopback port offering h2 and http/1.1 (or only
/// `alpn`), answering with the HTTP version it served and the path;
/// `client_ca`: it requires a client certificate from that CA.
async fn server(pki: &Pki, names: &[&str], alpn: &[&[u8]], client_ca: bool) -> SocketAddr {
    let (cert, key, _, _) = pki.leaf(names);
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap();
    let builder = if client_ca {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(vec![cert], key).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let v = json!({ "version": format!("{:?}", req.version()), "path": req.uri().path() });
                    Ok::<_, Infallible>(Response::new(Body::from(v.to_string())))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];

async fn call(gw: &Gateway, path: &str) -> (StatusCode, bytes::Bytes) {
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("not proxied")))
    });
    let res = gw
        .service(ok)
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, _, body) = support::read(res).await;
    (status, body)
}

#[tokio::test(flavor = "current_thread")]
async fn https_integrations_verify_the_server_and_present_a_client_certificate() {
    let pki = Pki::new("integrations");
    let (_, _, client_pem, client_key) = pki.leaf(&["gateway.test"]);
    let client_cert = pki.write("client.pem", &client_pem);
    let client_key = pki.write("client.key", &client_key);
    let ca = pki.path("ca.pem");
    let good = server(&pki, &["localhost", "127.0.0.1"], BOTH, false).await;
    let h1 = server(&pki, &["127.0.0.1"], &[b"http/1.1"], false).await;
    let wrong = server(&pki, &["wrong.example"], BOTH, false).await;
    let mtls = server(&pki, &["127.0.0.1"], BOTH, true).await;
    let yaml = format!(
        r#"
routes: {{ /ok: [GET], /h1: [GET], /unknown: [GET], /wrongname: [GET], /mtls: [GET], /nocert: [GET] }}
stages:
  prod:
    methods:
      /ok/GET: {{ integration: {{ type: http, url: "https://{good}/ok", tls: {{ ca_file: "{ca}" }} }} }}
      /h1/GET: {{ integration: {{ type: http, url: "https://{h1}/h1", tls: {{ ca_file: "{ca}" }} }} }}
      /unknown/GET: {{ integration: {{ type: http, url: "https://{good}/ok" }} }}
      /wrongname/GET: {{ integration: {{ type: http, url: "https://{wrong}/ok", tls: {{ ca_file: "{ca}" }} }} }}
      /mtls/GET: {{ integration: {{ type: http, url: "https://{mtls}/m", tls: {{ ca_file: "{ca}", client_cert: "{client_cert}", client_key: "{client_key}" }} }} }}
      /nocert/GET: {{ integration: {{ type: http, url: "https://{mtls}/m", tls: {{ ca_file: "{ca}" }} }} }}
"#
    );
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Verified against the test CA; HTTP/2 by ALPN when offered.
    let (status, body) = call(&gw, "/prod/ok").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body),
        json!({ "version": "HTTP/2.0", "path": "/ok" })
    );
    let (status, body) = call(&gw, "/prod/h1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["version"], "HTTP/1.1");

    // The bundled roots do not know the test CA.
    assert_eq!(call(&gw, "/prod/unknown").await.0, StatusCode::BAD_GATEWAY);
    let logged = logs.take();
    assert!(
        logged.contains("UnknownIssuer"),
        "the reason is logged: {logged}"
    );
    // A certificate for another name.
    assert_eq!(
        call(&gw, "/prod/wrongname").await.0,
        StatusCode::BAD_GATEWAY
    );
    let logged = logs.take();
    assert!(
        logged.contains("certificate not valid for name"),
        "the reason is logged: {logged}"
    );

    // The server asks for a client certificate: presented, admitted.
    let (status, body) = call(&gw, "/prod/mtls").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["path"], "/m");
    // Not presented: the server refuses the handshake.
    assert_eq!(call(&gw, "/prod/nocert").await.0, StatusCode::BAD_GATEWAY);
    let logged = logs.take();
    assert!(logged.contains("integration request failed"), "{logged}");
    // No key material in the logs.
    assert!(!logged.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn an_integration_and_a_sink_built_in_code_take_the_same_settings() {
    let pki = Pki::new("code");
    let addr = server(&pki, &["127.0.0.1"], BOTH, false).await;
    let tls = TlsConfig::default().ca_file(pki.path("ca.pem"));

    let integration = HttpIntegration::new(&format!("https://{addr}/direct"))
        .unwrap()
        .tls(&tls)
        .unwrap();
    let res = integration
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, _, body) = support::read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["path"], "/direct");

    // A sink trusting the test CA delivers; one on the bundled roots fails
    // and says why.
    let sink = HttpSink::new(&format!("https://{addr}/report"))
        .unwrap()
        .tls(&tls)
        .unwrap();
    sink.send(&[]).await.unwrap();
    let err = HttpSink::new(&format!("https://{addr}/report"))
        .unwrap()
        .send(&[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // A key pasted on one line (its line breaks lost) is refused without
    // quoting any of it (found by the hostile review: the PEM parser's
    // message held the whole line).
    let (_, _, cert_pem, key_pem) = pki.leaf(&["gateway.test"]);
    let cert = pki.write("one-line.pem", &cert_pem);
    let key = pki.write("one-line.key", &key_pem.replace('\n', " "));
    let err = TlsConfig::default()
        .client_cert(cert, key)
        .client_config()
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    let b64: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!shown.contains(&b64[..16]), "{shown}");
    let decimal = format!("{:?}", &b64.as_bytes()[..8]);
    assert!(!shown.contains(decimal.trim_matches(['[', ']'])), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");

    // A key file that is not a key is refused when the client is built.
    let bad = TlsConfig::default().client_cert(pki.path("ca.pem"), pki.path("ca.pem"));
    let err = HttpIntegration::new("https://x/")
        .unwrap()
        .tls(&bad)
        .unwrap_err();
    assert!(err.to_string().starts_with("client_key"), "{err}");
}
