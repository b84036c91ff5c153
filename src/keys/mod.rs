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
//! (key id and plan) in the request extensions, for the throttle and quota
//! layers, and in the response extensions, for usage reporting.
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
pub use self::record::{KeyDigest, KeyHasher, KeyRecord, generate_key, is_valid_key};
pub use self::service::ApiKey;
pub use self::source::{API_KEY_HEADER, KeySource};
pub use self::store::{InMemoryKeyStore, KeyStore};
