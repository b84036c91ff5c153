//! A method's mapping, compiled once: parameter operations, bounded
//! templates and integration responses.
//!
//! Compiling checks the whole config and reports every problem at once,
//! each with its path relative to the mapping (`responses[1].status`): the
//! gateway prefixes the path of the `mapping` setting it came from.
//! Templates are named by that same path in the minijinja environment, so a
//! render error in the log says which template failed. A config with
//! problems still compiles to a [`CompiledMapping`] (what is wrong is left
//! out), so that one pass can collect every issue;
//! [`CompiledMapping::with_limits`] turns any issue into a [`MappingError`].

use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};
use minijinja::Environment;
use regex::Regex;

use super::bound::{self, Rewritten, Unbounded};
use super::config::{MappingConfig, Passthrough};
use super::params::ParamOps;
use super::template::{self};

/// Bounds on what one mapped request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MappingLimits {
    /// The largest body a template reads, request or response (413 beyond
    /// on the request side, a 500 on the response side). Default 10 MiB, API
    /// Gateway's payload limit.
    pub max_body: usize,
    /// The largest output a template may write. Default 10 MiB.
    pub max_output: usize,
    /// minijinja fuel: the instructions one render may run (a template
    /// looping forever stops here). Default 1,000,000.
    pub fuel: u64,
    /// How long a request body a template reads may take to arrive (408
    /// `REQUEST_TIMEOUT` past it), and a response body the time to be read
    /// (a 500). `None`: no limit. Default 10 s (`limits.body_timeout_ms`).
    pub body_timeout: Option<std::time::Duration>,
    /// How long one render may run: minijinja's fuel counts instructions,
    /// not what each costs. Past it the render is a 500. Default 1 s
    /// (`mapping_limits.max_render_ms`).
    pub max_render: std::time::Duration,
    /// How deep VTL macro calls and `#define` blocks may nest. Default 32
    /// (`mapping_limits.max_depth`). VTL's steps are `fuel`.
    pub max_depth: usize,
}

impl Default for MappingLimits {
    fn default() -> Self {
        Self {
            max_body: 10 << 20,
            max_output: 10 << 20,
            fuel: 1_000_000,
            body_timeout: Some(crate::body::DEFAULT_BODY_TIMEOUT),
            max_render: std::time::Duration::from_secs(1),
            max_depth: 32,
        }
    }
}

impl MappingLimits {
    /// The bounds of one VTL render.
    pub(super) fn vtl(&self) -> crate::vtl::Limits {
        crate::vtl::Limits::new(self.fuel, self.max_output, self.max_depth, self.max_render)
    }
}

/// A problem in a mapping config: where (relative to the mapping) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingIssue {
    /// The field (`request.templates."application/json"`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a mapping config, in the order they were found; its
/// `Display` joins them with `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mapping: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct MappingError(pub Vec<MappingIssue>);

/// Where an integration response's header value comes from.
pub(super) enum HeaderSource {
    /// `integration.response.header.NAME`: the backend's header, as the
    /// backend sent it; absent there, the header is left alone.
    Integration(HeaderName),
    /// `'literal'`, checked to be a valid header value when compiled.
    Literal(HeaderValue),
}

/// One integration response (API Gateway's IntegrationResponse), compiled.
pub(super) struct ResponseRule {
    /// `selection_pattern`, anchored (`^(?:PATTERN)$`) so it must match the
    /// whole status code, as API Gateway matches it; `None` for the default
    /// response.
    pub(super) pattern: Option<Regex>,
    /// The status the client gets; `None` keeps the backend's.
    pub(super) status: Option<StatusCode>,
    /// Headers set on the response, in config order.
    pub(super) headers: Vec<(HeaderName, HeaderSource)>,
    /// (content type, template name)
    pub(super) templates: Vec<(String, String)>,
    /// `content_handling`.
    pub(super) handling: Option<super::ContentHandling>,
}

/// A method's mapping, compiled: parameter operations, templates compiled
/// once, integration responses with their patterns.
pub struct CompiledMapping {
    /// What it was compiled from; equality and `Debug` go by it and the
    /// limits.
    pub(super) config: MappingConfig,
    /// `request.set`, `add`, `remove` and `rename`.
    pub(super) params: ParamOps,
    /// (media type, lower-cased and without parameters; template name).
    pub(super) request_templates: Vec<(String, String)>,
    /// What a request whose content type has no template gets.
    pub(super) passthrough: Passthrough,
    /// `request.content_handling`.
    pub(super) request_handling: Option<super::ContentHandling>,
    /// In config order: the first whose pattern matches wins.
    pub(super) responses: Vec<ResponseRule>,
    /// Every template of the mapping, rewritten by the bound and compiled,
    /// with the bound's functions and fuel set.
    pub(super) env: Environment<'static>,
    pub(super) limits: MappingLimits,
    /// The templates that select from the body as JSON: only for these is
    /// the body parsed (once, before rendering).
    pub(super) selecting: std::collections::HashSet<String>,
    /// The VTL templates by name, for a mapping in `vtl` (its templates
    /// are then not in `env`).
    pub(super) vtl: std::collections::HashMap<String, crate::vtl::Template>,
    /// The `$context` names the VTL templates read (`None`: all of them).
    pub(super) vtl_context: Option<Vec<String>>,
}

impl fmt::Debug for CompiledMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledMapping")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CompiledMapping {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.limits == other.limits
    }
}

/// The union of the `$context` names `templates` read; `None` when one
/// reads `$context` whole.
fn vtl_context_names(
    templates: &std::collections::HashMap<String, crate::vtl::Template>,
) -> Option<Vec<String>> {
    let mut all = Vec::new();
    for t in templates.values() {
        for n in t.context_names()? {
            if !all.contains(&n) {
                all.push(n);
            }
        }
    }
    Some(all)
}

/// A media type without parameters, lower-cased.
pub(crate) fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A content type quoted for a config path (`templates."application/json"`).
pub(super) fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

impl CompiledMapping {
    /// Compiles `config` with the default limits.
    pub fn new(config: &MappingConfig) -> Result<Self, MappingError> {
        Self::with_limits(config, MappingLimits::default())
    }

    /// Compiles `config`: every target, source, pattern and template checked.
    pub fn with_limits(
        config: &MappingConfig,
        limits: MappingLimits,
    ) -> Result<Self, MappingError> {
        let mut issues = Vec::new();
        let language = config.language.unwrap_or_default();
        let mapping = Self::compile(config, limits, language, &mut |path, message| {
            issues.push(MappingIssue { path, message });
        });
        if issues.is_empty() {
            Ok(mapping)
        } else {
            Err(MappingError(issues))
        }
    }

    /// Compiles `config`, reporting each problem to `issue` as (path
    /// relative to the mapping, message) and leaving the faulty part out.
    /// The gateway calls this with its own collector, which adds the path
    /// of the `mapping` setting and drops a mapping with any issue;
    /// [`CompiledMapping::with_limits`] collects into a [`MappingError`].
    ///
    /// Each template is rewritten by the bound first; one with a construct
    /// the bound cannot limit is reported with its line and never compiled.
    pub(crate) fn compile(
        config: &MappingConfig,
        limits: MappingLimits,
        language: super::TemplateLanguage,
        issue: &mut dyn FnMut(String, String),
    ) -> Self {
        let mut vtl = std::collections::HashMap::new();
        let mut env = template::environment(limits.fuel);
        bound::register(&mut env, limits.max_output);
        let req = &config.request;
        let params =
            ParamOps::compile(&req.set, &req.add, &req.remove, &req.rename, &mut |p, m| {
                issue(format!("request.{p}"), m);
            });
        let mut selecting = std::collections::HashSet::new();
        let mut add_template =
            |path: String, source: &str, issue: &mut dyn FnMut(String, String)| {
                if language == super::TemplateLanguage::Vtl {
                    match crate::vtl::Template::compile(source) {
                        Ok(t) => {
                            if t.selects_body() {
                                selecting.insert(path.clone());
                            }
                            vtl.insert(path.clone(), t);
                        }
                        Err(e) => issue(path.clone(), format!("VTL: {e}")),
                    }
                    return path;
                }
                let bounded = match bound::rewrite(source) {
                    Ok(Rewritten {
                        source,
                        selects_json,
                    }) => {
                        if selects_json {
                            selecting.insert(path.clone());
                        }
                        source
                    }
                    // minijinja reports the syntax error itself, below.
                    Err(Unbounded::Syntax) => source.to_owned(),
                    Err(Unbounded::Unsupported { line, what }) => {
                        issue(
                            path.clone(),
                            format!(
                                "line {line}: {what} is not supported in mapping templates \
                                 (what it builds cannot be bounded)"
                            ),
                        );
                        return path;
                    }
                };
                if let Err(e) = env.add_template_owned(path.clone(), bounded) {
                    let detail = e.detail().unwrap_or("syntax error");
                    let line = e.line().map_or(String::new(), |l| format!("line {l}: "));
                    issue(path.clone(), format!("{line}{detail}"));
                }
                path
            };
        let mut request_templates = Vec::new();
        for (ctype, source) in &req.templates {
            let path = format!("request.templates.{}", quoted(ctype));
            let name = add_template(path, source, issue);
            request_templates.push((media_type(ctype), name));
        }
        let mut responses = Vec::new();
        for (i, r) in config.responses.iter().enumerate() {
            let base = format!("responses[{i}]");
            let pattern = r.selection_pattern.as_ref().and_then(|p| {
                match Regex::new(&format!("^(?:{p})$")) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        issue(
                            format!("{base}.selection_pattern"),
                            format!("invalid regex: {e}"),
                        );
                        None
                    }
                }
            });
            let status = r.status.and_then(|s| match StatusCode::from_u16(s) {
                Ok(s) if (100..=599).contains(&s.as_u16()) => Some(s),
                _ => {
                    issue(
                        format!("{base}.status"),
                        format!("must be an HTTP status, 100 to 599 (got {s})"),
                    );
                    None
                }
            });
            let mut headers = Vec::new();
            for (name, source) in &r.headers {
                let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
                    issue(
                        format!("{base}.headers.{name}"),
                        format!("`{name}` is not a valid header name"),
                    );
                    continue;
                };
                let src = if let Some(lit) =
                    source.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
                {
                    HeaderValue::from_str(lit).ok().map(HeaderSource::Literal)
                } else {
                    source
                        .strip_prefix("integration.response.header.")
                        .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                        .map(HeaderSource::Integration)
                };
                match src {
                    Some(s) => headers.push((hn, s)),
                    None => issue(
                        format!("{base}.headers.{name}"),
                        format!(
                            "`{source}` is not a source (integration.response.header.NAME or 'literal')"
                        ),
                    ),
                }
            }
            let mut templates = Vec::new();
            for (ctype, source) in &r.templates {
                let path = format!("{base}.templates.{}", quoted(ctype));
                let name = add_template(path, source, issue);
                templates.push((media_type(ctype), name));
            }
            responses.push(ResponseRule {
                pattern,
                status,
                headers,
                templates,
                handling: r.content_handling,
            });
        }
        if config
            .responses
            .iter()
            .filter(|r| r.selection_pattern.is_none())
            .count()
            > 1
        {
            issue(
                "responses".to_owned(),
                "at most one response without `selection_pattern` (the default)".to_owned(),
            );
        }
        Self {
            config: config.clone(),
            params,
            request_templates,
            passthrough: req.passthrough,
            request_handling: req.content_handling,
            responses,
            env,
            limits,
            selecting,
            vtl_context: vtl_context_names(&vtl),
            vtl,
        }
    }

    /// The config this mapping was compiled from.
    pub fn config(&self) -> &MappingConfig {
        &self.config
    }

    /// Whether a request must be looked at before it is passed on: to
    /// render a template, or to refuse a content type with `never`
    /// passthrough. Otherwise its body streams through untouched.
    pub(super) fn needs_request_body(&self) -> bool {
        !self.request_templates.is_empty() || self.passthrough == Passthrough::Never
    }

    /// Whether an integration response takes a non-proxy Lambda
    /// function's error with this `errorMessage`.
    pub(crate) fn takes_error(&self, message: &str) -> bool {
        self.select(StatusCode::OK, Some(message)).is_some()
    }

    /// The integration response for a backend status (or, for a non-proxy
    /// Lambda integration, the function's `errorMessage`, `selection`):
    /// the first whose pattern matches, else the default. `None` when
    /// neither exists: the response passes unchanged.
    pub(super) fn select(
        &self,
        status: StatusCode,
        selection: Option<&str>,
    ) -> Option<&ResponseRule> {
        let code = selection.unwrap_or(status.as_str());
        self.responses
            .iter()
            .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(code)))
            .or_else(|| self.responses.iter().find(|r| r.pattern.is_none()))
    }
}
