//! String to sign, signing key, signature.
//!
//! Steps 3 and 4 of "Create a signed AWS API request" in AWS's SigV4
//! documentation. The string to sign names the algorithm, the request time,
//! the credential scope and the hash of the canonical request. The signing
//! key is derived from the secret by a chain of HMAC-SHA256, one link per
//! element of the scope:
//!
//! ```text
//! kDate     = HMAC("AWS4" + secret, DATE)
//! kRegion   = HMAC(kDate, REGION)
//! kService  = HMAC(kRegion, SERVICE)
//! kSigning  = HMAC(kService, "aws4_request")
//! signature = hex(HMAC(kSigning, string to sign))
//! ```
//!
//! The key depends on the secret and the scope only, never on the request,
//! so [`Verifier`](super::Verifier) derives it once per access key and day.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ALGORITHM;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // HMAC accepts keys of any length.
        Err(_) => [0; 32],
    }
}

/// The hex SHA-256 of `bytes` (a payload hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

/// `AWS4-HMAC-SHA256\nAMZ_DATE\nSCOPE\nhex(sha256(canonical request))`.
///
/// `amz_date` is the request time as `YYYYMMDDTHHMMSSZ`, `scope` the
/// credential scope as [`SignatureParams::scope`](super::SignatureParams::scope)
/// writes it.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    let digest = Sha256::digest(canonical_request);
    let mut s = String::with_capacity(ALGORITHM.len() + amz_date.len() + scope.len() + 67);
    s.push_str(ALGORITHM);
    s.push('\n');
    s.push_str(amz_date);
    s.push('\n');
    s.push_str(scope);
    s.push('\n');
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// A key derived for one (secret, date, region, service): four HMACs, so it
/// is worth caching for the day. It keeps the HMAC state already keyed, so a
/// signature costs the string to sign's blocks only.
#[derive(Clone)]
pub struct SigningKey {
    /// `kSigning`. Compared in constant time and never shown by `Debug`.
    key: [u8; 32],
    /// An HMAC already keyed with `key`: each signature clones it instead
    /// of hashing the key's block again. Always `Some` (HMAC takes a key of
    /// any length); `sign` falls back to keying afresh all the same.
    keyed: Option<HmacSha256>,
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.key.ct_eq(&other.key))
    }
}

impl Eq for SigningKey {}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(****)")
    }
}

impl SigningKey {
    /// Derives the key: `date` is the scope's `YYYYMMDD`, `region` and
    /// `service` the scope's (`us-east-1`, `execute-api`).
    pub fn derive(secret: &Secret, date: &str, region: &str, service: &str) -> Self {
        let mut seed = Vec::with_capacity(4 + secret.expose().len());
        seed.extend_from_slice(b"AWS4");
        seed.extend_from_slice(secret.expose().as_bytes());
        let k_date = hmac(&seed, date.as_bytes());
        let k_region = hmac(&k_date, region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        Self {
            key,
            keyed: HmacSha256::new_from_slice(&key).ok(),
        }
    }

    /// The signature of `string_to_sign`.
    pub fn sign(&self, string_to_sign: &str) -> [u8; 32] {
        match &self.keyed {
            Some(keyed) => {
                let mut mac = keyed.clone();
                mac.update(string_to_sign.as_bytes());
                mac.finalize().into_bytes().into()
            }
            None => hmac(&self.key, string_to_sign.as_bytes()),
        }
    }

    /// Whether `signature_hex` (64 hex digits) is this key's signature of
    /// `string_to_sign`, compared in constant time.
    ///
    /// Hex digits of either case are accepted. Anything that is not 64 hex
    /// digits is `false` at once, without computing a signature: the early
    /// answer depends on the input's form only, never on the key.
    pub fn verify(&self, string_to_sign: &str, signature_hex: &str) -> bool {
        let Some(given) = crate::hex::decode::<32>(signature_hex) else {
            return false;
        };
        self.sign(string_to_sign).ct_eq(&given).into()
    }
}
