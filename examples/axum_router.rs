//! The gateway in front of an axum `Router`.
//!
//! ```text
//! cargo run --example axum_router
//! curl -i http://127.0.0.1:8081/prod/hello/world
//! ```
//!
//! axum routes on the path the gateway hands it, with the stage prefix
//! stripped, and reads the gateway's facts from the request extensions.

use axum::extract::{Extension, Path};
use axum::routing::get;
use tokio::net::TcpListener;
use tollgate::{Config, Gateway, RequestContext};

const CONFIG: &str = r#"
routes:
  /hello/{name}: [GET]
stages:
  prod: { variables: { greeting: Hello } }
  dev: { variables: { greeting: Hi } }
"#;

async fn hello(Path(name): Path<String>, Extension(ctx): Extension<RequestContext>) -> String {
    let greeting = ctx.endpoint().stage_variable("greeting").unwrap_or("Hello");
    format!(
        "{greeting}, {name}! (stage {}, request {})\n",
        ctx.endpoint().stage(),
        ctx.request_id()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = axum::Router::new().route("/hello/{name}", get(hello));
    let gateway = Gateway::new(Config::from_yaml_str(CONFIG)?)?;
    // Wrap the whole router: the gateway must see the request before axum
    // routes it (`Router::layer` would run it after routing). An outer router
    // whose only route is the fallback gives `axum::serve` what it takes.
    let service = axum::Router::new().fallback_service(gateway.service(app));

    let listener = TcpListener::bind("127.0.0.1:8081").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!(
        "try: curl -i http://{}/prod/hello/world",
        listener.local_addr()?
    );
    axum::serve(listener, service).await?;
    Ok(())
}
