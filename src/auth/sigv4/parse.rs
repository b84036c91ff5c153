//! Reading SigV4 parameters from an `Authorization` header or a presigned URL's query.
//!
//! These are the two places AWS's SigV4 documentation lets a client put its
//! signature ("Add the signature to the request"). Both give a
//! [`SignatureParams`]; a presigned URL adds [`Presigned`]. Only the form
//! is checked here: whether the scope names the right region, service and
//! day, and whether the signature is right, is the
//! [`Verifier`](super::Verifier)'s business.
//!
//! Error messages are AWS's own where AWS has one, so that a client library
//! that recognises AWS's text recognises tollgate's. Untrusted input quoted
//! in a message is cut to 64 printable ASCII characters, so a header cannot
//! put control characters or a large blob into a response or a log line.

use std::fmt;

use percent_encoding::percent_decode_str;

/// The algorithm tollgate verifies.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a request says about its signature.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureParams {
    /// The access key id.
    pub access_key_id: String,
    /// The scope's date, `YYYYMMDD`.
    pub scope_date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service.
    pub service: String,
    /// Lower-case names of the signed headers, in the order given.
    pub signed_headers: Vec<String>,
    /// The signature, 64 lower-case hex digits.
    pub signature: String,
    /// For a presigned URL: `X-Amz-Date`, `X-Amz-Expires` and `X-Amz-Security-Token`.
    pub presigned: Option<Presigned>,
}

/// The extra parameters of a presigned URL.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presigned {
    /// `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// `X-Amz-Expires`, 1 to 604800 seconds.
    pub expires: u32,
    /// `X-Amz-Security-Token`, if any.
    pub security_token: Option<String>,
}

impl fmt::Debug for SignatureParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureParams")
            .field("access_key_id", &self.access_key_id)
            .field(
                "scope",
                &format_args!("{}/{}/{}", self.scope_date, self.region, self.service),
            )
            .field("signed_headers", &self.signed_headers)
            .field("presigned", &self.presigned.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presigned")
            .field("amz_date", &self.amz_date)
            .field("expires", &self.expires)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "****"),
            )
            .finish()
    }
}

impl SignatureParams {
    /// `DATE/REGION/SERVICE/aws4_request`.
    pub fn scope(&self) -> String {
        let parts = [
            &*self.scope_date,
            &*self.region,
            &*self.service,
            "aws4_request",
        ];
        let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(p);
        }
        s
    }
}

/// Why a request's signature parameters cannot be read. The messages are
/// AWS's own where AWS has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Decides the gateway response: the verifier answers `Incomplete`
    /// with 403 `MISSING_AUTHENTICATION_TOKEN`, `Malformed` with 403
    /// `INVALID_SIGNATURE`.
    kind: ParseErrorKind,
    /// The text of the response body.
    message: String,
}

/// What sort of [`ParseError`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A required part is missing (AWS's `IncompleteSignature`).
    Incomplete,
    /// A part is malformed or repeated, or the algorithm is not SigV4.
    Malformed,
}

impl ParseError {
    fn incomplete(message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Incomplete,
            message: message.into(),
        }
    }

    fn malformed(message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Malformed,
            message: message.into(),
        }
    }

    /// What sort of error this is.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`, tolerating the spacing and parameter
/// order SDKs use, refusing repeated or missing parameters.
pub fn parse_authorization(value: &str) -> Result<SignatureParams, ParseError> {
    let value = value.trim();
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        // The scheme is named only when it is one (a short word followed
        // by credentials): a bare token may be a secret sent to the wrong
        // place, and is never echoed.
        let mut words = value.split_whitespace();
        let algo = words.next().unwrap_or("");
        let scheme = words.next().is_some()
            && algo.len() <= 32
            && algo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return Err(ParseError::malformed(if scheme {
            format!("Unsupported Authorization Type: {algo}")
        } else {
            "Unsupported Authorization Type".to_owned()
        }));
    };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(ParseError::malformed("Authorization header is malformed"));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, val)) = part.split_once('=') else {
            // Not echoed: it may hold anything the client put there.
            return Err(ParseError::malformed(
                "Authorization header requires each component to be of the form name=value",
            ));
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            other => {
                return Err(ParseError::malformed(format!(
                    "Authorization header has an unknown component `{}`",
                    printable(other)
                )));
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(ParseError::malformed(format!(
                "Authorization header repeats `{}`",
                name.trim()
            )));
        }
    }
    let mut missing = String::new();
    for (name, v) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed),
    ] {
        if v.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if !missing.is_empty() {
        missing.push_str(&format!(
            "Authorization={}",
            printable(value.split_whitespace().next().unwrap_or(""))
        ));
        return Err(ParseError::incomplete(missing));
    }
    build(
        credential.unwrap_or(""),
        signed.unwrap_or(""),
        signature.unwrap_or(""),
        None,
    )
}

/// Reads a presigned URL's `X-Amz-*` parameters from a raw query string;
/// `Ok(None)` when the query carries no `X-Amz-Algorithm`.
///
/// Parameter names are matched exactly (AWS's spelling), values
/// percent-decoded; other parameters are ignored here (they are signed as
/// part of the canonical query). Refused: a repeated parameter, an
/// algorithm other than [`ALGORITHM`], a missing required parameter
/// ([`ParseErrorKind::Incomplete`]), and an `X-Amz-Expires` outside 1 to
/// 604800 seconds (seven days, AWS's longest).
pub fn parse_presigned(query: &str) -> Result<Option<SignatureParams>, ParseError> {
    let mut found: [Option<String>; 7] = Default::default();
    const NAMES: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, val) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(i) = NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        let decoded = percent_decode_str(val)
            .decode_utf8()
            .map_err(|_| ParseError::malformed(format!("{name} is not UTF-8")))?;
        if found[i].replace(decoded.into_owned()).is_some() {
            return Err(ParseError::malformed(format!("the query repeats {name}")));
        }
    }
    let [
        algorithm,
        credential,
        date,
        expires,
        signed,
        signature,
        token,
    ] = found;
    let Some(algorithm) = algorithm else {
        return Ok(None);
    };
    if algorithm != ALGORITHM {
        return Err(ParseError::malformed(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\""
        )));
    }
    let mut missing = Vec::new();
    for (name, v) in [
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &date),
        ("X-Amz-Expires", &expires),
        ("X-Amz-SignedHeaders", &signed),
        ("X-Amz-Signature", &signature),
    ] {
        if v.is_none() {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(ParseError::incomplete(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let expires: u32 = match expires.as_deref().map(str::parse) {
        Some(Ok(e)) if (1..=604_800).contains(&e) => e,
        _ => {
            return Err(ParseError::malformed(
                "X-Amz-Expires must be a whole number of seconds from 1 to 604800",
            ));
        }
    };
    let presigned = Presigned {
        amz_date: date.unwrap_or_default(),
        expires,
        security_token: token,
    };
    build(
        credential.as_deref().unwrap_or(""),
        signed.as_deref().unwrap_or(""),
        signature.as_deref().unwrap_or(""),
        Some(presigned),
    )
    .map(Some)
}

/// The parts both forms share, checked for form: the credential
/// `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`, the signed header names
/// (lower case, separated by `;`) and a signature of 64 hex digits, stored
/// lower-cased.
fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    presigned: Option<Presigned>,
) -> Result<SignatureParams, ParseError> {
    let mut parts = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminal), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ParseError::malformed(format!(
            "Credential should be scoped to a valid region, not a malformed credential `{}`",
            printable(credential)
        )));
    };
    if terminal != "aws4_request" {
        return Err(ParseError::malformed(
            "Credential should be scoped with a valid terminator: 'aws4_request'",
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::malformed(
            "Credential should be scoped to a date in the form YYYYMMDD",
        ));
    }
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(ParseError::malformed("Credential has an empty part"));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase() || b <= b' '))
    {
        return Err(ParseError::malformed(
            "SignedHeaders must be lower-case header names separated by ';'",
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::malformed(
            "Signature must be 64 hexadecimal digits",
        ));
    }
    Ok(SignatureParams {
        access_key_id: access_key_id.to_owned(),
        scope_date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        presigned,
    })
}

/// At most 64 printable ASCII characters of untrusted input, for messages.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    #[test]
    fn sdk_spacing_and_order_are_tolerated() {
        let h = format!(
            "AWS4-HMAC-SHA256  SignedHeaders=host;x-amz-date,Signature={SIG} , Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
        );
        let p = parse_authorization(&h).unwrap();
        assert_eq!(p.access_key_id, "AKIDEXAMPLE");
        assert_eq!(p.scope(), "20150830/us-east-1/service/aws4_request");
        assert_eq!(p.signed_headers, ["host", "x-amz-date"]);
    }

    #[test]
    fn missing_parts_get_aws_messages() {
        let e = parse_authorization("AWS4-HMAC-SHA256 SignedHeaders=host").unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::Incomplete);
        assert_eq!(
            e.to_string(),
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256"
        );
        let e = parse_authorization(&format!(
            "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, Credential=B/20150830/r/s/aws4_request, SignedHeaders=host, Signature={SIG}"
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "Authorization header repeats `Credential`");
        assert!(
            parse_authorization("Bearer x")
                .unwrap_err()
                .to_string()
                .contains("Unsupported Authorization Type: Bearer")
        );
        // A bare token is not echoed: it may be a secret.
        let e = parse_authorization("sk-live-SECRET123456").unwrap_err();
        assert_eq!(e.to_string(), "Unsupported Authorization Type");
        let e =
            parse_authorization("AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, hunter2")
                .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn presigned_parameters() {
        let q = format!(
            "a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={SIG}"
        );
        let p = parse_presigned(&q).unwrap().unwrap();
        assert_eq!(p.presigned.as_ref().unwrap().expires, 3600);
        assert_eq!(parse_presigned("a=1").unwrap(), None);
        let bad = q.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801");
        assert!(parse_presigned(&bad).is_err());
        let missing = q.replace("&X-Amz-Date=20150830T123600Z", "");
        assert_eq!(
            parse_presigned(&missing).unwrap_err().kind(),
            ParseErrorKind::Incomplete
        );
    }
}
