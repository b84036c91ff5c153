//! Authorization: AWS Signature Version 4 ([`sigv4`]) and custom authorizers
//! with cached verdicts ([`authorizer`]).

pub mod authorizer;
pub mod sigv4;
