//! AWS Signature Version 4, as AWS computes it.
//!
//! This module holds the verification core: reading the signature
//! parameters from an `Authorization` header or a presigned URL
//! ([`parse_authorization`], [`parse_presigned`]), the canonical request
//! ([`canonical_request`]: path encoded twice for every service but S3,
//! optional dot-segment normalization, query parameters decoded, re-encoded
//! and sorted, header values trimmed and folded, repeated headers joined),
//! the string to sign and the signing key ([`SigningKey`]), and a
//! constant-time signature check. It passes every case of AWS's signing
//! test suite (`tests/sigv4_vectors.rs`).
//!
//! [`SigV4Layer`] applies it: behind a [`Gateway`](crate::Gateway), to
//! methods with `authorization: sigv4`. It checks everything that needs no
//! body before reading any of it ([`Verifier::prepare`]): the credential
//! scope (region, service, date), the clock skew (5 minutes by default) or a
//! presigned URL's expiry, the `x-amz-content-sha256` rules, the credentials
//! ([`CredentialStore`]; an unknown access key id is refused here) and
//! session token, and the signature when the payload hash is declared. Then
//! it reads the body within `sigv4.max_body` (413 at once for a longer
//! declared length) and `limits.body_timeout_ms` (408), copying it into one
//! buffer, and checks its hash or the signature over it
//! ([`Verifier::finish`]), in constant time, with a signing key cached per
//! access key and day. A verified request carries a
//! [`SigV4Identity`] in its request and response extensions. Refusals are
//! API Gateway's: 403 `MISSING_AUTHENTICATION_TOKEN`, `INVALID_SIGNATURE`,
//! `EXPIRED_TOKEN` ("Signature expired: ..."), `UNRECOGNIZED_CLIENT`.
//!
//! ```
//! use tollgate::auth::sigv4::{CanonicalOptions, SigningKey, canonical_request, parse_authorization, sha256_hex, string_to_sign};
//! use tollgate::gateway::Secret;
//!
//! let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
//!             SignedHeaders=host;x-amz-date, \
//!             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
//! let params = parse_authorization(auth)?;
//! let headers = [("Host", &b"example.amazonaws.com"[..]), ("X-Amz-Date", &b"20150830T123600Z"[..])];
//! let canonical = canonical_request(
//!     "GET", b"/", b"", headers.iter().copied(), &params,
//!     &sha256_hex(b""), CanonicalOptions::default(),
//! )?;
//! let sts = string_to_sign("20150830T123600Z", &params.scope(), &canonical);
//! let key = SigningKey::derive(&Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "20150830", "us-east-1", "service");
//! assert!(key.verify(&sts, &params.signature));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canonical;
mod config;
mod credentials;
mod date;
mod layer;
mod parse;
mod sign;
mod verify;

// The building blocks below are public for the SigV4 test-suite runner
// (tests/sigv4_vectors.rs) and the fuzz target, not for users: hidden from
// the docs, they may change in any release.
pub use self::canonical::CanonicalOptions;
#[doc(hidden)]
pub use self::canonical::{CanonicalError, canonical_query, canonical_request, canonical_uri};
pub use self::config::{CredentialConfig, SigV4Config};
pub(crate) use self::config::{check_credentials, layer};
pub use self::credentials::{
    CachingCredentialStore, Credential, CredentialStore, InMemoryCredentialStore,
};
pub use self::layer::{DEFAULT_MAX_BODY, ResponseFuture, SigV4, SigV4Layer};
#[doc(hidden)]
pub use self::parse::{
    ALGORITHM, ParseError, ParseErrorKind, Presigned, SignatureParams, parse_authorization,
    parse_presigned,
};
#[doc(hidden)]
pub use self::sign::string_to_sign;
pub use self::sign::{SigningKey, sha256_hex};
pub use self::verify::{
    Prepared, Refusal, SigV4Identity, UNSIGNED_PAYLOAD, Verifier, VerifierSettings,
};
