//! The gateway in front of a plain hyper `service_fn`.
//!
//! ```text
//! cargo run --example hyper_service
//! curl -i http://127.0.0.1:8082/prod/echo/anything/you/like
//! ```

use std::convert::Infallible;

use http::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tollgate::{Body, Config, Gateway, RequestContext};

const CONFIG: &str = r#"
routes:
  /echo/{proxy+}: [GET, POST]
stages:
  prod: {}
"#;

async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let proxy = req
        .extensions()
        .get::<RequestContext>()
        .and_then(|ctx| ctx.path_param("proxy").map(str::to_owned))
        .unwrap_or_default();
    Ok(Response::new(Body::from(format!(
        "{} {} -> {proxy}\n",
        req.method(),
        req.uri()
    ))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Gateway::new(Config::from_yaml_str(CONFIG)?)?;
    let service = gateway.service(tower::service_fn(echo));

    let listener = TcpListener::bind("127.0.0.1:8082").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}
