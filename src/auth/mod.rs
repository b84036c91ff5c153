//! Authorization: AWS Signature Version 4 ([`sigv4`]) and custom authorizers
//! with cached verdicts ([`authorizer`]).

pub mod authorizer;
mod config;
pub mod sigv4;

pub use self::config::{Authorization, AuthorizerConfig};
pub(crate) use self::config::{check_authorizers, layer, resolve_method};
