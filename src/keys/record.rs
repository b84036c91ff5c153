use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::Secret;

/// The digest of an API key: SHA-256 of the key, or HMAC-SHA-256 under a
/// pepper. Keys are stored and looked up by digest only.
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
#[derive(Clone, Default)]
pub struct KeyHasher {
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
    /// be checked against guesses without the pepper.
    pub fn peppered(pepper: Secret) -> Self {
        Self {
            pepper: Some(Arc::new(pepper)),
        }
    }

    /// The digest of a key value.
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
    /// A unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Disabled keys are refused.
    pub enabled: bool,
    /// When the key was created (the first quota period counts from here).
    pub created: OffsetDateTime,
    /// After this time the key is refused.
    pub expires: Option<OffsetDateTime>,
    /// Usage plans (at most one per stage).
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
/// system's CSPRNG; `None` if it has none to give.
pub fn generate_key() -> Option<Secret> {
    random_string(40, ALPHANUMERIC).map(Secret::new)
}

/// A new key id: 10 lower-case hex digits, not a secret.
pub(crate) fn new_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(10);
    id
}

/// Whether a value can be an API key: 20 to 128 printable ASCII characters, no spaces.
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
