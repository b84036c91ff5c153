//! Hostile `Cache-Control` on both sides of a cached method: the request's
//! (`max-age=0` asks for a refresh) and the response's (`no-store`,
//! `private`, `max-age`, `s-maxage` decide what is stored). Any answer is
//! fine; a panic is not.
//!
//! The input is `REQUEST_VALUE\nRESPONSE_VALUE`.

use std::sync::OnceLock;

use http_body_util::BodyExt;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
routes:
  /pets: [GET]
stages:
  prod:
    settings: { cache: { enabled: true, ttl: 60, honor_max_age: true } }
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

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        Gateway::builder(Config::from_yaml_str(CONFIG).expect("the config loads"))
            .build()
            .expect("the config builds")
    })
}

fn main() {
    // Built before the loop; read through the static inside it (a captured
    // reference is not unwind-safe, which `fuzz!` asks of its closure).
    let _ = gateway();
    afl::fuzz!(|data: &[u8]| {
        let gw = gateway();
        let (request, response) = match data.iter().position(|b| *b == b'\n') {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (data, &b""[..]),
        };
        let Ok(request) = http::HeaderValue::from_bytes(request) else {
            return;
        };
        let Ok(response) = http::HeaderValue::from_bytes(response) else {
            return;
        };
        let inner = tower::service_fn(move |_req: http::Request<Body>| {
            let response = response.clone();
            async move {
                let mut res = http::Response::new(Body::from("[]"));
                res.headers_mut().insert("cache-control", response);
                Ok::<_, std::convert::Infallible>(res)
            }
        });
        let req = http::Request::get("/prod/pets")
            .header("cache-control", request)
            .body(Body::empty())
            .expect("a request");
        runtime().block_on(async {
            let Ok(res) = gw.service(inner).oneshot(req).await;
            let _ = res.into_body().collect().await;
        });
    });
}
