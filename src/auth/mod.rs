//! Authorization: AWS Signature Version 4 (custom authorizers to come).
//!
//! See [`sigv4`]: the verification core and [`SigV4Layer`](sigv4::SigV4Layer).

pub mod sigv4;
