//! The canonical request, exactly as AWS defines it.
//!
//! Step 1 of "Create a signed AWS API request" in AWS's SigV4 documentation:
//! six parts joined by `\n`.
//!
//! ```text
//! METHOD
//! CANONICAL_URI       the path, normalized and encoded (twice, for every service but S3)
//! CANONICAL_QUERY     each name and value encoded, sorted, joined by `&`
//! CANONICAL_HEADERS   `name:value\n` per signed header, sorted by name (so a blank line follows)
//! SIGNED_HEADERS      the names, sorted, joined by `;`
//! PAYLOAD_HASH        hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`
//! ```
//!
//! Encoding is RFC 3986 percent-encoding with upper-case hex: only
//! `A-Z a-z 0-9 - . _ ~` are left as they are (and `/` in the path).
//! Everything works on bytes, so a path or query that is not UTF-8 is
//! signed as it was sent. A request whose path is already normal and whose
//! query parts are already canonical is copied into the output buffer
//! without being decoded.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use super::SignatureParams;

/// How the path is put in canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CanonicalOptions {
    /// Remove `.` and `..` segments and empty segments (every service but S3).
    pub normalize_path: bool,
    /// URI-encode the path as received (so encoded once on the wire, twice
    /// here): every service but S3. S3 encodes it once.
    pub double_encode: bool,
    /// Whether a presigned URL's `X-Amz-Security-Token` is part of what was
    /// signed (true, the default). Some clients (AWS IoT's) append it after
    /// signing; allow that only where such clients call.
    pub session_token_signed: bool,
}

impl CanonicalOptions {
    /// Options with both settings given, and the presigned session token
    /// signed.
    pub const fn new(normalize_path: bool, double_encode: bool) -> Self {
        Self {
            normalize_path,
            double_encode,
            session_token_signed: true,
        }
    }

    /// The same, with the presigned session token signed or not.
    pub const fn with_session_token_signed(mut self, signed: bool) -> Self {
        self.session_token_signed = signed;
        self
    }
}

impl Default for CanonicalOptions {
    fn default() -> Self {
        Self::new(true, true)
    }
}

/// Why a canonical request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// A header named in `SignedHeaders` is not in the request.
    #[error("the signed header `{0}` is not in the request")]
    MissingHeader(String),
}

/// RFC 3986 unreserved characters stay; everything else is `%XX` (upper-case hex).
/// `keep_slash` keeps the path's separators; in a query a `/` is encoded too.
fn encode_into(out: &mut Vec<u8>, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(b"0123456789ABCDEF"[usize::from(b >> 4)]);
            out.push(b"0123456789ABCDEF"[usize::from(b & 15)]);
        }
    }
}

/// Removes dot segments and empty segments, keeping a trailing slash.
///
/// RFC 3986's dot-segment removal (section 5.2.4) plus empty segments
/// (`//`) dropped, as AWS normalizes for every service but S3:
/// `/a/./b/../c//` is `/a/c/`. A `..` above the root is dropped, and the
/// result always starts with `/`.
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in path.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = path.ends_with(b"/")
        || path.ends_with(b"/.")
        || path.ends_with(b"/..")
        || path == b"."
        || path == b"..";
    let mut out = Vec::with_capacity(path.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if segments.is_empty() || trailing {
        out.push(b'/');
    }
    out
}

/// Whether normalizing `path` would leave it as it is: it starts with `/`
/// and has no empty, `.` or `..` segment (a trailing slash aside).
fn is_normal(path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    rest.split(|&b| b == b'/')
        .all(|seg| !matches!(seg, b"" | b"." | b".."))
}

/// The canonical URI of a raw request path.
///
/// An empty path is `/`. With [`CanonicalOptions::double_encode`] (the
/// default) the path as received is encoded again, its `%XX` escapes
/// included, so a space sent as `%20` is signed as `%2520`; without it
/// (S3), escapes are kept, upper-cased, and only raw bytes are encoded.
///
/// ```
/// use tollgate::auth::sigv4::{CanonicalOptions, canonical_uri};
///
/// let aws = CanonicalOptions::default();
/// assert_eq!(canonical_uri(b"/a b/%20", aws), b"/a%20b/%2520");
/// assert_eq!(canonical_uri(b"/example1/example2/../..", aws), b"/");
/// let s3 = CanonicalOptions::new(false, false);
/// assert_eq!(canonical_uri(b"/a%20b/%2F", s3), b"/a%20b/%2F");
/// ```
pub fn canonical_uri(raw_path: &[u8], options: CanonicalOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw_path.len() + 8);
    canonical_uri_into(&mut out, raw_path, options);
    out
}

/// [`canonical_uri`], appended to `out`.
fn canonical_uri_into(out: &mut Vec<u8>, raw_path: &[u8], options: CanonicalOptions) {
    let path: &[u8] = if raw_path.is_empty() { b"/" } else { raw_path };
    let path: Cow<'_, [u8]> = if options.normalize_path && !is_normal(path) {
        Cow::Owned(normalize(path))
    } else {
        Cow::Borrowed(path)
    };
    if options.double_encode {
        encode_into(out, &path, true);
    } else {
        // Encoded once already: keep every `%XX` (upper-cased, so `%2F`
        // stays a character of its segment), encode only what is not.
        let mut i = 0;
        while let Some(&b) = path.get(i) {
            match (b, path.get(i + 1..i + 3)) {
                (b'%', Some(hex)) if hex.iter().all(u8::is_ascii_hexdigit) => {
                    out.push(b'%');
                    out.extend(hex.iter().map(u8::to_ascii_uppercase));
                    i += 3;
                }
                _ => {
                    encode_into(out, &[b], true);
                    i += 1;
                }
            }
        }
    }
}

/// Whether `bytes` is already in canonical form: unreserved characters only
/// (so decoding and re-encoding would give it back unchanged).
fn is_canonical(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A query name or value in canonical form: borrowed when it already is.
fn canonical_part(raw: &[u8]) -> Cow<'_, [u8]> {
    if is_canonical(raw) {
        Cow::Borrowed(raw)
    } else {
        let mut out = Vec::with_capacity(raw.len() + 8);
        encode_into(&mut out, &percent_decode(raw).collect::<Vec<u8>>(), false);
        Cow::Owned(out)
    }
}

/// The canonical query string: every parameter decoded and re-encoded,
/// sorted by name then value; when `presigned`, `X-Amz-Signature` left out,
/// and `X-Amz-Security-Token` too unless `token_signed`.
///
/// Sorting is by the encoded bytes. A `+` is a plus sign here, not a space
/// (it is signed as `%2B`), and a parameter without `=` has an empty value.
///
/// ```
/// use tollgate::auth::sigv4::canonical_query;
///
/// assert_eq!(canonical_query(b"b=2&a=2&a=1&c", false, true), b"a=1&a=2&b=2&c=");
/// assert_eq!(canonical_query(b"x=a+b&y=%7e", false, true), b"x=a%2Bb&y=~");
/// ```
pub fn canonical_query(raw_query: &[u8], presigned: bool, token_signed: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw_query.len() + 16);
    canonical_query_into(&mut out, raw_query, presigned, token_signed);
    out
}

/// [`canonical_query`], appended to `out`.
fn canonical_query_into(out: &mut Vec<u8>, raw_query: &[u8], presigned: bool, token_signed: bool) {
    let mut params = Vec::new();
    for pair in raw_query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if presigned
            && (name == b"X-Amz-Signature" || (!token_signed && name == b"X-Amz-Security-Token"))
        {
            continue;
        }
        params.push((canonical_part(name), canonical_part(value)));
    }
    params.sort_unstable();
    for (i, (n, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(n);
        out.push(b'=');
        out.extend_from_slice(v);
    }
}

/// A header value as AWS signs it: trimmed, every run of whitespace
/// (including folded line breaks) one space.
fn fold_value(out: &mut Vec<u8>, value: &[u8]) {
    // Trimmed, so every whitespace run is followed by more of the value.
    let mut rest = value.trim_ascii();
    while let Some(i) = rest.iter().position(u8::is_ascii_whitespace) {
        out.extend_from_slice(&rest[..i]);
        out.push(b' ');
        rest = rest[i..].trim_ascii_start();
    }
    out.extend_from_slice(rest);
}

/// The canonical request. `headers` are the request's headers (any case,
/// repeated names allowed); `params` say which headers were signed and
/// whether the URL is presigned; `payload_hash` is the hex SHA-256 of the
/// body (or `UNSIGNED-PAYLOAD`).
///
/// Header names are matched in any case. A header sent more than once is
/// one line, its values joined by `,` in the order sent; a name listed twice
/// in `SignedHeaders` is one line too. `headers` is walked once per signed
/// header, so it must be cheap to clone (an iterator over borrowed pairs).
///
/// # Errors
///
/// [`CanonicalError::MissingHeader`] when a signed header is not in
/// `headers`: such a request cannot have been signed as it arrived.
pub fn canonical_request<'h>(
    method: &str,
    raw_path: &[u8],
    raw_query: &[u8],
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])> + Clone,
    params: &SignatureParams,
    payload_hash: &str,
    options: CanonicalOptions,
) -> Result<Vec<u8>, CanonicalError> {
    let presigned = params.presigned.is_some();
    let signed_headers = &params.signed_headers;
    let mut out = Vec::with_capacity(256 + raw_path.len() + raw_query.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    canonical_uri_into(&mut out, raw_path, options);
    out.push(b'\n');
    canonical_query_into(&mut out, raw_query, presigned, options.session_token_signed);
    out.push(b'\n');
    let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    for name in &names {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut found = false;
        for (n, v) in headers.clone() {
            if n.eq_ignore_ascii_case(name) {
                if found {
                    out.push(b',');
                }
                found = true;
                fold_value(&mut out, v);
            }
        }
        if !found {
            return Err(CanonicalError::MissingHeader((*name).to_owned()));
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(n.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_and_encode() {
        let n = CanonicalOptions::default();
        assert_eq!(canonical_uri(b"//example//", n), b"/example/");
        assert_eq!(canonical_uri(b"/example1/example2/../..", n), b"/");
        assert_eq!(canonical_uri(b"/./", n), b"/");
        assert_eq!(canonical_uri(b"/a b/%20", n), b"/a%20b/%2520");
        assert_eq!(canonical_uri(b"", n), b"/");
        assert_eq!(canonical_uri(b"//", n), b"/");
        assert_eq!(canonical_uri(b"/a/b/", n), b"/a/b/");
        assert_eq!(canonical_uri(b"a/b", n), b"/a/b");
        assert_eq!(canonical_uri(b"/a/.", n), b"/a/");
        let s3 = CanonicalOptions::new(false, false);
        assert_eq!(canonical_uri(b"/a%20b/%2F", s3), b"/a%20b/%2F");
        assert_eq!(canonical_uri(b"//x//", s3), b"//x//");
    }

    proptest::proptest! {
        #[test]
        fn a_path_left_as_it_is_is_already_normal(path in "[/.a]{0,12}") {
            let path = path.as_bytes();
            if is_normal(path) {
                proptest::prop_assert_eq!(normalize(path), path);
            }
        }
    }

    #[test]
    fn queries_sort_by_encoded_name_then_value() {
        assert_eq!(
            canonical_query(b"b=2&a=2&a=1&c", false, true),
            b"a=1&a=2&b=2&c="
        );
        assert_eq!(canonical_query(b"x=a+b&y=%7e", false, true), b"x=a%2Bb&y=~");
        assert_eq!(
            canonical_query(b"X-Amz-Signature=abc&z=1", true, true),
            b"z=1"
        );
        assert_eq!(
            canonical_query(b"X-Amz-Security-Token=t&z=1", true, true),
            b"X-Amz-Security-Token=t&z=1"
        );
        assert_eq!(
            canonical_query(b"X-Amz-Security-Token=t&z=1", true, false),
            b"z=1"
        );
    }
}
