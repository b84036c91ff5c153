//! 3scale as the business layer: keys, plans and analytics kept in 3scale,
//! enforced in process.
//!
//! Two pieces, both speaking 3scale's Service Management API (its
//! published reference: `authrep.xml`, `transactions.xml`, and the "3scale
//! error codes" page for what each status means):
//!
//! - a `threescale` authorizer (an `authorizers` entry with a `threescale`
//!   section, [`ThreeScaleConfig`]): each caller's key is checked by
//!   `authrep` with the method's metric, and the verdict cached per key and
//!   method like every authorizer's;
//! - [`ThreeScaleSink`], a [`UsageSink`](crate::usage::UsageSink) that
//!   reports a [`Reporter`](crate::usage::Reporter)'s batches as hits per
//!   application and metric, for APIs whose keys tollgate keeps.
//!
//! | 3scale answers `authrep` | the caller gets |
//! |---|---|
//! | 200, authorized | the call goes on; its hit is reported by that `authrep` |
//! | 403 or 404 with an error about the caller (`user_key_invalid`, `application_not_found`, `application_key_invalid`, ...) | 403 `INVALID_API_KEY`, `{"message":"Forbidden"}` |
//! | 409 naming a usage limit | 429 `QUOTA_EXCEEDED` with 3scale's reason as the message (`{"message":"usage limits are exceeded"}`) |
//! | another 409 (application not active, wrong `app_key`) | 403 `INVALID_API_KEY` (3scale's reason may quote the key: not passed on) |
//! | no answer in `timeout_ms`, a connection error, a 5xx, a 400 or 422, an error about the service itself (`service_token_invalid`, `service_id_invalid`), or anything that is not one of 3scale's documents (a proxy's page, XML nested deeper than 16 levels) | the authorizer's `fail_mode`: `closed` (default) 503; `open` admits, and counts the call for the next batched report (3scale drops the hits of keys it does not know) |
//! | (a credential missing from the request) | 401 `UNAUTHORIZED`, no call |
//!
//! Allowed and refused verdicts are cached for the authorizer's `ttl`
//! (default 300 s, 0 to ask 3scale on every call), per credential and
//! method; failures are not. A call let through by a cached allow is not
//! lost to 3scale's counts: it is counted in process and reported in a
//! batch (`report`) every `report_interval_ms` and when
//! [`Gateway::shutdown_reporters`](crate::Gateway::shutdown_reporters)
//! runs, so N calls become N hits in far fewer than N calls to 3scale. A
//! report that fails keeps its counts for the next; a gateway dropped (a
//! new deployment) sends what it holds, a report in flight included, and
//! logs at `error` any hits it gives up on after ten tries. Delivery is at
//! least once: a report 3scale took whose answer was lost is sent again.
//! Counts are kept per application (`user_key`, or `app_id` without its
//! key) and metric, at most 500 per report call. Over `http://` to another
//! host than this one the service token and keys travel in clear text: a
//! warning is logged when the authorizer is built. The cost of the cache
//! is that 3scale's limits are seen up to `ttl` late: a key over its limit
//! is let through until its cached allow expires.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::{Body, Config, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_yaml_str(r#"
//! routes: { /pets: [GET, POST] }
//! stages: { prod: { settings: { authorization: authorizer, authorizer: threescale } } }
//! authorizers:
//!   threescale:
//!     identity_sources: [header.X-User-Key]
//!     ttl: 60
//!     threescale:
//!       url: https://su1.3scale.net
//!       service_id: "2555417777820"
//!       service_token: example-service-token
//!       metrics: { /pets/POST: create_pet }   # others: `hits`
//! "#)?;
//! let gateway = Gateway::builder(config).build()?;
//! let svc = gateway.service(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//! }));
//! // No key: refused before 3scale is asked.
//! let res = svc.oneshot(Request::get("/prod/pets").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! # Settings
//!
//! The authorizer's `identity_sources` say where the credentials are (for
//! `app_id`: the app id, then the app key); without them, APIcast's
//! defaults: `querystring.user_key`, or `querystring.app_id` and
//! `querystring.app_key`. Its `ttl` and `fail_mode` are every
//! authorizer's. The `threescale` section:
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `url` | | required | `http://` or `https://` and a host, no path (`https://su1.3scale.net`) |
//! | `service_id` | | required | the service (product) id |
//! | `service_token` | | required | a secret: never logged, never in `Debug` |
//! | `credentials` | | `user_key` | `user_key` (one source) or `app_id` (one or two sources) |
//! | `metric` | | `hits` | a metric system name (letters, digits, `_`, `-`) |
//! | `metrics` | | none | `RESOURCE/METHOD`, `RESOURCE/*` or `*/*` to a metric; the most specific wins |
//! | `timeout_ms` | ms | `5000` | 50 to 60000 |
//! | `report_interval_ms` | ms | `1000` | 100 to 3600000 |
//!
//! The principal of an allowed caller (logs, usage events, the inner
//! service's [`AuthorizerContext`](crate::auth::authorizer::AuthorizerContext))
//! is the `app_id`, or for a `user_key` `user_key:` and 10 hex digits of
//! the key's SHA-256; the context holds `threescale_metric`. Keys and the
//! service token never appear in logs, errors or `Debug` output. Config
//! mistakes are reported with their paths:
//!
//! Like API keys and SigV4 credentials, the section is never serialized
//! (its token is a secret), so a definition a
//! [`Lifecycle`](crate::Lifecycle) writes to a deployment store holds the
//! authorizer without it: a deployment read back from a store refuses to
//! build ("no implementation is registered") rather than serve without
//! 3scale. Keep `threescale` authorizers in configs that are read, not
//! stored.
//!
//! ```text
//! authorizers.threescale.threescale.url: 3scale's URL is http:// or https:// and a host, with no path, query or user
//! authorizers.threescale.threescale.credentials: `user_key` takes one identity source
//! authorizers.threescale: has a `threescale` section; no implementation may be registered for it
//! ```

mod authorizer;
mod client;
mod config;
mod sink;

pub use authorizer::ThreeScaleAuthorizer;
pub use config::{Credentials, ThreeScaleConfig};
pub use sink::{Application, ThreeScaleSink};
