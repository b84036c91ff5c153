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
//!
//! # Settings
//!
//! Methods ask for a signature with `authorization: sigv4` (see
//! [`auth`](crate::auth)); two root sections say what it is checked against.
//!
//! ```yaml
//! sigv4:
//!   region: us-east-1
//!   service: execute-api                # the default
//!   max_skew: 300                       # seconds, the default
//!   max_body: 10MiB                     # the default
//! credentials:
//!   - access_key_id: AKIDEXAMPLE
//!     secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
//!     principal: reporting-job          # default: the access key id
//! ```
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `sigv4.region` | | required | not empty |
//! | `sigv4.service` | | `execute-api` | not empty |
//! | `sigv4.max_skew` | seconds | `300` | 1 to 3600 |
//! | `sigv4.unsigned_payload` | | `false` | accept `x-amz-content-sha256: UNSIGNED-PAYLOAD` |
//! | `sigv4.max_body` | bytes (`10MiB` style) | `10MiB` | 1 byte to 1 GiB |
//! | `sigv4.explain_signature_errors` | | `false` | a mismatch answers with the canonical request and string to sign, as AWS does |
//! | `credentials[].access_key_id` | | required | 1 to 128 upper-case letters and digits, unique |
//! | `credentials[].secret_access_key` | | required | not empty; never shown by `Debug` or in a message |
//! | `credentials[].principal` | | the access key id | not empty |
//! | `credentials[].can_invalidate_cache` | | `false` | may refresh a cache entry with `Cache-Control: max-age=0` |
//! | `limits.body_timeout_ms` | milliseconds | `10000` | 1 to 600000; how long a body read for its hash may take |
//!
//! Given a store with
//! [`GatewayBuilder::credential_store`](crate::GatewayBuilder::credential_store),
//! the gateway looks credentials up there instead of in `credentials`.
//!
//! # Failure modes
//!
//! Checks run in AWS's order and the first that fails decides; by answer:
//!
//! | case | answer |
//! |---|---|
//! | no `Authorization` header and no `X-Amz-Algorithm` query parameter; a required part (`Credential`, the date, ...) missing | 403 `MISSING_AUTHENTICATION_TOKEN` |
//! | a malformed part; the scope's region or service not the settings'; `host`, the date or `x-amz-content-sha256` not signed; the date not the scope's day; `UNSIGNED-PAYLOAD` not allowed; a signature that does not match | 403 `INVALID_SIGNATURE` |
//! | signed more than `max_skew` away from the clock; a presigned URL past `X-Amz-Expires` | 403 `EXPIRED_TOKEN` |
//! | an unknown access key id; a session token missing, unexpected or wrong | 403 `UNRECOGNIZED_CLIENT` |
//! | the credential store fails | 503 `BACKEND_UNAVAILABLE` |
//! | a body declared or found longer than `max_body` | 413 `REQUEST_TOO_LARGE` |
//! | a body not all there within `limits.body_timeout_ms` | 408 `REQUEST_TIMEOUT` |
//! | a body that does not match its declared `x-amz-content-sha256` | 400 `BAD_REQUEST_BODY` |
//!
//! There is no fail-open for signatures. The in-memory credential store does
//! not fail; in front of a remote one (the Redis store of feature `redis`, or
//! your own), a [`CachingCredentialStore`] keeps found credentials 300 s and
//! unknown ids 10 s, and in resilient mode serves the last known answer while
//! the backend fails. This is API Gateway's `AWS_IAM` authorization, which
//! verifies the caller's signature
//! ([`api-gateway-method-settings-method-request`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-method-settings-method-request.html)), with its refusal kinds
//! ([`supported-gateway-response-types`](https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)).
//!
//! Config mistakes are refused when the config is read or built, never quoting
//! a secret:
//!
//! ```text
//! sigv4: is required because a method uses `authorization: sigv4`
//! sigv4.max_skew: must be between 1 and 3600 seconds
//! credentials[0].access_key_id: an access key id is 1 to 128 upper-case letters and digits
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
pub(crate) use self::config::{check_credentials, check_credentials_at, layer};
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
