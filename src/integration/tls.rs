//! TLS to upstreams: the `tls` setting of an HTTP integration (and of
//! [`HttpSink`](crate::usage::HttpSink)), and the HTTPS-capable client.
//!
//! ```
//! use tollgate::integration::{HttpIntegration, TlsConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The bundled Mozilla roots: any public HTTPS backend.
//! let public = HttpIntegration::new("https://pets.example.com/pets/{petId}")?;
//! // A private CA instead, and a client certificate the backend checks
//! // (API Gateway's "client certificate" for backends).
//! let private = TlsConfig::default()
//!     .ca_file("/etc/tollgate/internal-ca.pem")
//!     .client_cert("/etc/tollgate/gw.pem", "/etc/tollgate/gw.key");
//! // The files are read here, not on the first request: a missing one is
//! // an error now.
//! let err = HttpIntegration::new("https://pets.internal/pets/{petId}")?
//!     .tls(&private)
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("ca_file `/etc/tollgate/internal-ca.pem`"));
//! # let _ = public;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// How an integration's HTTPS connections are made: whom to trust and
/// what to present. Every field is a path to a PEM file, read when the
/// gateway is built (a file that cannot be read or parsed is a config
/// issue, not a request-time failure).
///
/// ```yaml
/// integration:
///   type: http
///   url: https://pets.internal:8443/pets/{petId}
///   tls: { ca_file: /etc/tollgate/internal-ca.pem, client_cert: /etc/tollgate/gw.pem, client_key: /etc/tollgate/gw.key }
/// ```
///
/// - `ca_file`: the certificates to trust, instead of the bundled Mozilla
///   roots ([`webpki-roots`](https://docs.rs/webpki-roots)), for a backend
///   whose certificate comes from a private CA. Absent: the bundled roots.
/// - `client_cert` and `client_key` (both or neither): a certificate chain
///   and its private key (PKCS#8, PKCS#1 or SEC1), presented when the
///   backend asks, as API Gateway's
///   [client certificates](https://docs.aws.amazon.com/apigateway/latest/developerguide/getting-started-client-side-ssl-authentication.html)
///   are.
///
/// The server's certificate is verified against the URL's host name (an IP
/// address must be in the certificate too). One that does not verify fails
/// the connection: the request gets 502 `INTEGRATION_FAILURE`, and the
/// reason (unknown issuer, wrong name, expired) is logged at `warn`.
/// HTTP/2 is used when the server offers it by ALPN, HTTP/1.1 otherwise;
/// TLS 1.2 and 1.3, rustls on `ring`.
///
/// `Debug` shows the paths, never a key.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificates to trust instead of the bundled roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM certificate chain to present (leaf first).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key.as_ref().map(|_| "<path>"))
            .finish()
    }
}

/// Why a [`TlsConfig`] cannot be used: which file, and what is wrong with
/// it (never its contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsConfig {
    /// Trusting the certificates in the PEM file at `path` instead of the
    /// bundled roots.
    pub fn ca_file(mut self, path: impl Into<String>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presenting the certificate chain and key in these PEM files.
    pub fn client_cert(mut self, cert: impl Into<String>, key: impl Into<String>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Whether this is the default: bundled roots, no client certificate.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The rustls client configuration, ALPN left to the connector.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no usable certificate or key;
    /// only one of `client_cert` and `client_key`; a key that does not
    /// match its certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                let certs = read_certs(path, "ca_file")?;
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| TlsError(format!("ca_file `{path}`: {e}")))?;
                }
            }
        }
        let builder = builder.with_root_certificates(roots);
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "client_cert")?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    TlsError(format!(
                        "client_key `{key}`: no usable private key ({})",
                        pem_error(&e)
                    ))
                })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    TlsError(format!("client_cert `{cert}` and client_key `{key}`: {e}"))
                })
            }
            _ => Err(TlsError(
                "give both client_cert and client_key, or neither".to_owned(),
            )),
        }
    }
}

/// What is wrong with a PEM file, without any of its contents: the
/// parser's own messages quote the offending line, which in a key file is
/// the key (found by the hostile review: a key pasted on one line).
fn pem_error(e: &PemError) -> String {
    match e {
        PemError::MissingSectionEnd { .. } => "a section has no END line".to_owned(),
        PemError::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        PemError::Base64Decode(_) => "a section is not valid base64".to_owned(),
        PemError::Io(e) => format!("I/O error: {e}"),
        PemError::NoItemsFound => "no PEM section of the right kind".to_owned(),
        _ => "not a PEM file".to_owned(),
    }
}

/// The certificates in the PEM file at `path`, at least one.
fn read_certs(path: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError(format!("{field} `{path}`: {}", pem_error(&e))))?
        .collect();
    let certs = certs.map_err(|e| TlsError(format!("{field} `{path}`: {}", pem_error(&e))))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{field} `{path}`: no certificate in it")));
    }
    Ok(certs)
}

/// The pooled client of HTTP integrations: `http://` and `https://`.
pub(crate) type HttpClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// A pooled client for `http://` and `https://` URLs with `tls`; nodelay,
/// a 10 s connect timeout.
pub(crate) fn client<B>(tls: &TlsConfig) -> Result<HttpClient<B>, TlsError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    // The TLS connector takes the scheme from the URL, not this.
    http.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls.client_config()?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Every source of `e`, joined: what a failed connection says (hyper's
/// "client error (Connect)" alone does not name the certificate problem).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
