//! Hostile mapping templates, in both languages, rendered over a hostile
//! body: VTL (API Gateway's language) compiled and rendered directly, and
//! a jinja template through a gateway's mapping. Errors (a 500 from the
//! mapping) are fine; a panic, or a render past its limits, is not.
//!
//! The input is `TEMPLATE\0BODY`; its first byte picks the language (even:
//! VTL, odd: jinja) and is not part of the template.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use http_body_util::BodyExt;
use tollgate::vtl::{Limits, Params, Template, Variables};
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn vtl(template: &str, body: &[u8]) {
    let Ok(t) = Template::compile(template) else {
        return;
    };
    let empty = BTreeMap::new();
    let variables = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    let context = serde_json::json!({ "stage": "prod", "requestId": "r" });
    let vars = Variables {
        body,
        params: Params {
            path: &empty,
            querystring: &empty,
            header: &empty,
        },
        context: &context,
        stage_variables: &variables,
    };
    let _ = t.render(&vars, &Limits::default());
}

fn jinja(template: &str, body: &[u8]) {
    // The template as a JSON string inside the YAML (JSON is YAML).
    let Ok(quoted) = serde_json::to_string(template) else {
        return;
    };
    let yaml = format!(
        "routes:\n  /m: [POST]\nstages:\n  prod:\n    methods:\n      /m/POST:\n        mapping:\n          request:\n            templates: {{ application/json: {quoted} }}\n"
    );
    let Ok(config) = Config::from_yaml_str(&yaml) else {
        return;
    };
    let Ok(gw) = Gateway::builder(config).build() else {
        return;
    };
    let inner = tower::service_fn(|req: http::Request<Body>| async move {
        Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
    });
    let req = http::Request::post("/prod/m")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    runtime().block_on(async {
        let Ok(res) = gw.service(inner).oneshot(req).await;
        let _ = res.into_body().collect().await;
    });
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, rest)) = data.split_first() else {
            return;
        };
        let (template, body) = match rest.iter().position(|b| *b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b"{}"[..]),
        };
        let Ok(template) = std::str::from_utf8(template) else {
            return;
        };
        if pick % 2 == 0 {
            vtl(template, body);
        } else {
            jinja(template, body);
        }
    });
}
