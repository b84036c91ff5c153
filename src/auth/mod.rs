//! Authorization: AWS Signature Version 4 ([`sigv4`]) and custom authorizers
//! with cached verdicts ([`authorizer`]).
//!
//! Each method says how its callers are authorized, in its stage's `settings`
//! or a method override (API Gateway's method `authorizationType`,
//! [`api-gateway-method-settings-method-request`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-method-settings-method-request.html)):
//!
//! | `authorization` | the caller must | refused with |
//! |---|---|---|
//! | `none` (the default) | nothing | |
//! | `sigv4` | sign the request with AWS Signature Version 4, with credentials the gateway knows ([`sigv4`]) | 403 `MISSING_AUTHENTICATION_TOKEN`, `INVALID_SIGNATURE`, `EXPIRED_TOKEN` or `UNRECOGNIZED_CLIENT` |
//! | `authorizer` | be allowed by the custom authorizer that `authorizer: NAME` names ([`authorizer`]) | 401 `UNAUTHORIZED`, 403 `ACCESS_DENIED` |
//!
//! `api_key_required: true` asks for an API key on top of any of the three
//! ([`keys`](crate::keys)). Behind a [`Gateway`](crate::Gateway) the
//! authorization layers run first, right after routing, and the API key layer
//! after them, so that an authorizer can supply the key
//! (`api_key_options.source: authorizer`, API Gateway's `AUTHORIZER` key
//! source, [`api-gateway-api-key-source`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-key-source.html)); then come the throttle and the
//! quota.
//!
//! # Settings
//!
//! ```yaml
//! stages:
//!   prod:
//!     settings: { authorization: sigv4 }               # every method of the stage
//!     methods:
//!       /me/GET: { authorization: authorizer, authorizer: bearer, api_key_required: true }
//!       /health/GET: { authorization: none }
//! sigv4: { region: us-east-1 }                         # required by `sigv4`
//! authorizers: { bearer: { identity_sources: [header.Authorization] } }
//! ```
//!
//! | method setting | default | bounds |
//! |---|---|---|
//! | `authorization` | `none` | `none`, `sigv4` (needs the root `sigv4` section) or `authorizer` (needs `authorizer`) |
//! | `authorizer` | none | a name in the root `authorizers` section |
//! | `api_key_required` | `false` | |
//!
//! Each is replaced whole by the deepest layer that names it (stage `settings`,
//! `*/*`, `RESOURCE/*`, `RESOURCE/METHOD`), and checked as merged. The root
//! sections are documented with their layers: `sigv4` and `credentials` in
//! [`sigv4`], `authorizers` in [`authorizer`].
//!
//! # Failure modes
//!
//! What each refusal is, and what a failing credential store or authorizer
//! does, is in [`sigv4`] and [`authorizer`]. Config mistakes are refused when
//! the config is read or built, each at the deepest layer that named the
//! setting; an authorizer with no implementation is refused by
//! [`GatewayBuilder::build`](crate::GatewayBuilder::build):
//!
//! ```text
//! sigv4: is required because a method uses `authorization: sigv4`
//! stages.prod.settings.authorizer: `authorization: authorizer` needs `authorizer: NAME`
//! stages.prod.methods."/me/GET".authorizer: unknown authorizer `nope`
//! authorizers.bearer: no implementation is registered for it (GatewayBuilder::authorizer)
//! ```

pub mod authorizer;
mod config;
pub mod sigv4;

pub use self::config::{Authorization, AuthorizerConfig};
pub(crate) use self::config::{check_authorizers, layer, resolve_method};
