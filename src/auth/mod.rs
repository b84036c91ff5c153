//! Authorization: AWS Signature Version 4 (custom authorizers to come).
//!
//! See [`sigv4`] for the verification core.

pub mod sigv4;
