//! Hostile methods, paths and hosts for route lookup (templates, greedy
//! parameters, ANY, custom domains): `None` is fine; a panic is not.
//!
//! The input is `METHOD\nPATH\nHOST`.

use std::sync::OnceLock;

use tollgate::{Config, Gateway};

const ROUTES: &str = r#"
routes:
  /pets: [GET, POST]
  /pets/{petId}: [GET, DELETE]
  /pets/{petId}/toys/{toyId}: [ANY]
  /files/{proxy+}: [GET]
  /{proxy+}: [ANY]
  /a/b/c: [PUT]
stages:
  prod: {}
  dev: {}
domains:
  api.example.com:
    base_paths:
      "": { stage: prod }
      v2/beta: { stage: dev }
"#;

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        Gateway::builder(Config::from_yaml_str(ROUTES).expect("the routes load"))
            .build()
            .expect("the routes build")
    })
}

fn main() {
    // Built before the loop; read through the static inside it (a captured
    // reference is not unwind-safe, which `fuzz!` asks of its closure).
    let _ = gateway();
    afl::fuzz!(|data: &[u8]| {
        let gw = gateway();
        let text = String::from_utf8_lossy(data);
        let mut parts = text.splitn(3, '\n');
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let host = parts.next();
        let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
            return;
        };
        let _ = gw.find_endpoint(&method, path);
        let _ = gw.find_endpoint_on(&method, host, path);
    });
}
