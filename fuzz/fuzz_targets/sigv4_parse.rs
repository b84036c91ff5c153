//! Hostile input for the SigV4 Authorization parser, the presigned-query
//! parser and the canonicalizer: none may panic.
//!
//! `cargo afl fuzz -i corpus/sigv4_parse -o out/sigv4_parse target/release/sigv4_parse`
//! (fuzz/README.md).

use tollgate::auth::sigv4::{
    CanonicalOptions, canonical_query, canonical_request, canonical_uri, parse_authorization,
    parse_presigned,
};

const VALID: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders=host;x-a, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let _ = parse_authorization(&text);
        let _ = parse_presigned(&text);
        let _ = canonical_uri(data, CanonicalOptions::new(true, true));
        let _ = canonical_uri(data, CanonicalOptions::new(false, false));
        let _ = canonical_query(data, true, false);
        if let Ok(params) = parse_authorization(VALID) {
            let (path, rest) = data.split_at(data.len() / 2);
            let headers = [("host", &b"h"[..]), ("x-a", rest)];
            let _ = canonical_request(
                "GET",
                path,
                rest,
                headers.iter().copied(),
                &params,
                "",
                CanonicalOptions::default(),
            );
        }
    });
}
