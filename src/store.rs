//! What every pluggable store shares: its error type and what a layer does
//! when its store fails.
//!
//! Stores are async traits held as `Arc<dyn Trait>` (a
//! [`KeyStore`](crate::keys::KeyStore),
//! [`RateStore`](crate::throttle::RateStore),
//! [`CounterStore`](crate::plans::CounterStore), ...), each with an
//! in-memory default and, with feature `redis`, a Redis implementation
//! (`tollgate::redis`). They all fail the same way, with a [`StoreError`],
//! and each layer turns that into its [`FailMode`]'s answer: a store error
//! never panics and never passes silently.
//!
//! ```
//! use tollgate::store::{FailMode, StoreError};
//!
//! let err = StoreError::unavailable("redis: connection refused");
//! assert_eq!(err.to_string(), "store unavailable: redis: connection refused");
//! assert_eq!(FailMode::default(), FailMode::Open);
//! ```

use std::fmt;

/// What a layer does when its store fails (an error or a timeout).
///
/// A store failure never panics and never passes silently: with `Open` the
/// request is admitted and the failure counted; with `Closed` the gateway
/// answers 503 `BACKEND_UNAVAILABLE`. Each layer documents its default.
///
/// The choice is a trade between availability and enforcement: `Open`
/// keeps the API up through a store outage at the price of limits not
/// being enforced meanwhile (a throttle admits without a bucket); `Closed`
/// enforces strictly and takes the API down with its store. Authentication
/// stores (API keys) default to `Closed`, since admitting an unchecked
/// caller is rarely acceptable. In config files it is written `open` or
/// `closed`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FailMode {
    /// Admit the request; count the failure.
    #[default]
    Open,
    /// Answer 503 `BACKEND_UNAVAILABLE`.
    Closed,
}

/// A store could not answer.
///
/// Opaque, with a [`kind`](Self::kind) to branch on, so context can be added
/// later without a breaking change. `Display` gives the kind's phrase and
/// the message (`store timed out: redis: the call timed out`). Messages
/// name the failure and never a key value or secret, so the error is safe
/// to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    /// Free text for people; never parsed, never holding a secret.
    message: String,
}

/// What sort of [`StoreError`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend cannot be reached or refused the call. Also what the
    /// Redis stores report while their circuit is open
    /// (`RedisOptions::circuit_open_for`, feature `redis`).
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// The backend answered something the store cannot use.
    Protocol,
    /// The change conflicts with what is stored (a duplicate key value, an unknown id).
    Conflict,
}

impl StoreError {
    /// A store error of `kind`. The message must not contain secrets.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The backend cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Unavailable, message)
    }

    /// The backend did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Timeout, message)
    }

    /// What went wrong, without the kind (never a secret).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What sort of error this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "store unavailable",
            StoreErrorKind::Timeout => "store timed out",
            StoreErrorKind::Protocol => "store protocol error",
            StoreErrorKind::Conflict => "store conflict",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// A hasher for keys that are already uniform 64-bit hashes (fingerprints):
/// it passes them through instead of hashing them again.
///
/// The in-memory throttle and counter stores key their maps by a 64-bit
/// fingerprint of the bucket or counter (a hash with a per-store random
/// seed), computed once per request; hashing it again would cost time on
/// the hot path for no better spread. Only
/// `write_u64` is meant to be used: `write` is a fallback that mixes bytes
/// in, poorly, so that a misuse still compiles into a working map. Do not
/// use it for keys an attacker chooses without hashing them first: it gives
/// no protection against collisions.
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`Prehashed`] hashers for maps keyed by fingerprints: the `S` of
/// `HashMap<u64, V, PrehashedState>`.
pub(crate) type PrehashedState = std::hash::BuildHasherDefault<Prehashed>;
