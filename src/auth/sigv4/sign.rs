//! String to sign, signing key, signature.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ALGORITHM;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

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

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    crate::hex::encode(bytes)
}

/// The hex SHA-256 of `bytes` (a payload hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `AWS4-HMAC-SHA256\nAMZ_DATE\nSCOPE\nhex(sha256(canonical request))`.
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
    key: [u8; 32],
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
    /// Derives the key.
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
    pub fn verify(&self, string_to_sign: &str, signature_hex: &str) -> bool {
        let mut given = [0u8; 32];
        let hex = signature_hex.as_bytes();
        if hex.len() != 64 {
            return false;
        }
        for (out, pair) in given.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => *out = u8::try_from(h * 16 + l).unwrap_or(0),
                _ => return false,
            }
        }
        self.sign(string_to_sign).ct_eq(&given).into()
    }
}
