//! 3scale's Service Management API, the two calls tollgate makes:
//! `GET /transactions/authrep.xml` (authorize one call and report its
//! usage) and `POST /transactions.xml` (report usage in a batch).
//!
//! From 3scale's published Service Management API reference and its
//! "3scale error codes" page: `authrep` answers 200 with
//! `<status><authorized>true</authorized>...` when the call may go on, 409
//! with `<authorized>false</authorized><reason>...</reason>` when a usage
//! limit is exceeded (or the application is not active, or its key is
//! wrong), 403 or 404 with `<error code="...">` for credentials or an
//! application it does not know, 422 for a missing parameter. `report`
//! answers 202 when it has taken the batch.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::integration::{HttpClient, TlsConfig, error_chain, tls_client};
use crate::secret::Secret;
use crate::store::StoreError;

/// Bytes of a 3scale answer read at most; its documents are small.
const MAX_ANSWER: usize = 64 * 1024;

/// Form and query encoding: everything but unreserved characters escaped.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Who a call is for, as 3scale identifies applications.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Who {
    /// `user_key`: a secret.
    UserKey(String),
    /// `app_id`, and `app_key` (a secret) when the application has keys.
    App { id: String, key: Option<String> },
}

impl fmt::Debug for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserKey(_) => f.write_str("UserKey(****)"),
            Self::App { id, .. } => f
                .debug_struct("App")
                .field("id", id)
                .finish_non_exhaustive(),
        }
    }
}

impl Who {
    /// How the caller is shown in logs, usage and the authorizer's
    /// principal: the app id, or `user_key:` and the first 10 hex digits
    /// of the key's SHA-256 (never the key).
    pub(crate) fn principal(&self) -> String {
        use sha2::{Digest, Sha256};
        match self {
            Self::App { id, .. } => id.clone(),
            Self::UserKey(k) => {
                let digest = Sha256::digest(k.as_bytes());
                let mut s = String::from("user_key:");
                for b in &digest[..5] {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
        }
    }

    /// The same identity without an `app_key`: what a report names.
    pub(crate) fn without_key(self) -> Self {
        match self {
            Self::App { id, .. } => Self::App { id, key: None },
            user => user,
        }
    }

    /// The identifying parameters under `prefix` (`` or
    /// `transactions[0]`), appended to a form; a report names the
    /// application without its key.
    fn append(&self, form: &mut String, prefix: &str, with_key: bool) {
        let name = |n: &str| {
            if prefix.is_empty() {
                n.to_owned()
            } else {
                format!("{prefix}[{n}]")
            }
        };
        match self {
            Self::UserKey(k) => pair(form, &name("user_key"), k),
            Self::App { id, key } => {
                pair(form, &name("app_id"), id);
                if with_key && let Some(k) = key {
                    pair(form, &name("app_key"), k);
                }
            }
        }
    }
}

/// Appends `name=value`, both encoded, to `form`.
fn pair(form: &mut String, name: &str, value: &str) {
    if !form.is_empty() {
        form.push('&');
    }
    form.extend(utf8_percent_encode(name, FORM));
    form.push('=');
    form.extend(utf8_percent_encode(value, FORM));
}

/// What `authrep` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200, authorized.
    Authorized,
    /// 403 or 404: 3scale does not know the credentials or the application.
    Unknown,
    /// 409 with a reason naming a usage limit: the caller is over one.
    LimitsExceeded(String),
    /// Another 409 (application not active, its key wrong or missing):
    /// refused, the reason not passed on (it may quote the key).
    Refused,
}

/// A client of one 3scale service's Service Management API.
#[derive(Clone)]
pub(crate) struct Client {
    http: HttpClient<Full<Bytes>>,
    base: String,
    service_id: String,
    token: Secret,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &crate::integration::shown_url(&self.base))
            .field("service_id", &self.service_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `url` (checked by the config: http(s) and a host).
    pub(crate) fn new(
        url: &str,
        service_id: &str,
        token: Secret,
        timeout: Duration,
    ) -> Result<Self, String> {
        if !crate::integration::endpoint_ok(url) {
            return Err(format!(
                "`{}`: 3scale's URL is http:// or https:// and a host",
                crate::integration::shown_url(url)
            ));
        }
        let http = tls_client(&TlsConfig::default()).map_err(|e| e.to_string())?;
        // The service token and callers' keys ride in authrep's query: in
        // clear text over http:// to anything but this host.
        if let Ok(uri) = url.parse::<Uri>()
            && uri.scheme_str() == Some("http")
            && !uri.host().is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
        {
            tracing::warn!(
                url = %crate::integration::shown_url(url),
                "3scale over http://: the service token and callers' keys cross the network in clear text"
            );
        }
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            service_id: service_id.to_owned(),
            token,
            timeout,
        })
    }

    /// The service's own parameters, first in every call.
    fn service_form(&self) -> String {
        let mut form = String::new();
        pair(&mut form, "service_token", self.token.expose());
        pair(&mut form, "service_id", &self.service_id);
        form
    }

    /// Sends `req` within the timeout; the status and at most
    /// [`MAX_ANSWER`] bytes of the answer. Errors never quote the URL (its
    /// query holds the service token and the caller's key).
    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), StoreError> {
        let sent = tokio::time::timeout(self.timeout, async {
            let res = self
                .http
                .request(req)
                .await
                .map_err(|e| StoreError::unavailable(format!("3scale: {}", error_chain(&e))))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| StoreError::unavailable(format!("3scale's answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        })
        .await;
        sent.unwrap_or_else(|_| Err(StoreError::timeout("3scale did not answer in time")))
    }

    /// `authrep`: may `who` call, reporting one `metric` if so.
    pub(crate) async fn authrep(&self, who: &Who, metric: &str) -> Result<Answer, StoreError> {
        let mut query = self.service_form();
        who.append(&mut query, "", true);
        pair(&mut query, &format!("usage[{metric}]"), "1");
        let uri: Uri = format!("{}/transactions/authrep.xml?{query}", self.base)
            .parse()
            .map_err(|_| StoreError::unavailable("3scale: the call's URL does not parse"))?;
        let req = Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| StoreError::unavailable(e.to_string()))?;
        let (status, body) = self.exchange(req).await?;
        let text = String::from_utf8_lossy(&body);
        let doc = Document::read(&text);
        // Only 3scale's own documents decide: a status document for 200
        // and 409, an error about the caller for 403 and 404. Anything
        // else (a proxy's page, an error about the service or its token)
        // is 3scale not answering: the fail mode, never cached.
        let answer = match (status.as_u16(), &doc) {
            (200 | 409, Some(Document::Status { authorized, reason })) => match authorized {
                true if status == StatusCode::OK => Some(Answer::Authorized),
                true => None,
                false => Some(refused(reason.clone())),
            },
            (403 | 404, Some(Document::Error { code }))
                if CALLER_ERRORS.contains(&code.as_str()) =>
            {
                Some(Answer::Unknown)
            }
            _ => None,
        };
        answer.ok_or_else(|| {
            let code = match doc {
                Some(Document::Error { code }) => format!(" ({code})"),
                _ => String::new(),
            };
            StoreError::unavailable(format!("3scale answered {}{code}", status.as_u16()))
        })
    }

    /// `report`: `hits` per application and metric, one transaction per
    /// application. An error for anything but a 2xx, so the caller keeps
    /// the counts and sends them again.
    pub(crate) async fn report(
        &self,
        hits: &HashMap<(Who, String), u64>,
    ) -> Result<(), StoreError> {
        if hits.is_empty() {
            return Ok(());
        }
        let mut by_who: HashMap<&Who, Vec<(&str, u64)>> = HashMap::new();
        for ((who, metric), n) in hits {
            by_who.entry(who).or_default().push((metric, *n));
        }
        let mut form = self.service_form();
        for (i, (who, usage)) in by_who.into_iter().enumerate() {
            let prefix = format!("transactions[{i}]");
            who.append(&mut form, &prefix, false);
            for (metric, n) in usage {
                pair(
                    &mut form,
                    &format!("{prefix}[usage][{metric}]"),
                    &n.to_string(),
                );
            }
        }
        let mut req = Request::post(format!("{}/transactions.xml", self.base))
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| StoreError::unavailable(e.to_string()))?;
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let (status, body) = self.exchange(req).await?;
        if status.is_success() {
            Ok(())
        } else {
            let code = match Document::read(&String::from_utf8_lossy(&body)) {
                Some(Document::Error { code }) => format!(" ({code})"),
                _ => String::new(),
            };
            Err(StoreError::unavailable(format!(
                "3scale answered {} to a report{code}",
                status.as_u16()
            )))
        }
    }
}

/// A 409's answer: over a limit when its reason says so.
fn refused(reason: Option<String>) -> Answer {
    match reason {
        Some(r) if r.contains("limits") => Answer::LimitsExceeded(r),
        _ => Answer::Refused,
    }
}

/// The `<error code>`s of a 403 or 404 that are about the caller's
/// credentials (3scale's error codes); any other (a service token or id
/// 3scale refuses, a metric it does not know) is the gateway's own setup
/// failing, and follows the fail mode.
const CALLER_ERRORS: [&str; 6] = [
    "user_key_invalid",
    "user_key_missing",
    "application_not_found",
    "application_key_invalid",
    "application_id_missing",
    "application_not_active",
];

/// Nesting an answer may have: 3scale's documents are three or four
/// levels deep. Deeper ones are refused before they are parsed (a
/// recursive parser could exhaust the stack on them).
const MAX_DEPTH: usize = 16;

/// A 3scale answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Document {
    /// `<status><authorized>..</authorized><reason>..</reason>..`
    Status {
        authorized: bool,
        reason: Option<String>,
    },
    /// `<error code="..">..</error>`: the code only (the text may quote a
    /// key), when it is an identifier.
    Error { code: String },
}

impl Document {
    /// `xml` as one of 3scale's documents; `None` for anything else (not
    /// XML, too deep, another root).
    fn read(xml: &str) -> Option<Self> {
        if depth(xml) > MAX_DEPTH {
            return None;
        }
        let doc = roxmltree::Document::parse(xml).ok()?;
        let root = doc.root_element();
        let child = |name: &str| {
            root.children()
                .find(|n| n.has_tag_name(name))
                .map(|n| n.text().unwrap_or("").trim().to_owned())
        };
        if root.has_tag_name("status") {
            let authorized = match child("authorized")?.as_str() {
                "true" => true,
                "false" => false,
                _ => return None,
            };
            Some(Self::Status {
                authorized,
                reason: child("reason"),
            })
        } else if root.has_tag_name("error") {
            let code = root.attribute("code")?;
            (!code.is_empty()
                && code.len() <= 64
                && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then(|| Self::Error {
                code: code.to_owned(),
            })
        } else {
            None
        }
    }
}

/// How deeply `xml`'s elements nest, counted without parsing: each `<x`
/// opens a level, each `</` and `/>` closes one (declarations, comments and
/// processing instructions open none). An overestimate at worst, which only
/// refuses.
fn depth(xml: &str) -> usize {
    let bytes = xml.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' => match bytes.get(i + 1) {
                Some(b'/') => depth = depth.saturating_sub(1),
                Some(b'?' | b'!') | None => {}
                Some(_) => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
            },
            b'>' if i > 0 && bytes[i - 1] == b'/' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_reference_writes_them() {
        let ok = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><status><authorized>true</authorized><plan>Basic</plan></status>";
        assert_eq!(
            Document::read(ok),
            Some(Document::Status {
                authorized: true,
                reason: None
            })
        );
        let over = "<status><authorized>false</authorized><reason>usage limits are exceeded</reason></status>";
        let Some(Document::Status { reason, .. }) = Document::read(over) else {
            panic!("{over}")
        };
        assert_eq!(
            refused(reason),
            Answer::LimitsExceeded("usage limits are exceeded".into())
        );
        let inactive = "<status><authorized>false</authorized><reason>application is not active</reason></status>";
        let Some(Document::Status { reason, .. }) = Document::read(inactive) else {
            panic!("{inactive}")
        };
        assert_eq!(refused(reason), Answer::Refused);
        let err = "<error code=\"user_key_invalid\">user key \"s3cr3t\" is invalid</error>";
        assert_eq!(
            Document::read(err),
            Some(Document::Error {
                code: "user_key_invalid".into()
            })
        );
        assert_eq!(Document::read("<error code=\"a b\">x</error>"), None);
        assert_eq!(Document::read("<not xml"), None);
        assert_eq!(Document::read("<html><body>404</body></html>"), None);
        assert_eq!(
            Document::read("<status><authorized>maybe</authorized></status>"),
            None
        );
    }

    #[test]
    fn deep_answers_are_refused_before_parsing() {
        assert_eq!(depth("<a><b/><c>x</c></a>"), 2);
        assert_eq!(depth("<?xml version=\"1.0\"?><!-- c --><a/>"), 1);
        // Deep enough to exhaust a worker's stack in a recursive parser.
        let deep = "<a>".repeat(100_000);
        assert_eq!(Document::read(&deep), None);
        let deep_status = format!(
            "<status><authorized>true</authorized>{}</status>",
            "<x>".repeat(20)
        );
        assert_eq!(Document::read(&deep_status), None);
    }

    #[test]
    fn forms_encode_names_and_values_and_hide_keys_in_debug() {
        let mut form = String::new();
        Who::App {
            id: "a 1".into(),
            key: Some("k&=".into()),
        }
        .append(&mut form, "transactions[0]", true);
        assert_eq!(
            form,
            "transactions%5B0%5D%5Bapp_id%5D=a%201&transactions%5B0%5D%5Bapp_key%5D=k%26%3D"
        );
        let user = Who::UserKey("s3cr3t-user-key".into());
        assert!(!format!("{user:?}").contains("s3cr3t"));
        assert!(user.principal().starts_with("user_key:"));
        assert!(!user.principal().contains("s3cr3t"));
        assert_eq!(user.principal().len(), "user_key:".len() + 10);
    }
}
