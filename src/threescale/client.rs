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
        match status.as_u16() {
            200 => match element(&text, "authorized").as_deref() {
                Some("true") => Ok(Answer::Authorized),
                // A 200 that does not authorize is not in the reference;
                // read it as its reason says.
                _ => Ok(refused(element(&text, "reason"))),
            },
            403 | 404 => Ok(Answer::Unknown),
            409 => Ok(refused(element(&text, "reason"))),
            s => Err(StoreError::unavailable(format!(
                "3scale answered {s}{}",
                error_code(&text)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ))),
        }
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
            Err(StoreError::unavailable(format!(
                "3scale answered {status} to a report{}",
                error_code(&String::from_utf8_lossy(&body))
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
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

/// The text of the first element named `name` in an XML document.
fn element(xml: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned())
}

/// The `code` of an `<error code="...">` answer: a fixed identifier
/// (`user_key_invalid`), never the message (which may quote a key).
fn error_code(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let code = doc
        .descendants()
        .find(|n| n.has_tag_name("error"))?
        .attribute("code")?;
    code.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        .then(|| code.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_reference_writes_them() {
        let ok = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><status><authorized>true</authorized><plan>Basic</plan></status>";
        assert_eq!(element(ok, "authorized").as_deref(), Some("true"));
        let over = "<status><authorized>false</authorized><reason>usage limits are exceeded</reason></status>";
        assert_eq!(
            refused(element(over, "reason")),
            Answer::LimitsExceeded("usage limits are exceeded".into())
        );
        let inactive = "<status><authorized>false</authorized><reason>application is not active</reason></status>";
        assert_eq!(refused(element(inactive, "reason")), Answer::Refused);
        let err = "<error code=\"user_key_invalid\">user key \"s3cr3t\" is invalid</error>";
        assert_eq!(error_code(err).as_deref(), Some("user_key_invalid"));
        assert_eq!(error_code("<error code=\"a b\">x</error>"), None);
        assert_eq!(element("<not xml", "authorized"), None);
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
