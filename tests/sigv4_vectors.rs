//! Every case of AWS's signing test suite (tests/vectors/aws-signing-test-suite,
//! Apache-2.0, see its LICENSE and NOTICE): canonical request, string to
//! sign and signature, for the header and the presigned (query) form, with
//! and without path normalization; then a mutated signature is refused.

use std::path::{Path, PathBuf};

use tollgate::auth::sigv4::{
    CanonicalOptions, SignatureParams, SigningKey, canonical_request, parse_authorization,
    parse_presigned, sha256_hex, string_to_sign,
};
use tollgate::gateway::Secret;

/// A request as the suite writes it: the request line, headers (with folded
/// continuation lines), a blank line, the body.
struct RawRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn parse_request(text: &str) -> RawRequest {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text.as_bytes()[i + 2..].to_vec()),
        None => (text.trim_end_matches('\n'), Vec::new()),
    };
    let mut lines = head.lines();
    let line = lines.next().expect("a request line");
    let (method, rest) = line.split_once(' ').expect("a method");
    let target = rest.strip_suffix(" HTTP/1.1").expect("HTTP/1.1");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            let last = headers.last_mut().expect("a header to continue");
            last.1.push(b'\n');
            last.1.extend_from_slice(l.as_bytes());
        } else {
            let (n, v) = l.split_once(':').expect("name:value");
            headers.push((n.to_owned(), v.as_bytes().to_vec()));
        }
    }
    RawRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    }
}

fn json_str<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = &json[at + key.len() + 2..];
    let rest = rest[rest.find(':')? + 1..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        s.find('"').map(|e| &s[..e])
    } else {
        rest.split([',', '\n', '}']).next().map(str::trim)
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
}

/// Runs one form of one case; returns what went wrong, if anything.
fn check(dir: &Path, form: &str) -> Result<(), String> {
    let context = read(dir, "context.json");
    let normalize = json_str(&context, "normalize") == Some("true");
    let region = json_str(&context, "region").ok_or("no region")?;
    let service = json_str(&context, "service").ok_or("no service")?;
    let secret = json_str(&context, "secret_access_key").ok_or("no secret")?;
    let req = parse_request(&read(dir, &format!("{form}-signed-request.txt")));

    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let (params, amz_date): (SignatureParams, String) = if form == "header" {
        let auth = header("authorization").ok_or("no Authorization header")?;
        let p = parse_authorization(&auth).map_err(|e| e.to_string())?;
        (p, header("x-amz-date").ok_or("no X-Amz-Date")?)
    } else {
        let p = parse_presigned(&req.query)
            .map_err(|e| e.to_string())?
            .ok_or("no presigned parameters")?;
        let date = p
            .presigned
            .as_ref()
            .map(|x| x.amz_date.clone())
            .unwrap_or_default();
        (p, date)
    };
    let payload = header("x-amz-content-sha256").unwrap_or_else(|| sha256_hex(&req.body));
    // "sts header after": the client adds the session token after signing.
    let token_signed = json_str(&context, "omit_session_token") != Some("true");
    let options = CanonicalOptions::new(normalize, true).with_session_token_signed(token_signed);
    let canonical = canonical_request(
        &req.method,
        req.path.as_bytes(),
        req.query.as_bytes(),
        req.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
        &params,
        &payload,
        options,
    )
    .map_err(|e| e.to_string())?;
    let canonical = String::from_utf8_lossy(&canonical).into_owned();
    let want = read(dir, &format!("{form}-canonical-request.txt"));
    if canonical != want {
        return Err(format!(
            "canonical request\n--- got\n{canonical}\n--- want\n{want}"
        ));
    }
    let sts = string_to_sign(&amz_date, &params.scope(), canonical.as_bytes());
    let want = read(dir, &format!("{form}-string-to-sign.txt"));
    if sts != want {
        return Err(format!("string to sign\n--- got\n{sts}\n--- want\n{want}"));
    }
    let key = SigningKey::derive(&Secret::new(secret), &params.scope_date, region, service);
    let want = read(dir, &format!("{form}-signature.txt"));
    if params.signature != want.trim() {
        return Err(format!(
            "the request's signature {} is not the suite's {}",
            params.signature,
            want.trim()
        ));
    }
    if !key.verify(&sts, &params.signature) {
        return Err("the signature does not verify".into());
    }
    // One changed digit is refused.
    let mut wrong = params.signature.clone().into_bytes();
    wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
    if key.verify(&sts, std::str::from_utf8(&wrong).unwrap_or("")) {
        return Err("a mutated signature verifies".into());
    }
    Ok(())
}

#[test]
fn every_case_of_the_aws_signing_test_suite() {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/aws-signing-test-suite/v4");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 38, "the suite has 38 cases");
    let mut failures = Vec::new();
    let mut passed = 0;
    for dir in &cases {
        for form in ["header", "query"] {
            match check(dir, form) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!(
                    "{} ({form}): {e}",
                    dir.file_name().unwrap().to_string_lossy()
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{passed} passed, {} failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_eq!(passed, 76);
}
