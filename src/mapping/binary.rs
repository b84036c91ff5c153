//! Binary media types and `contentHandling`: when a mapped method's payload
//! is bytes, and when it is base64-converted between the client and the
//! integration.
//!
//! The rules are API Gateway's "Content type conversions in API Gateway"
//! ([`api-gateway-payload-encodings-workflow`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-payload-encodings-workflow.html)),
//! for non-proxy integrations (in tollgate, a method with a `mapping`). A
//! method without a mapping is a proxy and passes every body byte for byte,
//! whatever its type: tollgate never re-encodes a payload it does not map.
//!
//! ```
//! use tollgate::mapping::BinaryMediaTypes;
//!
//! let types = BinaryMediaTypes::new(["image/*", "application/octet-stream"]).unwrap();
//! assert!(types.matches("image/png"));
//! assert!(types.matches("Application/Octet-Stream; charset=binary"));
//! assert!(!types.matches("application/json"));
//! assert!(BinaryMediaTypes::new(["png"]).is_err());
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;

use super::compile::media_type;

/// API Gateway's `contentHandling`, on the integration request
/// (`mapping.request.content_handling`) or an integration response
/// (`mapping.responses[].content_handling`). Absent: convert only as the
/// binary media types require (see [`BinaryMediaTypes`]).
///
/// Written `convert_to_text` / `convert_to_binary`, or as API Gateway spells
/// them (`CONVERT_TO_TEXT`, `CONVERT_TO_BINARY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentHandling {
    /// A binary payload is base64-encoded into text; text passes unchanged.
    #[serde(alias = "CONVERT_TO_TEXT")]
    ConvertToText,
    /// A text payload is base64-decoded into bytes (a payload that is not
    /// base64 is a 500, as API Gateway's "configuration error"); a binary
    /// payload passes unchanged.
    #[serde(alias = "CONVERT_TO_BINARY")]
    ConvertToBinary,
}

/// The media types a method treats as binary (API Gateway's
/// `binaryMediaTypes`), from the `binary_media_types` setting.
///
/// Each entry is `type/subtype`, matched without parameters and in any
/// case; `type/*` matches every subtype and `*/*` everything. In a mapped
/// method, a body of such a type is never rendered by a text template: it
/// passes as bytes unless `content_handling` converts it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BinaryMediaTypes {
    /// Lower-cased; a `type/*` entry kept as `type/`.
    exact: Vec<String>,
    prefixes: Vec<String>,
    any: bool,
}

impl fmt::Debug for BinaryMediaTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        if self.any {
            list.entry(&"*/*");
        }
        for p in &self.prefixes {
            list.entry(&format_args!("{p}*"));
        }
        list.entries(&self.exact).finish()
    }
}

impl BinaryMediaTypes {
    /// The list, each entry checked.
    ///
    /// # Errors
    ///
    /// The first entry that is not `type/subtype` (a `*` only as the whole
    /// subtype, or as `*/*`), with why.
    pub fn new<I, S>(types: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self::default();
        for t in types {
            let t = t.as_ref().trim().to_ascii_lowercase();
            let Some((ty, sub)) = t.split_once('/') else {
                return Err(format!(
                    "`{t}` is not a media type (type/subtype, `type/*` or `*/*`)"
                ));
            };
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            };
            match (ty, sub) {
                ("*", "*") => out.any = true,
                (ty, "*") if token(ty) => out.prefixes.push(format!("{ty}/")),
                (ty, sub) if token(ty) && token(sub) => out.exact.push(t),
                _ => {
                    return Err(format!(
                        "`{t}` is not a media type (type/subtype, `type/*` or `*/*`)"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Whether the list is empty (API Gateway's "undefined").
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Whether a `Content-Type` or `Accept` value's media type (its
    /// parameters ignored) is on the list.
    pub fn matches(&self, content_type: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        if self.any {
            return true;
        }
        let m = media_type(content_type);
        self.exact.contains(&m) || self.prefixes.iter().any(|p| m.starts_with(p.as_str()))
    }
}

/// What happens to a payload between the client and the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conversion {
    /// Text: templates and passthrough as always.
    Text,
    /// Bytes, passed as they are: no template reads them.
    Binary,
    /// Bytes base64-encoded into text, which templates then read.
    Encode,
    /// Text base64-decoded into bytes, which no template reads.
    Decode,
}

/// The integration request's conversion: the first table of the workflow
/// page. `binary` is whether the request's `Content-Type` is a binary media
/// type.
pub(super) fn request_conversion(binary: bool, handling: Option<ContentHandling>) -> Conversion {
    match (binary, handling) {
        (true, Some(ContentHandling::ConvertToText)) => Conversion::Encode,
        (true, _) => Conversion::Binary,
        (false, Some(ContentHandling::ConvertToBinary)) => Conversion::Decode,
        (false, _) => Conversion::Text,
    }
}

/// The method response's conversion: the second table. `binary` is whether
/// the integration response's `Content-Type` is a binary media type,
/// `accept_binary` whether the first media type of the request's `Accept`
/// is (API Gateway honours only the first).
pub(super) fn response_conversion(
    binary: bool,
    accept_binary: bool,
    handling: Option<ContentHandling>,
) -> Conversion {
    match (binary, handling) {
        (true, Some(ContentHandling::ConvertToText)) => Conversion::Encode,
        (true, Some(ContentHandling::ConvertToBinary)) => Conversion::Binary,
        (true, None) if accept_binary => Conversion::Binary,
        (true, None) => Conversion::Encode,
        (false, Some(ContentHandling::ConvertToBinary)) => Conversion::Decode,
        (false, Some(ContentHandling::ConvertToText)) => Conversion::Text,
        (false, None) if accept_binary => Conversion::Decode,
        (false, None) => Conversion::Text,
    }
}

/// Base64-encodes a payload (the standard alphabet, padded).
pub(super) fn encode(body: &[u8]) -> Bytes {
    Bytes::from(STANDARD.encode(body))
}

/// Base64-decodes a text payload; ASCII whitespace around it is ignored.
/// `None` when it is not base64.
pub(super) fn decode(body: &[u8]) -> Option<Bytes> {
    STANDARD.decode(body.trim_ascii()).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let t = BinaryMediaTypes::new(["image/*", "application/octet-stream"]).unwrap();
        assert!(t.matches("image/png"));
        assert!(t.matches("IMAGE/JPEG; q=1"));
        assert!(t.matches("application/octet-stream"));
        assert!(!t.matches("application/json"));
        assert!(!t.matches("imagex/png"));
        assert!(!t.matches(""));
        let any = BinaryMediaTypes::new(["*/*"]).unwrap();
        assert!(any.matches("text/plain"));
        assert!(
            BinaryMediaTypes::new(Vec::<String>::new())
                .unwrap()
                .is_empty()
        );
        for bad in ["png", "*/png", "image/p*", "/x", "a/", "a b/c", "a/b/c"] {
            assert!(BinaryMediaTypes::new([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_table() {
        use ContentHandling::*;
        use Conversion::*;
        assert_eq!(request_conversion(false, None), Text);
        assert_eq!(request_conversion(false, Some(ConvertToText)), Text);
        assert_eq!(request_conversion(false, Some(ConvertToBinary)), Decode);
        assert_eq!(request_conversion(true, None), Binary);
        assert_eq!(request_conversion(true, Some(ConvertToBinary)), Binary);
        assert_eq!(request_conversion(true, Some(ConvertToText)), Encode);
    }

    #[test]
    fn response_table() {
        use ContentHandling::*;
        use Conversion::*;
        // (integration response binary, Accept binary, handling) -> conversion,
        // row by row from the workflow page's second table.
        let rows = [
            (false, false, None, Text),
            (false, false, Some(ConvertToBinary), Decode),
            (false, false, Some(ConvertToText), Text),
            (false, true, None, Decode),
            (false, true, Some(ConvertToBinary), Decode),
            (false, true, Some(ConvertToText), Text),
            (true, false, None, Encode),
            (true, false, Some(ConvertToBinary), Binary),
            (true, false, Some(ConvertToText), Encode),
            (true, true, None, Binary),
            (true, true, Some(ConvertToBinary), Binary),
            (true, true, Some(ConvertToText), Encode),
        ];
        for (binary, accept, handling, want) in rows {
            assert_eq!(
                response_conversion(binary, accept, handling),
                want,
                "{binary} {accept} {handling:?}"
            );
        }
    }

    #[test]
    fn base64() {
        assert_eq!(&encode(b"\x00\xffab")[..], b"AP9hYg==");
        assert_eq!(&decode(b" AP9hYg==\n").unwrap()[..], b"\x00\xffab");
        assert!(decode(b"not base64!").is_none());
    }
}
