//! Hexadecimal, the one codec: lower-case out, either case in.
//!
//! Used for key digests ([`KeyDigest::to_hex`](crate::keys::KeyDigest::to_hex),
//! the `value_sha256` of config keys, Redis key names) and SigV4 signatures,
//! which AWS writes in lower case. No dependency for twenty lines.

/// Lower-case digits, indexed by nibble.
const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lower-case hex digits.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Exactly `2 * N` hex digits (either case) as `N` bytes; `None` otherwise.
/// No prefix (`0x`), sign or whitespace is accepted: a digest read from a
/// config must be exactly its 64 digits.
pub(crate) fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_hex() {
        let bytes = [0x00, 0x7f, 0xab, 0xff];
        assert_eq!(encode(&bytes), "007fabff");
        assert_eq!(decode::<4>("007fabff"), Some(bytes));
        assert_eq!(decode::<4>("007FABFF"), Some(bytes));
        assert_eq!(decode::<4>("007fab"), None);
        assert_eq!(decode::<4>("007fabfg"), None);
        assert_eq!(decode::<4>("+07fabff"), None);
    }
}
