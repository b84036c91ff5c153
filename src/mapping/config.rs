//! The `mapping` section of a method's settings.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// How one method's requests and responses are transformed between the
/// client and the integration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct MappingConfig {
    /// The language of this mapping's body templates: `jinja` (minijinja,
    /// tollgate's) or `vtl` (API Gateway's Velocity, see
    /// [`vtl`](crate::vtl)). Default: the config's `template_language`,
    /// itself `jinja` by default. Gateway response templates are neither:
    /// API Gateway runs them by simple substitution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<TemplateLanguage>,
    /// The integration request: parameters and body templates.
    #[serde(default)]
    pub request: RequestMappingConfig,
    /// Integration responses, tried in order: the first whose
    /// `selection_pattern` matches the backend status applies; the one
    /// without a pattern is the default.
    #[serde(default)]
    pub responses: Vec<ResponseMappingConfig>,
}

/// The request side of a mapping.
///
/// `Debug` shows a `'literal'` source as `'****'` and a template as its
/// length: either may hold a credential for the backend.
#[derive(Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct RequestMappingConfig {
    /// `TARGET: SOURCE`: the target takes the source's value, replacing any.
    /// Targets: `integration.request.header.NAME`,
    /// `integration.request.querystring.NAME`, `integration.request.path.NAME`.
    /// Sources: `method.request.path.NAME`, `method.request.querystring.NAME`,
    /// `method.request.header.NAME`, `stageVariables.NAME`, `context.requestId`,
    /// `context.stage`, `context.resourcePath`, `context.httpMethod`,
    /// `context.identity.sourceIp`, `context.identity.apiKeyId`,
    /// `context.authorizer.principalId`, or `'literal'`.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// `TARGET: SOURCE`: the source's value is added (a header gets another
    /// value, a query parameter another occurrence).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Targets removed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// `FROM: TO`, both targets of one kind: the values move.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Body templates by request content type (`application/json`); a
    /// request without a `Content-Type` counts as `application/json`.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// What happens to a body whose content type has no template.
    #[serde(default)]
    pub passthrough: Passthrough,
    /// API Gateway's integration `contentHandling`: base64 conversion of
    /// the request body (see [`ContentHandling`](super::ContentHandling)).
    /// Default: none beyond what `binary_media_types` requires.
    #[serde(default)]
    pub content_handling: Option<super::ContentHandling>,
}

/// What language a mapping's body templates are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TemplateLanguage {
    /// minijinja, with `input`, `context`, `stage_variables` and `util`
    /// (tollgate's own; the default).
    #[default]
    Jinja,
    /// Velocity, as API Gateway runs it, with `$input`, `$context`,
    /// `$stageVariables` and `$util` (what API Gateway exports carry).
    Vtl,
}

/// API Gateway's `passthroughBehavior`: what a request whose content type
/// has no template gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Passthrough {
    /// Passed through untouched (the default).
    #[default]
    WhenNoMatch,
    /// Passed through only when the method has no templates at all;
    /// otherwise 415 `UNSUPPORTED_MEDIA_TYPE`.
    WhenNoTemplates,
    /// Never passed through: 415 `UNSUPPORTED_MEDIA_TYPE`.
    Never,
}

/// One integration response.
///
/// `Debug` hides `'literal'` header values and templates, as
/// [`RequestMappingConfig`]'s does.
#[derive(Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct ResponseMappingConfig {
    /// A regular expression the backend status (`"404"`) must match whole;
    /// absent for the default response.
    #[serde(default)]
    pub selection_pattern: Option<String>,
    /// The status sent to the client. Default: the backend's.
    #[serde(default)]
    pub status: Option<u16>,
    /// `NAME: SOURCE` headers set on the response: `integration.response.header.NAME`
    /// or `'literal'`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body templates by content type, chosen by the request's `Accept`
    /// (then `application/json`, then the first).
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// API Gateway's integration response `contentHandling`: base64
    /// conversion of the response body (see
    /// [`ContentHandling`](super::ContentHandling)). Default: as the binary
    /// media types and the request's `Accept` require.
    #[serde(default)]
    pub content_handling: Option<super::ContentHandling>,
}

/// Parameter mappings as `Debug` shows them: a literal source hidden.
struct Sources<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(target, source)| {
                let shown = if source.starts_with('\'') {
                    "'****'"
                } else {
                    source.as_str()
                };
                (target, shown)
            }))
            .finish()
    }
}

/// Templates as `Debug` shows them: each media type with its length.
struct Templates<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Templates<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(media, t)| (media, format!("<{} bytes>", t.len()))),
            )
            .finish()
    }
}

impl fmt::Debug for RequestMappingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMappingConfig")
            .field("set", &Sources(&self.set))
            .field("add", &Sources(&self.add))
            .field("remove", &self.remove)
            .field("rename", &self.rename)
            .field("templates", &Templates(&self.templates))
            .field("passthrough", &self.passthrough)
            .field("content_handling", &self.content_handling)
            .finish()
    }
}

impl fmt::Debug for ResponseMappingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseMappingConfig")
            .field("selection_pattern", &self.selection_pattern)
            .field("status", &self.status)
            .field("headers", &Sources(&self.headers))
            .field("templates", &Templates(&self.templates))
            .field("content_handling", &self.content_handling)
            .finish()
    }
}

/// Bounds on mapping templates, for every method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct MappingLimitsConfig {
    /// The largest body a template reads. Default 10 MiB.
    #[serde(default)]
    pub max_body: Option<crate::config::ByteSize>,
    /// The largest output a template writes. Default 10 MiB.
    #[serde(default)]
    pub max_output: Option<crate::config::ByteSize>,
    /// Instructions one render may run. Default 1,000,000.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Milliseconds one render may run, `1 ..= 60000`. Default 1000.
    #[serde(default)]
    pub max_render_ms: Option<u64>,
    /// How deep VTL macro calls and `#define` blocks may nest, `1 ..= 64`.
    /// Default 32.
    #[serde(default)]
    pub max_depth: Option<usize>,
}

impl MappingLimitsConfig {
    /// Checks the section and resolves it over the defaults.
    pub(crate) fn resolve(
        &self,
        path: &crate::config::PathBuf,
        issues: &mut crate::config::Issues,
    ) -> super::MappingLimits {
        let mut limits = super::MappingLimits::default();
        let size = |v: Option<crate::config::ByteSize>, d: usize| {
            v.map_or(Ok(d), |b| usize::try_from(b.0).map_err(|_| ()))
        };
        match size(self.max_body, limits.max_body) {
            Ok(n) if n > 0 => limits.max_body = n,
            _ => issues.push(
                &path.field("max_body"),
                "must be more than 0 and fit in memory",
            ),
        }
        match size(self.max_output, limits.max_output) {
            Ok(n) if n > 0 => limits.max_output = n,
            _ => issues.push(
                &path.field("max_output"),
                "must be more than 0 and fit in memory",
            ),
        }
        match self.fuel {
            Some(0) => issues.push(&path.field("fuel"), "must be more than 0"),
            Some(f) => limits.fuel = f,
            None => {}
        }
        match self.max_render_ms {
            Some(ms @ 1..=60_000) => limits.max_render = std::time::Duration::from_millis(ms),
            Some(_) => issues.push(&path.field("max_render_ms"), "must be 1 to 60000"),
            None => {}
        }
        match self.max_depth {
            Some(d @ 1..=64) => limits.max_depth = d,
            Some(_) => issues.push(&path.field("max_depth"), "must be 1 to 64"),
            None => {}
        }
        limits
    }
}

impl crate::config::Overlay for MappingConfig {}

/// Compiles each method's merged `mapping` once per settings block: a
/// stage-wide mapping serves every endpoint of the stage and is compiled, and
/// its errors reported, once.
#[derive(Debug)]
pub(crate) struct MappingCompiler {
    limits: super::MappingLimits,
    /// The config's `template_language`.
    language: TemplateLanguage,
    /// By the path of the settings block that holds the mapping; `None` for
    /// one that did not compile.
    done: std::collections::HashMap<String, Option<std::sync::Arc<super::CompiledMapping>>>,
}

impl MappingCompiler {
    /// A compiler that applies `limits` to every mapping.
    pub(crate) fn new(limits: super::MappingLimits, language: TemplateLanguage) -> Self {
        Self {
            limits,
            language,
            done: std::collections::HashMap::new(),
        }
    }

    /// The compiled mapping of one endpoint; `None` without a mapping or when
    /// it has errors (reported under `merged.path`'s `mapping`).
    pub(crate) fn compile(
        &mut self,
        merged: &crate::config::Merged<MappingConfig>,
        issues: &mut crate::config::Issues,
    ) -> Option<std::sync::Arc<super::CompiledMapping>> {
        let config = merged.value.as_ref()?;
        let key = merged.path.as_str().to_owned();
        if let Some(done) = self.done.get(&key) {
            return done.clone();
        }
        let base = merged.path.field("mapping");
        let mut broken = false;
        let language = config.language.unwrap_or(self.language);
        let mapping =
            super::CompiledMapping::compile(config, self.limits, language, &mut |p, msg| {
                broken = true;
                issues.push(&base.join(&p), msg);
            });
        let done = (!broken).then(|| std::sync::Arc::new(mapping));
        self.done.insert(key, done.clone());
        done
    }
}
