//! Sizes in bytes, as configs write them.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A size in bytes: an integer, or a string with a unit (`64MiB`, `512 KB`, `1GiB`).
///
/// Used for sizes in configs (a stage's `cache_capacity`), where
/// `10485760` is easy to get wrong by a digit. Units are case-sensitive, as SI and IEC
/// write them (`kB` is accepted for `KB`; `mb` is not a unit). Whole
/// numbers only: `1.5MiB` is refused (write `1536KiB`). A size that would
/// overflow 64 bits is refused rather than wrapped. Zero is a valid size;
/// whether it makes sense is for the field's own check.
///
/// ```
/// use tollgate::config::ByteSize;
///
/// assert_eq!(ByteSize::parse("512 KB"), Some(ByteSize(512_000)));
/// assert_eq!(ByteSize::parse("1GiB"), Some(ByteSize(1 << 30)));
/// assert_eq!(ByteSize::parse(" 42 "), Some(ByteSize(42)));
/// assert_eq!(ByteSize::parse("1.5MiB"), None);
/// assert_eq!(ByteSize::parse("64mb"), None);
/// assert_eq!(ByteSize::parse("99999999999GiB"), None); // overflows
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `N`, `N B`, `N KB|MB|GB` (powers of 1000) or `N KiB|MiB|GiB` (powers of 1024).
    /// Spaces around the number and before the unit are allowed; a sign is
    /// not.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

/// From a non-negative integer or a string that [`ByteSize::parse`] takes.
/// Error messages never quote the value (it sits in a config that may hold
/// secrets elsewhere, and the rule is kept without exceptions).
impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, such as 1048576 or \"64MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                // The value is not quoted: error messages never echo the document.
                ByteSize::parse(v).ok_or_else(|| {
                    E::custom("not a size (use a number with B, KB, MB, GB, KiB, MiB or GiB)")
                })
            }
        }
        d.deserialize_any(V)
    }
}
