//! Key values, their digests, and what is kept about each key.
//!
//! A key value exists only on its way in: [`KeyHasher::digest`] turns it
//! into a [`KeyDigest`] and the value is dropped. Stores index records by
//! digest, so a stolen store (a Redis dump, a backup) yields no usable key.
//! Generated keys carry about 238 bits of entropy (40 characters of 62),
//! beyond any offline search; imported keys may be weaker, which is what a
//! pepper is for.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::Secret;

/// The digest of an API key: SHA-256 of the key, or HMAC-SHA-256 under a
/// pepper. Keys are stored and looked up by digest only.
///
/// `Debug` shows only the first eight hex digits, enough to tell digests
/// apart in logs. The full digest is not a key, but without a pepper it
/// lets its holder test guesses offline, so it is not printed either.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// The digest as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        crate::hex::decode(s).map(Self)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits are enough to tell digests apart in logs.
        write!(f, "KeyDigest({}…)", &self.to_hex()[..8])
    }
}

/// Turns API key values into digests.
///
/// Every process and tool that shares a key store must hash alike: a
/// gateway with another pepper (or none) finds no key, and answers every
/// request 403 `INVALID_API_KEY` rather than failing loudly. Changing the
/// pepper orphans every stored digest; the keys must be imported again
/// with their values. `Default` is plain SHA-256. `Debug` says whether
/// there is a pepper, never what it is.
#[derive(Clone, Default)]
pub struct KeyHasher {
    /// The HMAC key; behind an `Arc` so the clones every layer and manager
    /// hold share one copy of the secret.
    pepper: Option<Arc<Secret>>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("peppered", &self.pepper.is_some())
            .finish()
    }
}

impl KeyHasher {
    /// Plain SHA-256.
    pub fn sha256() -> Self {
        Self { pepper: None }
    }

    /// HMAC-SHA-256 under a secret pepper: a stolen table of digests cannot
    /// be checked against guesses without the pepper. Keep the pepper out
    /// of the store it protects (in the process's environment or config);
    /// a config pepper must be at least 16 characters.
    pub fn peppered(pepper: Secret) -> Self {
        Self {
            pepper: Some(Arc::new(pepper)),
        }
    }

    /// The digest of a key value: of its bytes exactly as presented, with
    /// no trimming or case folding.
    pub fn digest(&self, value: &str) -> KeyDigest {
        match &self.pepper {
            None => KeyDigest(Sha256::digest(value.as_bytes()).into()),
            Some(p) => match Hmac::<Sha256>::new_from_slice(p.expose().as_bytes()) {
                Ok(mut mac) => {
                    mac.update(value.as_bytes());
                    KeyDigest(mac.finalize().into_bytes().into())
                }
                // HMAC takes keys of any length; this arm is unreachable.
                Err(_) => KeyDigest(Sha256::digest(value.as_bytes()).into()),
            },
        }
    }
}

/// What the gateway knows about one API key. The key value itself is not
/// here: only its digest is kept, as the store's index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyRecord {
    /// A stable id (survives rotation); what usage records and logs name.
    pub id: Arc<str>,
    /// A name for people; management listings sort by it. Names are checked
    /// unique among a config file's `keys`; the stores and the
    /// [`KeyManager`](super::KeyManager) do not check them.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Disabled keys are refused (with the same 403 as an unknown key).
    pub enabled: bool,
    /// When the key was created (the first quota period counts from here).
    pub created: OffsetDateTime,
    /// From this instant on the key is refused (the instant itself is
    /// already too late).
    pub expires: Option<OffsetDateTime>,
    /// Usage plans by name, at most one per stage (checked by the
    /// [`KeyManager`](super::KeyManager) when it knows the gateway's plans).
    /// Behind a gateway, a request is admitted under the first plan that
    /// covers its stage; a layer on its own uses the first plan listed.
    pub plans: Vec<Arc<str>>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
    /// Whether requests with this key may invalidate a cache entry with
    /// `Cache-Control: max-age=0` (API Gateway's `execute-api:InvalidateCache`).
    pub can_invalidate_cache: bool,
}

impl KeyRecord {
    /// A new enabled key record with a fresh random id.
    pub fn new(name: impl Into<String>, created: OffsetDateTime) -> Self {
        Self {
            id: Arc::from(new_id().as_str()),
            name: name.into(),
            description: None,
            enabled: true,
            created,
            expires: None,
            plans: Vec::new(),
            tags: BTreeMap::new(),
            can_invalidate_cache: false,
        }
    }

    /// Whether the key may be used at `now`.
    pub fn usable_at(&self, now: OffsetDateTime) -> bool {
        self.usable_at_nanos(now.unix_timestamp_nanos())
    }

    /// Whether the key may be used at `now` (Unix nanoseconds): no calendar
    /// arithmetic on the request path.
    pub fn usable_at_nanos(&self, now: i128) -> bool {
        self.enabled && self.expires.is_none_or(|e| now < e.unix_timestamp_nanos())
    }
}

/// What generated keys are made of: no punctuation, so a key survives URLs,
/// shells and CSV files unquoted.
const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters drawn uniformly from `alphabet` with the operating
/// system's CSPRNG (rejection sampling: no modulo bias). `None` when the
/// operating system cannot give random bytes: no guessable key is made.
fn random_string(len: usize, alphabet: &[u8]) -> Option<String> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).ok()?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Some(out)
}

/// A new API key value: 40 alphanumeric characters from the operating
/// system's CSPRNG; `None` if it has none to give (the caller reports a
/// store error rather than make a guessable key).
pub fn generate_key() -> Option<Secret> {
    random_string(40, ALPHANUMERIC).map(Secret::new)
}

/// A new key id (and a lifecycle's API and deployment ids): 10 lower-case
/// hex digits, not a secret. 40 random bits
/// (from a v4 UUID): a collision is unlikely below about a million keys,
/// and ids are what logs, usage records and Redis key names carry.
pub(crate) fn new_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(10);
    id
}

/// Whether a value can be an API key: 20 to 128 printable ASCII characters, no spaces.
///
/// API Gateway asks for at least 30 characters on import (its "API key file
/// format" page); tollgate accepts 20, so shorter keys from other gateways
/// can be brought over. The upper bound, 128, is API Gateway's.
pub fn is_valid_key(value: &str) -> bool {
    (20..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_40_alphanumerics_and_differ() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_eq!(a.expose().len(), 40);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
        assert!(is_valid_key(a.expose()));
    }

    #[test]
    fn digests_differ_with_a_pepper_and_round_trip_as_hex() {
        let plain = KeyHasher::sha256().digest("demo-key-0123456789abcdef");
        let peppered =
            KeyHasher::peppered(Secret::new("pepper")).digest("demo-key-0123456789abcdef");
        assert_ne!(plain, peppered);
        assert_eq!(KeyDigest::from_hex(&plain.to_hex()), Some(plain));
        assert!(!format!("{plain:?}").contains(&plain.to_hex()));
    }
}
