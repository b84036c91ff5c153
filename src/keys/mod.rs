//! API keys: stored as digests, looked up per request, with a cache for remote stores.
//!
//! A key value is never stored: a [`KeyStore`] maps its digest (SHA-256, or
//! HMAC-SHA-256 under a secret pepper, see [`KeyHasher`]) to a [`KeyRecord`].
//! A lookup hashes the presented key and fetches by digest, so no plaintext
//! comparison happens and the time taken does not depend on how much of a
//! guess was right.
//!
//! [`ApiKeyLayer`] reads the key from `x-api-key` (or another header, a
//! query parameter, an authorizer's [`UsageIdentifierKey`](crate::UsageIdentifierKey),
//! or a closure: [`KeySource`]). Behind a [`Gateway`](crate::Gateway) only
//! methods with `api_key_required: true` ask for one, and the key must be in
//! a usage plan that covers the stage. A missing, unknown, disabled or expired
//! key, or one with no plan for the stage, gets the same 403
//! `INVALID_API_KEY` `{"message":"Forbidden"}`: the answer tells a guesser
//! nothing. An accepted key becomes an [`ApiKeyIdentity`](crate::ApiKeyIdentity)
//! (key id and plan), for the throttle and quota layers and your service:
//! behind a [`Gateway`](crate::Gateway), in the request's
//! [`RequestContext`](crate::RequestContext)
//! ([`api_key`](crate::RequestContext::api_key)), so a request has one
//! extension for both; alone, as an extension of its own.
//! [`Caller::of`](crate::Caller::of) reads either. The layer alone also
//! puts it in the response extensions, where a
//! [`UsageLayer`](crate::usage::UsageLayer) outside reads it; a gateway
//! hands it to its usage event directly, and its responses do not carry
//! it.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::Body;
//! use tollgate::clock::SystemClock;
//! use tollgate::keys::{ApiKeyLayer, KeyHasher, KeyManager, NewKey};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (layer, store) = ApiKeyLayer::in_memory();
//! let keys = KeyManager::new(store, KeyHasher::sha256(), SystemClock);
//! let (_, value) = keys.create(NewKey::named("alice")).await?;
//!
//! let svc = layer.layer(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//! }));
//! let ok = svc.clone().oneshot(Request::get("/").header("x-api-key", value.expose()).body(Body::empty())?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! let no = svc.oneshot(Request::get("/").header("x-api-key", "not-a-key-0000000000").body(Body::empty())?).await?;
//! assert_eq!(no.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```
//!
//! For keys kept elsewhere, implement [`KeyStore`] (see
//! `examples/custom_key_store.rs`) and put a [`CachingKeyStore`] in front:
//! found keys are cached for 300 s, unknown ones for 10 s, and in resilient
//! mode the last known answer is served while the backend is down. A store
//! failure follows [`FailMode`](crate::store::FailMode), closed by default
//! (503 `BACKEND_UNAVAILABLE`).
//!
//! # Settings
//!
//! Two root sections, `api_key_options` (how keys are read and hashed) and
//! `keys` (keys loaded into the in-memory store), and one method setting,
//! `api_key_required`, given in a stage's `settings` or a method override and
//! replaced whole by the deepest layer that names it. Plans are in
//! [`plans`](crate::plans).
//!
//! ```yaml
//! api_key_options:
//!   header: x-api-key        # the default; `query: NAME` reads a query parameter instead
//!   fail_mode: closed        # the default
//! keys:
//!   - name: alice
//!     value: alice-0123456789abcdefghij     # or value_sha256: 64 hex digits
//!     plans: [basic]
//!     expires: 2027-01-31T00:00:00Z
//! stages:
//!   prod:
//!     methods:
//!       /pets/GET: { api_key_required: true }
//! ```
//!
//! | field | default | bounds and meaning |
//! |---|---|---|
//! | `api_key_options.source` | `header` | `header`, or `authorizer`: the authorizer's usage identifier key (API Gateway's `AUTHORIZER` key source) |
//! | `api_key_options.header` | `x-api-key` | a valid header name, matched case-insensitively |
//! | `api_key_options.query` | none | not empty; read the key from this query parameter instead of the header |
//! | `api_key_options.pepper` | none | at least 16 characters; keys are hashed with HMAC-SHA-256 under it, and `value_sha256` then holds that HMAC |
//! | `api_key_options.fail_mode` | `closed` | `open` or `closed`: what a key store failure does |
//! | `keys[].name` | required | not empty, unique |
//! | `keys[].value` | | 20 to 128 printable ASCII characters without spaces; hashed at load, never kept |
//! | `keys[].value_sha256` | | 64 hex digits, instead of `value`: exactly one of the two; no key value twice |
//! | `keys[].plans` | `[]` | existing plans, at most one covering each stage |
//! | `keys[].expires` | none | an RFC 3339 time |
//! | `keys[].enabled`, `description`, `tags` | `true`, none, `{}` | |
//! | `keys[].can_invalidate_cache` | `false` | the key may refresh a cache entry with `Cache-Control: max-age=0` |
//! | `api_key_required` (method setting) | `false` | |
//!
//! With [`GatewayBuilder::key_store`](crate::GatewayBuilder::key_store), the
//! config's `keys` are not loaded into that store until
//! [`Gateway::load_config_keys`](crate::Gateway::load_config_keys) is called.
//!
//! # Failure modes
//!
//! | case | answer |
//! |---|---|
//! | no key, or one unknown, disabled, expired, or in no plan for the stage | 403 `INVALID_API_KEY` `{"message":"Forbidden"}` (API Gateway's 403 Forbidden, [`api-gateway-api-key-source`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-key-source.html)) |
//! | the store fails, `fail_mode: closed` | 503 `BACKEND_UNAVAILABLE` |
//! | the store fails, `fail_mode: open` | admitted without an [`ApiKeyIdentity`](crate::ApiKeyIdentity), so no plan throttle or quota applies |
//!
//! Store failures are logged and counted in [`ApiKeyLayer::store_errors`]. The
//! in-memory store does not fail; the Redis one (feature `redis`) does when
//! Redis does not answer within its call timeout (50 ms by default), and fails
//! fast while its circuit is open. A [`CachingKeyStore`] in front keeps fresh
//! answers (in resilient mode, every last known one) serving.
//!
//! Config mistakes are refused when the config is read or built, each at its
//! path, never quoting a key value:
//!
//! ```text
//! keys[0].value: an API key is 20 to 128 printable ASCII characters without spaces
//! keys[1]: give `value` or `value_sha256`, not both
//! keys[0].plans[1]: plans `p` and `q` both cover stage `prod` (a key may be in one plan per stage)
//! ```

mod cache;
mod config;
mod future;
mod layer;
mod manage;
mod record;
mod service;
mod source;
mod store;

pub use self::cache::{CachingKeyStore, DEFAULT_NEGATIVE_TTL, DEFAULT_TTL};
pub use self::config::{ApiKeyOptions, ApiKeySource, KeyConfig};
pub(crate) use self::config::{check_keys, load_keys};
pub use self::future::ResponseFuture;
pub use self::layer::ApiKeyLayer;
pub(crate) use self::manage::prepare;
pub use self::manage::{KeyManager, NewKey};
pub(crate) use self::record::new_id;
pub use self::record::{KeyDigest, KeyHasher, KeyRecord, generate_key, is_valid_key};
pub use self::service::ApiKey;
pub use self::source::{API_KEY_HEADER, KeySource};
pub use self::store::{InMemoryKeyStore, KeyStore};
