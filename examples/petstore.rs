//! The Pet Store API behind tollgate.
//!
//! ```text
//! cargo run --release --example petstore [-- --config PATH --listen ADDR --bare --upstream URL --quiet --metrics-listen ADDR --emf PATH --admin-listen ADDR --redis URL --redis-cluster URL,URL,... --check --watch --openapi FILE --stage NAME --export oas30|swagger --yaml]
//! ```
//!
//! Serves stages `dev` and `prod` at `/dev/...` and `/prod/...` with the
//! in-memory stores; nothing else needs installing. `--bare` serves the same
//! pet store with no gateway in front, for `benches/load.sh`. `--upstream URL`
//! proxies to another HTTP server instead of the in-memory store: the path
//! after the stage is appended to `URL`, the query kept (`--upstream
//! http://127.0.0.1:9090/prod` in front of a `--bare` pet store on port 9090).
//! Each request is logged on stdout in API Gateway's CLF-like access log
//! format (`--quiet` to stop it); `--metrics-listen ADDR` serves Prometheus
//! metrics (API Gateway's CloudWatch names, prefixed `apigateway_`) at
//! `http://ADDR/metrics`; `--emf PATH` appends the same metrics as CloudWatch
//! Embedded Metric Format lines (namespace `petstore`) to PATH, `-` for
//! stdout. SIGINT (Ctrl-C) or SIGTERM stops accepting, answers the requests
//! in flight (for up to 10 s), delivers every usage event, then exits.
//! `RUST_LOG=debug` prints each layer's decision (and why) on stderr.
//! `--check` validates the config and exits (0 valid, 1 not, each problem
//! on stderr with its path). `--watch` serves the config through a
//! [`Lifecycle`](tollgate::Lifecycle) and re-reads it when it changes (and on
//! SIGHUP): a changed definition becomes a new deployment, served within
//! a second; an invalid file is reported with its paths and the previous
//! config keeps serving.

#[path = "common/petstore.rs"]
mod petstore;

use petstore::{Options, PetStore};
use std::sync::Arc;
use tokio::net::TcpListener;

use metrics_exporter_prometheus::PrometheusBuilder;
use tollgate::Gateway;
use tollgate::usage::{AccessLogSink, CLF, EmfSink, MetricsSink, Reporter};

#[tokio::main]
async fn main() {
    // Decision logs and warnings on stderr: RUST_LOG=debug shows why each
    // request was admitted or refused (default: warnings only).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // `--export oas30|swagger`: the stage (of the config, or of the import)
    // as OpenAPI, and out.
    if let Some(export_type) = opts.export {
        let stage = opts.stage.as_deref().unwrap_or("prod");
        let config =
            petstore::load_config(&opts.config, opts.openapi.as_deref(), opts.stage.as_deref())
                .unwrap_or_else(|e| {
                    eprintln!("{e}");
                    std::process::exit(1);
                });
        let mut options = tollgate::openapi::ExportOptions::default();
        options.export_type = export_type;
        options.host = opts.listen.to_string();
        match tollgate::openapi::export(&config, stage, &options) {
            Ok(exported) => {
                for w in &exported.warnings {
                    eprintln!("not exported: {w}");
                }
                if opts.yaml {
                    print!("{}", exported.to_yaml());
                } else {
                    println!("{}", exported.to_json());
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    // `--openapi FILE`: an export imported into the config; with `--check`,
    // validated (every warning and error with its path) and out.
    if let Some(openapi) = &opts.openapi {
        if opts.watch || opts.redis.is_some() || opts.bare || opts.admin_listen.is_some() {
            eprintln!(
                "--openapi serves from memory: not with --watch, --redis, --bare or --admin-listen \
                 (with --admin-listen, import it with `aws apigateway put-rest-api`)"
            );
            std::process::exit(2);
        }
        if opts.check {
            match petstore::build_openapi_gateway(
                &opts.config,
                openapi,
                opts.stage.as_deref(),
                Vec::new(),
            ) {
                Ok((gateway, warnings)) => {
                    for w in &warnings {
                        eprintln!("warning: {w}");
                    }
                    let n = gateway.endpoints().count();
                    println!(
                        "{}: valid ({n} endpoints, {} warnings)",
                        openapi.display(),
                        warnings.len()
                    );
                    std::process::exit(0);
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
    }
    // `--check`: the config validated, every problem with its path, and out.
    if opts.check {
        // A lifecycle reads the stage canaries' files too.
        let checked = petstore::build_lifecycle_with(&opts.config, Vec::new());
        match checked {
            Ok(lifecycle) => {
                let endpoints: usize = lifecycle
                    .apis()
                    .iter()
                    .flat_map(|a| {
                        lifecycle
                            .stages(&a.id)
                            .unwrap_or_default()
                            .into_iter()
                            .map(move |s| (a.id.clone(), s.name))
                    })
                    .filter_map(|(a, s)| lifecycle.gateway(&a, &s))
                    .map(|g| g.endpoints().count())
                    .sum();
                println!("{}: valid ({endpoints} endpoints)", opts.config.display());
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{}: {e}", opts.config.display());
                std::process::exit(1);
            }
        }
    }
    // Usage: one access log line per request on stdout, Prometheus metrics
    // with --metrics-listen, EMF lines with --emf.
    let mut reporters = Vec::new();
    if !opts.bare {
        if !opts.quiet {
            let log = AccessLogSink::template(CLF).unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(1);
            });
            reporters.push(Reporter::new(Arc::new(log)));
        }
        if let Some(addr) = opts.metrics_listen {
            if let Err(e) = PrometheusBuilder::new().with_http_listener(addr).install() {
                eprintln!("cannot serve metrics on {addr}: {e}");
                std::process::exit(1);
            }
            // Prometheus names may not start with a digit: `apigateway_4XXError`.
            let sink = MetricsSink::new().prefix("apigateway_");
            reporters.push(Reporter::new(Arc::new(sink)));
        }
        // CloudWatch Embedded Metric Format, for the CloudWatch agent or a
        // container's log pipeline.
        if let Some(path) = &opts.emf {
            let sink = if path.as_os_str() == "-" {
                EmfSink::stdout()
            } else {
                EmfSink::file(path).unwrap_or_else(|e| {
                    eprintln!("--emf {}: {e}", path.display());
                    std::process::exit(1);
                })
            };
            reporters.push(Reporter::new(Arc::new(sink.namespace("petstore"))));
        }
    }
    // `--admin-listen`: the usage page's figures, from every request.
    let board = opts
        .admin_listen
        .map(|_| tollgate::management::UsageBoard::new());
    if let Some(b) = &board {
        reporters.push(Reporter::new(Arc::new(b.clone())));
    }
    // A config with a stage canary is served through a lifecycle too.
    let has_canary = tollgate::Config::from_path(&opts.config).is_ok_and(|c| {
        !c.apis.is_empty()
            || c.deployments.is_some()
            || c.stages.values().any(|s| s.canary.is_some())
    });
    if (opts.watch || has_canary || opts.admin_listen.is_some())
        && !opts.bare
        && opts.openapi.is_none()
    {
        watch_and_serve(&opts, reporters, board).await;
        return;
    }
    let gateway = if opts.bare {
        None
    } else {
        let built = match &opts.redis {
            None if opts.openapi.is_some() => {
                let openapi = opts.openapi.as_deref().unwrap_or(std::path::Path::new(""));
                petstore::build_openapi_gateway(&opts.config, openapi, opts.stage.as_deref(), reporters)
                    .map(|(g, warnings)| {
                        for w in &warnings {
                            eprintln!("warning: {w}");
                        }
                        g
                    })
            }
            None => petstore::build_gateway_with(&opts.config, reporters).map_err(|e| e.to_string()),
            #[cfg(feature = "redis")]
            Some(url) => {
                petstore::build_redis_gateway(&opts.config, url, reporters).await
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err("--redis needs the `redis` feature: cargo run --release --features redis --example petstore -- --redis URL".to_owned()),
        };
        match built {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    };
    let listener = match TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(opts.listen);
    let store = PetStore::new();
    // SIGINT or SIGTERM: stop accepting, answer what is in flight, then
    // deliver every usage event (access log lines included) before exit.
    // Installed before the ready line, so a signal right after it is ours.
    let shutdown = petstore::shutdown_signal();
    // The first line once ready, as DESIGN.md says; then the extras.
    println!("listening on http://{addr}");
    if !opts.bare {
        if let Some(m) = opts.metrics_listen {
            println!("metrics on http://{m}/metrics");
        }
        if let Some(url) = &opts.redis {
            println!("stores: redis at {}", petstore::redacted(url));
        }
    }
    match gateway {
        None => {
            println!("mode: bare (no gateway)");
            petstore::serve(listener, petstore::bare_service(store), false, shutdown).await;
        }
        Some(gateway) => {
            print_welcome(&gateway, &addr.to_string());
            if let Some(url) = &opts.upstream {
                println!("mode: proxying to {url}");
            }
            // Every request carries its connection's peer address, whatever
            // the logging (`serve_gateway`'s docs say who reads it).
            let served = petstore::serve_gateway(
                listener,
                &gateway,
                store,
                opts.upstream.as_deref(),
                shutdown,
            )
            .await;
            if let Err(e) = served {
                eprintln!("{e}");
                std::process::exit(2);
            }
            // SIGINT or SIGTERM: every usage event is delivered before exit.
            gateway.shutdown_reporters().await;
        }
    }
}

/// `--watch`, or a config with a stage canary: the config served through a
/// lifecycle; with `--watch`, the file re-read on change and on SIGHUP.
async fn watch_and_serve(
    opts: &petstore::Options,
    reporters: Vec<Reporter>,
    board: Option<tollgate::management::UsageBoard>,
) {
    let path = &opts.config;
    // The welcome lines read the config as a gateway holds it.
    let built = match &opts.redis {
        None => petstore::build_lifecycle_with(path, reporters).map_err(|e| e.to_string()),
        #[cfg(feature = "redis")]
        Some(url) => petstore::build_redis_lifecycle(path, url, reporters).await,
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("--redis needs the `redis` feature: cargo run --release --features redis --example petstore -- --redis URL".to_owned()),
    };
    // `deployments: { store: { dir: PATH } }`: the history kept there.
    let built = match built {
        Ok(l) => petstore::attach_configured_store(path, &l, opts.redis.is_some())
            .await
            .map(|()| l),
        Err(e) => Err(e),
    };
    // A single-API config's welcome lines read it as a gateway holds it.
    let config = tollgate::Config::from_path(path);
    let welcome = match &config {
        Ok(c) if !c.apis.is_empty() => None,
        _ => Some(petstore::gateway_without_canaries(path).map_err(|e| e.to_string())),
    };
    let (gateway, lifecycle) = match (welcome.transpose(), built) {
        (Ok(g), Ok(l)) => (g, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(opts.listen);
    // `--admin-listen`: the management API on its own listener.
    let admin = match opts.admin_listen {
        Some(a) => match TcpListener::bind(a).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("cannot listen on {a}: {e}");
                std::process::exit(1);
            }
        },
        None => None,
    };
    // SIGINT or SIGTERM: stop accepting, answer what is in flight, then
    // deliver every usage event (access log lines included) before exit.
    // Installed before the ready line, so a signal right after it is ours.
    let shutdown = petstore::shutdown_signal();
    println!("listening on http://{addr}");
    if let Some(admin) = admin {
        let at = admin
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let mut management = lifecycle.management();
        if let Some(b) = board {
            management = management.usage_board(b);
        }
        let config = lifecycle.config();
        tokio::spawn(async move {
            let never = std::future::pending::<()>();
            petstore::serve(admin, management, false, never).await;
        });
        println!("management on http://{at}");
        println!("  usage page: http://{at}/ (log in with a management access key id and secret)");
        if let Some(c) = config
            .management
            .as_ref()
            .and_then(|m| m.credentials.first())
        {
            // The demo credentials are printed on purpose: this is a local demo.
            println!(
                "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws apigateway get-rest-apis \
                 --endpoint-url http://{at} --region {}",
                c.access_key_id,
                c.secret_access_key.expose(),
                config
                    .management
                    .as_ref()
                    .map_or("us-east-1", |m| m.region.as_str()),
            );
        }
    }
    if let Some(url) = &opts.redis {
        println!(
            "stores: redis at {} (deployments too)",
            petstore::redacted(url)
        );
    }
    match &gateway {
        Some(gateway) => print_welcome(gateway, &addr.to_string()),
        None => print_apis(&lifecycle, &addr.to_string()),
    }
    // What is served: a stored state (`deployments`, `--redis`) wins over
    // the file at start.
    for api in lifecycle.apis() {
        let deployments = lifecycle.deployments(&api.id).map_or(0, |d| d.len());
        let stages: Vec<String> = lifecycle
            .stages(&api.id)
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let canary = s
                    .canary
                    .map(|c| format!(" (canary {} at {}%)", c.deployment_id, c.percent_traffic))
                    .unwrap_or_default();
                format!("{} -> {}{canary}", s.name, s.deployment_id)
            })
            .collect();
        println!(
            "API {} ({}): {deployments} deployment(s); stages {}",
            api.id,
            api.name,
            stages.join(", ")
        );
    }
    if opts.watch {
        println!("watching {} (and SIGHUP) for changes", path.display());
    } else {
        println!("SIGHUP reloads {}", path.display());
    }
    tokio::spawn(petstore::watch(path.clone(), lifecycle.clone(), opts.watch));
    let responses = gateway
        .as_ref()
        .map(|g| g.responses().clone())
        .unwrap_or_default();
    let served = petstore::serve_lifecycle(
        listener,
        &lifecycle,
        responses,
        PetStore::new(),
        opts.upstream.as_deref(),
        shutdown,
    )
    .await;
    if let Err(e) = served {
        eprintln!("{e}");
        std::process::exit(2);
    }
    // SIGINT or SIGTERM: every usage event is delivered before exit.
    lifecycle.shutdown_reporters().await;
}

/// A multi-API config's welcome: a curl line per GET of each API's stages,
/// on the execute-api host that picks the API.
fn print_apis(lifecycle: &tollgate::Lifecycle, addr: &str) {
    println!("try (a GET of each stage of each API):");
    for api in lifecycle.apis() {
        for stage in lifecycle.stages(&api.id).unwrap_or_default() {
            let Some(gateway) = lifecycle.gateway(&api.id, &stage.name) else {
                continue;
            };
            if let Some(e) = gateway.endpoints().find(|e| e.method_name() == "GET") {
                let path = e.resource().replace(['{', '}'], "");
                println!(
                    "  curl -i -H 'host: {}.execute-api.localhost' http://{addr}/{}{path}   # API {}",
                    api.id, stage.name, api.name
                );
            }
        }
    }
}

/// Prints the demo secrets and a curl line for every method of every stage
/// the config declares, with what each needs (a key, a signature, the
/// example's toy authorizer), then a 404, a 405 and the throttles to hit:
/// all derived from the config served, so `--config` gets its own lines.
fn print_welcome(gateway: &Gateway, addr: &str) {
    use tollgate::auth::Authorization;
    let config = gateway.config();
    for key in &config.keys {
        if let Some(value) = &key.value {
            // The demo key is printed on purpose: this is a local demo.
            println!("demo API key ({}): {}", key.name, value.expose());
        }
    }
    for c in &config.credentials {
        println!(
            "SigV4 credentials ({}): access key id {}, secret {}",
            c.principal.as_deref().unwrap_or(&c.access_key_id),
            c.access_key_id,
            c.secret_access_key.expose()
        );
    }
    // A key whose plans cover `stage`, as a curl header.
    let key_for = |stage: &str| {
        let covers = |k: &&tollgate::keys::KeyConfig| {
            k.enabled
                && k.plans.iter().any(|p| {
                    config
                        .plans
                        .get(p)
                        .is_some_and(|plan| plan.stages.iter().any(|s| s == stage))
                })
        };
        let value = config
            .keys
            .iter()
            .filter(|k| k.value.is_some())
            .find(covers)
            .and_then(|k| k.value.as_ref())
            .map_or("YOUR-KEY", |v| v.expose());
        format!("-H 'x-api-key: {value}' ")
    };
    // A path parameter gets `1`, a greedy one `a/b`.
    let url = |stage: &str, resource: &str| {
        let path: Vec<String> = resource
            .split('/')
            .map(
                |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) if p.ends_with('+') => "a/b".to_owned(),
                    Some(_) => "1".to_owned(),
                    None => seg.to_owned(),
                },
            )
            .collect();
        format!("http://{addr}/{stage}{}", path.join("/"))
            .trim_end_matches('/')
            .to_owned()
    };
    println!("try (every method the config declares):");
    let mut first_keyed = None;
    let mut first_limited = None;
    for e in gateway.endpoints() {
        let s = e.settings();
        let stage = e.stage();
        let target = url(stage, e.resource());
        let mut flags = String::new();
        let mut notes = Vec::new();
        if s.api_key_required {
            flags.push_str(&key_for(stage));
            first_keyed.get_or_insert((target.clone(), flags.clone()));
        }
        match s.authorization {
            Authorization::Sigv4 => match config.credentials.first() {
                Some(c) => flags.push_str(&format!(
                    "--aws-sigv4 aws:amz:us-east-1:execute-api --user '{}:{}' ",
                    c.access_key_id,
                    c.secret_access_key.expose()
                )),
                None => notes.push("needs a SigV4 signature".to_owned()),
            },
            Authorization::Authorizer => match s.authorizer.as_deref() {
                // The example's own toy authorizer (examples/common/petstore.rs).
                Some("bearer") => flags.push_str("-H 'authorization: Bearer letmein' "),
                other => notes.push(format!("authorizer {}", other.unwrap_or("?"))),
            },
            _ => {}
        }
        let method = e.method_name();
        match method {
            "GET" => {}
            "POST" | "PUT" | "PATCH" => flags.push_str(&format!(
                "-X {method} -H 'content-type: application/json' -d '{{\"type\":\"dog\",\"price\":199}}' "
            )),
            "ANY" => notes.push("any method".to_owned()),
            m => flags.push_str(&format!("-X {m} ")),
        }
        if s.cache.enabled {
            notes.push("cached".to_owned());
        }
        if s.mapping.is_some() {
            notes.push("mapped".to_owned());
        }
        if let Some(rate) = &s.throttle {
            notes.push(format!("{}/s, burst {}", rate.rate(), rate.burst()));
            if method == "GET" && rate.burst() <= 20 && first_limited.is_none() {
                first_limited = Some((target.clone(), flags.clone(), rate.burst()));
            }
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("   # {}", notes.join("; "))
        };
        println!("  curl -i {flags}{target}{notes}");
    }
    if let Some((target, _)) = &first_keyed {
        println!("  curl -i {target}   # 403: no API key");
    }
    // Custom domains: each base path mapping, on a GET of its stage.
    if config.disable_execute_api_endpoint {
        println!(
            "  (disable_execute_api_endpoint: the /{{stage}} lines above answer 403; use the domains below)"
        );
    }
    for (domain, d) in &config.domains {
        for (base, mapping) in &d.base_paths {
            let Some(e) = gateway
                .endpoints()
                .find(|e| e.stage() == mapping.stage && e.method_name() == "GET")
            else {
                continue;
            };
            let resource = url(&mapping.stage, e.resource());
            let after_stage = resource
                .strip_prefix(&format!("http://{addr}/{}", mapping.stage))
                .unwrap_or("");
            let base = if base.is_empty() {
                String::new()
            } else {
                format!("/{base}")
            };
            let key = if e.settings().api_key_required {
                key_for(&mapping.stage)
            } else {
                String::new()
            };
            println!(
                "  curl -i {key}-H 'host: {domain}' http://{addr}{base}{after_stage}   # domain {domain}, stage {}",
                mapping.stage
            );
        }
    }
    if let Some(stage) = config.stages.keys().next() {
        println!("  curl -i http://{addr}/{stage}/no-such-resource   # 404 RESOURCE_NOT_FOUND");
    }
    if let Some(e) = gateway.endpoints().find(|e| e.method().is_some()) {
        let target = url(e.stage(), e.resource());
        println!("  curl -i -X TRACE {target}   # 405 METHOD_NOT_ALLOWED");
    }
    if let Some((target, flags, burst)) = first_limited {
        println!(
            "  for i in $(seq {}); do curl -s -o /dev/null -w '%{{http_code}} ' {flags}{target}; done   # 429 after {burst} (method limit)",
            burst + 3
        );
    }
    // The first key with a small plan throttle, on a method that asks for a key.
    if let Some((target, _)) = &first_keyed {
        let small = config
            .keys
            .iter()
            .filter(|k| k.value.is_some())
            .find_map(|k| {
                k.plans.iter().find_map(|p| {
                    let burst = config.plans.get(p)?.throttle.as_ref()?.burst?;
                    (burst <= 50).then_some((k, burst))
                })
            });
        if let Some((k, burst)) = small {
            let value = k.value.as_ref().map_or("", |v| v.expose());
            println!(
                "  for i in $(seq {}); do curl -s -o /dev/null -w '%{{http_code}} ' -H 'x-api-key: {value}' {target}; done   # 429 after {burst} (plan limit)",
                burst + 4
            );
        }
    }
}
