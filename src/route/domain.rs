//! Custom domain names and base path mappings (API Gateway's "Set up custom
//! domain names" and "API mappings"): a request whose `Host` is a configured
//! domain is routed by the longest base path its path starts with, the
//! mapped prefix stripped, to the mapping's stage.
//!
//! ```
//! use tollgate::{Config, Gateway};
//!
//! let config = Config::from_yaml_str(r#"
//! routes: { /pets: [GET] }
//! stages: { prod: {}, beta: {} }
//! domains:
//!   api.example.test:
//!     base_paths:
//!       "": { stage: prod }        # API Gateway's (none) mapping
//!       v2/beta: { stage: beta }   # multi-level, as API Gateway's API mappings
//! "#).unwrap();
//! let gateway = Gateway::new(config).unwrap();
//! # let _ = gateway;
//! ```
//!
//! - The host is the request target's authority (HTTP/2's `:authority`,
//!   an absolute-form URI), else `Host` (RFC 9112 §3.2.2), its port and a
//!   final dot ignored, matched in any case; two `Host` fields are 400
//!   `BAD_REQUEST_PARAMETERS` (RFC 9112 §3.2). A host that is not a domain uses the execute-api
//!   form `/{stage}/...`, unless `disable_execute_api_endpoint: true` turns
//!   it off (403 `UNMAPPED_REQUEST` `{"message":"Forbidden"}`, API
//!   Gateway's `disableExecuteApiEndpoint`).
//! - A base path is whole segments of API Gateway's base path characters
//!   (letters, digits, `$-_.+!*'()`; at most 300), matched in case:
//!   `orders` takes `/orders` and `/orders/1`, not `/orders1`. `""` takes
//!   every path the others do not. A request target that is not a path
//!   (`OPTIONS *`) is on no base path.
//! - A request on a domain that no base path takes gets 403
//!   `UNMAPPED_REQUEST` `{"message":"Forbidden"}`, as API Gateway answers.
//! - The inner service sees the path after the base path (and the stage's
//!   resources match it); [`RequestContext::original_uri`](crate::RequestContext::original_uri)
//!   keeps the path as sent.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::config::{Issues, PathBuf};

/// One custom domain name: `domains.NAME` in the config (a DNS name, no
/// port, matched in any case), with its base path mappings.
///
/// ```yaml
/// domains:
///   api.example.test:
///     base_paths:
///       "": { stage: prod }              # (none): every path no other takes
///       orders/v1: { stage: beta }       # /orders/v1/x reaches beta's /x
/// ```
///
/// Errors, with their paths: a name that is not a DNS name, the same name
/// twice in another case, no base path, a base path with a leading or
/// trailing `/` or an empty segment, an unknown stage, an `api` that is not
/// the config's `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct DomainConfig {
    /// Base path (`""`, `orders`, `orders/v1`; no leading or trailing `/`)
    /// to the stage it serves.
    #[serde(default)]
    pub base_paths: BTreeMap<String, BasePathMappingConfig>,
}

/// One base path mapping: `(api, stage)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct BasePathMappingConfig {
    /// The API, by the config's `name` (default `tollgate`); optional while
    /// a config holds one API.
    #[serde(default)]
    pub api: Option<String>,
    /// The stage served.
    pub stage: String,
}

/// The domains of a config, resolved: by lower-case host, the base paths
/// longest first with the index of the stage each serves.
#[derive(Debug, Default)]
pub(crate) struct Domains {
    by_host: ByHost,
}

/// Base paths by lower-case host, hashed with foldhash: a lookup per
/// request when domains are configured (host names are not secret, and
/// config-chosen, so flooding is not a concern).
type ByHost = HashMap<Box<str>, Vec<(Box<str>, usize)>, foldhash::fast::RandomState>;

/// Where a request on a domain goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// To stage `stage`, the first `strip` bytes of the path dropped.
    To { stage: usize, strip: usize },
    /// Nowhere: the host is a domain, no base path takes the path.
    Unmapped,
}

/// The longest host name (RFC 1035: 253 characters).
const MAX_HOST: usize = 253;

/// Whether `s` is a DNS name as a domain is written: labels of letters,
/// digits and `-` (not first or last), dot-separated, 1 to 63 characters
/// each, 253 in all.
pub(crate) fn is_host_name(s: &str) -> bool {
    s.len() <= MAX_HOST
        && !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// API Gateway's longest base path.
const MAX_BASE_PATH: usize = 300;

/// Whether `s` is a base path: `""`, or segments of API Gateway's base
/// path characters (letters, digits, `$-_.+!*'()`) joined by single `/`s,
/// none `.` or `..`, at most 300 characters.
pub(crate) fn is_base_path(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= MAX_BASE_PATH
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"$-_.+!*'()".contains(&b))
            }))
}

impl Domains {
    /// Checks `domains` against the config's API name and stages (in index
    /// order), reporting each problem at its path, and resolves it.
    pub(crate) fn resolve(
        config: &BTreeMap<String, DomainConfig>,
        api: &str,
        stages: &[&str],
        path: &PathBuf,
        issues: &mut Issues,
    ) -> Self {
        let mut by_host = ByHost::default();
        for (name, domain) in config {
            let at = path.field(name);
            // A fully qualified name's final dot is the same name.
            let host = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let mut valid = true;
            if host.starts_with("*.") {
                issues.push(
                    &at,
                    format!("`{name}`: wildcard domain names are not supported; name each domain"),
                );
                valid = false;
            } else if !is_host_name(&host) {
                issues.push(
                    &at,
                    format!(
                        "`{name}` is not a domain name (labels of letters, digits and `-`, \
                         dot-separated; no port)"
                    ),
                );
                valid = false;
            } else if by_host.contains_key(host.as_str()) {
                issues.push(
                    &at,
                    format!("`{name}` is given twice (names are case-insensitive)"),
                );
                valid = false;
            }
            if domain.base_paths.is_empty() {
                issues.push(
                    &at.field("base_paths"),
                    "at least one base path mapping is required",
                );
            }
            let mut maps: Vec<(Box<str>, usize)> = Vec::new();
            for (base, mapping) in &domain.base_paths {
                let at = at.field("base_paths").field(base);
                if !is_base_path(base) {
                    issues.push(
                        &at,
                        format!(
                            "`{base}` is not a base path (\"\", or segments of letters, digits and \
                             `$-_.+!*'()` joined by `/`, no leading or trailing `/`, no `.` or `..` \
                             segment, at most {MAX_BASE_PATH} characters)"
                        ),
                    );
                    continue;
                }
                if let Some(a) = &mapping.api
                    && a != api
                {
                    issues.push(
                        &at.field("api"),
                        format!("unknown API `{a}` (this config's API is `{api}`)"),
                    );
                }
                match stages.iter().position(|s| *s == mapping.stage) {
                    Some(stage) => maps.push((Box::from(base.as_str()), stage)),
                    None => issues.push(
                        &at.field("stage"),
                        format!("unknown stage `{}`", mapping.stage),
                    ),
                }
            }
            // Longest first: the first that takes a path is the longest.
            maps.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
            if valid {
                by_host.insert(host.into_boxed_str(), maps);
            }
        }
        Self { by_host }
    }

    /// Whether no domain is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// Where a request for `host` (a `Host` value, port and case as sent)
    /// and `path` goes; `None` when `host` is no domain, or the path is not
    /// in origin form (`*`).
    pub(crate) fn find(&self, host: &str, path: &str) -> Option<Mapped> {
        let rest = path.strip_prefix('/')?;
        let name = host_name(host)?;
        let mut buf = [0u8; MAX_HOST];
        let lower = buf.get_mut(..name.len())?;
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).ok()?;
        let maps = self.by_host.get(lower)?;
        let found = maps.iter().find_map(|(base, stage)| {
            if base.is_empty() {
                return Some((*stage, 0));
            }
            let after = rest.strip_prefix(&**base)?;
            (after.is_empty() || after.starts_with('/')).then_some((*stage, 1 + base.len()))
        });
        Some(match found {
            Some((stage, strip)) => Mapped::To { stage, strip },
            None => Mapped::Unmapped,
        })
    }
}

/// The name of a `Host` value without its port; `None` for an IP literal
/// in brackets or an empty name.
fn host_name(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(json: &str) -> (Domains, Vec<String>) {
        let config: BTreeMap<String, DomainConfig> = serde_json::from_str(json).unwrap();
        let mut issues = Issues::default();
        let d = Domains::resolve(
            &config,
            "shop",
            &["beta", "prod"],
            &PathBuf::root().field("domains"),
            &mut issues,
        );
        (d, issues.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn longest_base_path_wins_on_whole_segments() {
        let (d, issues) = domains(
            r#"{"Api.Example.Test": {"base_paths": {
                "": {"stage": "prod"},
                "orders": {"stage": "beta"},
                "orders/v1": {"stage": "prod", "api": "shop"}}}}"#,
        );
        assert!(issues.is_empty(), "{issues:?}");
        let to = |stage, strip| Some(Mapped::To { stage, strip });
        assert_eq!(d.find("api.example.test", "/orders/v1/x"), to(1, 10));
        assert_eq!(d.find("API.EXAMPLE.TEST:8443", "/orders/v1"), to(1, 10));
        assert_eq!(d.find("api.example.test", "/orders/v2"), to(0, 7));
        assert_eq!(d.find("api.example.test", "/orders1"), to(1, 0));
        assert_eq!(d.find("api.example.test.", "/"), to(1, 0));
        assert_eq!(d.find("other.test", "/orders"), None);
        assert_eq!(d.find("[::1]:80", "/orders"), None);
        assert_eq!(d.find("api.example.test", "*"), None, "not origin form");
    }

    #[test]
    fn a_domain_without_a_matching_base_path_is_unmapped() {
        let (d, _) = domains(r#"{"a.test": {"base_paths": {"v1": {"stage": "prod"}}}}"#);
        assert_eq!(d.find("a.test", "/v2/x"), Some(Mapped::Unmapped));
        assert_eq!(d.find("a.test", "/"), Some(Mapped::Unmapped));
    }

    #[test]
    fn mistakes_are_named_with_their_paths() {
        let (_, issues) = domains(
            r#"{
                "a.test:80": {"base_paths": {"": {"stage": "prod"}}},
                "b.test": {"base_paths": {
                    "/v1": {"stage": "prod"}, "v1/": {"stage": "prod"},
                    "x": {"stage": "gamma"}, "y": {"stage": "prod", "api": "other"}}},
                "c.test": {},
                "*.d.test": {"base_paths": {"": {"stage": "prod"}}},
                "e.test": {"base_paths": {"a/../b": {"stage": "prod"}, "a~b": {"stage": "prod"}}},
                "f.test.": {"base_paths": {"": {"stage": "prod"}}},
                "bad_name": {"base_paths": {"v1": {"stage": "nope"}}}
            }"#,
        );
        for expected in [
            "domains.\"a.test:80\": `a.test:80` is not a domain name",
            "domains.\"b.test\".base_paths.\"/v1\": `/v1` is not a base path",
            "domains.\"b.test\".base_paths.\"v1/\": `v1/` is not a base path",
            "domains.\"b.test\".base_paths.x.stage: unknown stage `gamma`",
            "domains.\"b.test\".base_paths.y.api: unknown API `other`",
            "domains.\"c.test\".base_paths: at least one base path mapping is required",
            "domains.\"*.d.test\": `*.d.test`: wildcard domain names are not supported",
            "domains.\"e.test\".base_paths.\"a/../b\": `a/../b` is not a base path",
            "domains.\"e.test\".base_paths.\"a~b\": `a~b` is not a base path",
            "domains.bad_name.base_paths.v1.stage: unknown stage `nope`",
        ] {
            assert!(
                issues.iter().any(|i| i.starts_with(expected)),
                "{expected}\n{issues:#?}"
            );
        }
        assert!(
            !issues.iter().any(|i| i.contains("f.test")),
            "a final dot is the same name: {issues:#?}"
        );
    }
}
