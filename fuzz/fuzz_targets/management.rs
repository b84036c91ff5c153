//! Hostile management API calls (API Gateway's REST API, as the aws CLI
//! and boto3 send it), correctly signed so they reach the parsing of the
//! method, the path and its ids, the query (`limit`, `position`, `mode`)
//! and the JSON body (patch operations, imports). Any status is fine; a
//! panic is not.
//!
//! The input is `METHOD\nPATH?QUERY\nBODY`.

use std::sync::OnceLock;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use http_body_util::BodyExt;
use tollgate::clock::{Clock, SystemClock};
use tollgate::management::Management;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
routes:
  /pets: [GET, POST]
  /pets/{id}: [GET]
stages:
  prod: {}
plans:
  basic: { stages: [prod], quota: { limit: 100, period: day } }
keys:
  - { name: demo, value: demo-key-0123456789abcdef, plans: [basic] }
management:
  region: us-east-1
  credentials:
    - { access_key_id: AKIDFUZZ, secret_access_key: fuzz-secret-0123456789 }
"#;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A fresh lifecycle per input: what one call changes cannot leak into
/// the next, so a crash replays from its input alone.
fn management(config: &Config) -> Management {
    let _guard = runtime().enter();
    Gateway::builder(config.clone())
        .build_lifecycle()
        .expect("the config builds")
        .management()
}

fn config() -> &'static Config {
    static CONFIG_LOADED: OnceLock<Config> = OnceLock::new();
    CONFIG_LOADED.get_or_init(|| Config::from_yaml_str(CONFIG).expect("the config loads"))
}

fn main() {
    let _ = config();
    afl::fuzz!(|data: &[u8]| {
        let identity = aws_credential_types::Credentials::new(
            "AKIDFUZZ",
            "fuzz-secret-0123456789",
            None,
            None,
            "fuzz",
        )
        .into();
        let mut parts = data.splitn(3, |b| *b == b'\n');
        let method = parts.next().unwrap_or(b"GET");
        let target = parts.next().unwrap_or(b"/");
        let body = parts.next().unwrap_or(b"");
        let (Ok(method), Ok(target)) = (std::str::from_utf8(method), std::str::from_utf8(target))
        else {
            return;
        };
        let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
            return;
        };
        let url = format!("http://apigateway.local{target}");
        let Ok(mut req) = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header("host", "apigateway.local")
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
        else {
            return;
        };
        let headers = [
            ("host", "apigateway.local"),
            ("content-type", "application/json"),
        ];
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("apigateway")
            .time(SystemClock.system_time())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let Ok(signable) = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        ) else {
            return;
        };
        let Ok(signed) = sign(signable, &params) else {
            return;
        };
        signed.into_parts().0.apply_to_request_http1x(&mut req);
        let management = management(config());
        runtime().block_on(async {
            let Ok(res) = management.oneshot(req).await;
            let status = res.status();
            let body = res.into_body().collect().await;
            // To check a seed gets past the signature: `TOLLGATE_FUZZ_SHOW=1 target/release/management < FILE`.
            if std::env::var_os("TOLLGATE_FUZZ_SHOW").is_some() {
                let body = body.map(|b| b.to_bytes()).unwrap_or_default();
                eprintln!("{status} {}", String::from_utf8_lossy(&body));
            }
        });
    });
}
