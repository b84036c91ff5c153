//! The usage page: `GET /` on the management listener, server-rendered
//! HTML with no script and no external fetch, behind HTTP Basic
//! authentication with a management credential (a browser cannot sign
//! SigV4): the access key id as the user name, the secret access key as
//! the password.

use std::fmt::Write as _;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use subtle::ConstantTimeEq;

use super::Inner;
use super::board::StageFigures;
use crate::Body;

/// HTML-escapes `s` (text and attribute values).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix nanoseconds as `2026-12-01 08:00:00 UTC`.
fn utc(nanos: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(nanos / 1_000_000_000).unwrap_or(0),
    )
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&format).unwrap_or_default()
}

/// Whether the request carries Basic credentials of a management caller;
/// the principal when it does. The secret is compared in constant time.
pub(crate) async fn login(inner: &Inner, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let credential = inner.credentials.get(id).await.ok()??;
    // Digests of equal length compared in constant time: neither the
    // secret's bytes nor its length show in the time taken.
    use sha2::Digest;
    let want = sha2::Sha256::digest(credential.secret.expose().as_bytes());
    let got = sha2::Sha256::digest(secret.as_bytes());
    let same = want.as_slice().ct_eq(got.as_slice());
    bool::from(same).then(|| credential.principal.clone())
}

/// 401 with the Basic challenge.
pub(crate) fn challenge() -> Response<Body> {
    let mut res = Response::new(Body::from(
        "Log in with a management credential: its access key id and secret access key.\n",
    ));
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"tollgate management\", charset=\"UTF-8\""),
    );
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn figure(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<td data-figure=\"{name}\">{}</td>", esc(value));
}

fn stage_row(
    out: &mut String,
    api: &str,
    name: &str,
    stage: &str,
    deployment: &str,
    f: &StageFigures,
) {
    let _ = write!(
        out,
        "<tr data-api=\"{}\" data-stage=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td>",
        esc(api),
        esc(stage),
        esc(name),
        esc(stage),
        esc(deployment)
    );
    figure(out, "requests", &f.requests.to_string());
    figure(out, "4xx", &f.client_errors.to_string());
    figure(out, "5xx", &f.server_errors.to_string());
    let limits = if f.too_many.is_empty() {
        "0".to_owned()
    } else {
        f.too_many
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    figure(out, "429", &limits);
    let shadow = if f.shadow.is_empty() {
        "0".to_owned()
    } else {
        f.shadow
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    figure(out, "shadow", &shadow);
    let ratio = f
        .cache_hit_ratio()
        .map_or("–".to_owned(), |r| format!("{:.0}%", r * 100.0));
    figure(out, "cache-hit-ratio", &ratio);
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let v = f
            .latency_ms(q)
            .map_or("–".to_owned(), |ms| format!("{ms:.2}"));
        figure(out, name, &v);
    }
    out.push_str("</tr>\n");
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0 2em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th{background:#f3f3f3}td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){text-align:left}\
caption{text-align:left;font-weight:600;margin-bottom:.3em}.note{color:#666}";

/// The page, as the lifecycle, the stores and the board stand now.
pub(crate) async fn render(inner: &Inner, principal: &str) -> Response<Body> {
    let lifecycle = &inner.lifecycle;
    let now = crate::clock::Clock::unix_nanos(&**lifecycle.clock());
    let board = inner.board.get();
    let figures = board
        .map(super::board::UsageBoard::stages)
        .unwrap_or_default();
    let mut out = String::with_capacity(8 << 10);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tollgate usage</title>\
         <style>{STYLE}</style></head><body>\n<h1>tollgate usage</h1>\n<p class=\"note\">As of {} \
         (signed in as {}). Traffic figures count this process's requests since it started; quotas \
         are the stores'.</p>\n",
        utc(now),
        esc(principal)
    );
    if board.is_none() {
        out.push_str(
            "<p class=\"note\" id=\"no-board\">No usage board is attached: traffic figures are not \
             kept (see <code>Management::usage_board</code>).</p>\n",
        );
    }
    out.push_str(
        "<table id=\"stages\"><caption>APIs and stages</caption><tr><th>API</th><th>Stage</th>\
         <th>Deployment</th><th>Requests</th><th>4xx</th><th>5xx</th><th>429 by limit</th>\
         <th>Shadow limits (admitted)</th><th>Cache hit ratio</th><th>p50 ms</th><th>p99 ms</th></tr>\n",
    );
    for api in lifecycle.apis() {
        for stage in lifecycle.stages(&api.id).unwrap_or_default() {
            // Requests are counted under the name the stage's deployment
            // was made with (an API renamed since keeps it until the next).
            let served_as = lifecycle
                .deployment(&api.id, &stage.deployment_id)
                .ok()
                .and_then(|d| d.definition.name.clone())
                .unwrap_or_else(|| api.name.clone());
            let f = figures
                .get(&(served_as, stage.name.clone()))
                .cloned()
                .unwrap_or_default();
            stage_row(
                &mut out,
                &api.id,
                &api.name,
                &stage.name,
                &stage.deployment_id,
                &f,
            );
        }
    }
    out.push_str("</table>\n");
    out.push_str(
        "<table id=\"keys\"><caption>API keys</caption><tr><th>Key</th><th>Id</th><th>Enabled</th>\
         <th>Plan</th><th>Quota used</th><th>Quota remaining</th><th>Requests</th><th>Last seen</th></tr>\n",
    );
    let keys = match lifecycle.key_manager().list().await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "usage page: the key store failed");
            Vec::new()
        }
    };
    let mut keys = keys;
    keys.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let plans = lifecycle.plans();
    let records = lifecycle.usage();
    for k in &keys {
        let seen = board.and_then(|b| b.key(&k.id)).unwrap_or_default();
        let plan_names: Vec<&str> = k.plans.iter().map(|p| &**p).collect();
        let mut used = Vec::new();
        let mut remaining = Vec::new();
        for p in &plan_names {
            let Some(q) = plans.get(*p).and_then(|p| p.quota) else {
                continue;
            };
            let counted = match &records {
                Some(r) => match (r.used(&k.id, p).await, r.remaining(&k.id, p).await) {
                    (Ok(u), Ok(left)) => Some((u, left)),
                    _ => None,
                },
                None => None,
            };
            let limit = q.limit;
            let shadow = if q.mode == crate::throttle::LimitMode::Shadow {
                " (shadow)"
            } else {
                ""
            };
            match counted {
                Some((u, left)) => {
                    used.push(format!("{u} of {limit}{shadow}"));
                    remaining.push(left.to_string());
                }
                None => {
                    used.push("–".to_owned());
                    remaining.push("–".to_owned());
                }
            }
        }
        let _ = write!(
            out,
            "<tr data-key=\"{}\"><td>{}</td><td><code>{}</code></td>",
            esc(&k.id),
            esc(&k.name),
            esc(&k.id)
        );
        figure(&mut out, "enabled", if k.enabled { "yes" } else { "no" });
        figure(&mut out, "plan", &plan_names.join(", "));
        figure(&mut out, "quota-used", &used.join(", "));
        figure(&mut out, "quota-remaining", &remaining.join(", "));
        figure(&mut out, "key-requests", &seen.requests.to_string());
        let last = if seen.last_seen_unix_nanos == 0 {
            "never".to_owned()
        } else {
            utc(seen.last_seen_unix_nanos)
        };
        figure(&mut out, "last-seen", &last);
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if let Some(b) = board {
        out.push_str(
            "<table id=\"notices\"><caption>Changes and quota alerts (latest last)</caption>\
             <tr><th>When</th><th>What</th><th>Detail</th></tr>\n",
        );
        for n in b.notices() {
            let (what, detail) = match &n {
                crate::usage::Notice::Change(c) => (
                    "change",
                    format!(
                        "{} {} by {} ({}): {}",
                        c.method, c.path, c.principal, c.access_key_id, c.status
                    ),
                ),
                crate::usage::Notice::QuotaAlert(a) => (
                    "quota alert",
                    format!(
                        "key {} reached {}% of plan {} ({} of {})",
                        a.key_id, a.threshold_percent, a.plan, a.used, a.limit
                    ),
                ),
            };
            let _ = writeln!(
                out,
                "<tr data-notice=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(what),
                esc(&utc(n.time_unix_nanos())),
                esc(what),
                esc(&detail)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    let mut res = Response::new(Body::from(out));
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    res.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    res.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}
