//! VTL mapping templates, evaluated as API Gateway evaluates them.
//!
//! Every API Gateway export carries its body mapping templates in the
//! Velocity Template Language (Apache Velocity 1.7) with API Gateway's
//! `$input`, `$context`, `$stageVariables` and `$util`. A mapping whose
//! templates are written in VTL (`language: vtl` on the mapping, or
//! `template_language: vtl` for the whole config) runs them here, so an
//! export runs as it is. The source of truth is AWS's "API Gateway mapping
//! template and access logging variable reference" and what API Gateway is
//! recorded doing (LocalStack's tests recorded against AWS).
//!
//! ```
//! use std::collections::BTreeMap;
//! use tollgate::vtl::{Limits, Params, Template, Variables};
//!
//! let template = Template::compile(r##"#set($root = $input.path('$'))
//! {
//!   "names": [#foreach($pet in $root.pets)"$pet.name"#if($foreach.hasNext),#end#end],
//!   "count": $root.pets.size(),
//!   "stage": "$context.stage",
//!   "env": "$stageVariables.env"
//! }"##).unwrap();
//! let empty = BTreeMap::new();
//! let stage_variables = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
//! let context = serde_json::json!({ "stage": "prod" });
//! let vars = Variables {
//!     body: br#"{"pets": [{"name": "Rex"}, {"name": "Tom"}]}"#,
//!     params: Params { path: &empty, querystring: &empty, header: &empty },
//!     context: &context,
//!     stage_variables: &stage_variables,
//! };
//! let out = template.render(&vars, &Limits::default()).unwrap();
//! // The `#set` line is gone whole (Velocity's rule for a directive alone on its line).
//! assert_eq!(out, r#"{
//!   "names": ["Rex","Tom"],
//!   "count": 2,
//!   "stage": "prod",
//!   "env": "prod"
//! }"#);
//! ```
//!
//! # The language
//!
//! - **References**: `$name`, `${name}`, quiet `$!name`, properties
//!   `$a.b`, indexes `$a[0]` and `$a["key"]`, method calls `$a.b(1, 'x')`.
//!   Identifiers are Velocity 1.7's: a letter or `_`, then letters,
//!   digits, `_` and `-`.
//! - **Directives**: `#set`, `#if`/`#elseif`/`#else`/`#end`,
//!   `#foreach($x in ...)` with `$foreach.index`, `.count`, `.hasNext`,
//!   `.first`, `.last`, `.parent` and `$velocityCount`, `#break`, `#stop`,
//!   `#define`, `#macro` (arguments are evaluated when the macro is called),
//!   the braced forms `#{else}` and `#{end}`; comments `##` and `#* *#`;
//!   unparsed text `#[[ ]]#`; `\$x` and `\#if` escapes.
//! - **Expressions**: integers (Java `int`/`long`; past 64 bits a double)
//!   and doubles; `+ - * / %` (integer division truncates; division by zero
//!   is null; `+` with a string concatenates); `== != < <= > >=` and `eq ne
//!   lt le gt ge`; `&& || !` and `and or not`; ranges `[1..5]`; lists
//!   `[1, 'a']`; maps `{"k": 1}`; `'literal'` and `"interpolated $x"`
//!   strings.
//! - **Methods**: Java's `String` (`length`, `isEmpty`, `contains`,
//!   `startsWith`, `endsWith`, `indexOf`, `lastIndexOf`, `substring`,
//!   `charAt`, `concat`, `replace`, `replaceAll`, `replaceFirst`, `split`,
//!   `matches`, `trim`, `toLowerCase`, `toUpperCase`, `equals`,
//!   `equalsIgnoreCase`, `compareTo`, `hashCode`, `toString`), `List`
//!   (`size`, `isEmpty`, `get`, `contains`, `indexOf`, `add`, `addAll`,
//!   `set`, `remove`, `clear`, `subList`, `toString`) and `Map` (`size`,
//!   `isEmpty`, `get`, `getOrDefault`, `containsKey`, `containsValue`,
//!   `put`, `putAll`, `remove`, `clear`, `keySet`, `values`, `entrySet`,
//!   `toString`). A method that does not exist, or is called with
//!   arguments it does not take, is null, as in Velocity. Regular
//!   expressions are the `regex` crate's, which reads Java's common syntax
//!   (no look-around, no back-references: such a pattern fails the render).
//!   String indexes count characters (Java counts UTF-16 units: the same
//!   outside emoji and other astral characters).
//! - **Whitespace** (Velocity 1.x): a `#set` alone on its line takes the
//!   line's indentation and newline; the `)` closing a directive, `#else`
//!   and `#end` take the spaces and newline after them when nothing else
//!   follows on the line; indentation before other directives stays.
//!
//! # API Gateway's departures from plain Velocity
//!
//! Each is pinned by a test (`tests/vtl.rs`):
//! - a null or undefined reference renders as nothing, never as its source
//!   text; and null compares equal to `""` (`#if($missing == "")` is true);
//! - `$input.body` of an empty body is `{}`, and so are `$input.json('$')`
//!   and `$input.path('$')`;
//! - a body that is not JSON and does not start with `{` or `[` reads as
//!   one JSON string (`$input.json('$')` of `a=b` is `"a=b"`; behind a
//!   gateway a body with a JSON content type must be JSON, else 400 before
//!   any template);
//! - JSON objects keep their document order (`keySet()`, printing,
//!   `$input.json`);
//! - `$input.json` of a path that selects nothing is `""`;
//! - a map selected by `$input.path` or made by `$util.parseJson` prints as
//!   Java's maps do (`{a=1, b=x}`), a list as JSON (`[1,"x"]`);
//! - `$input.params('x')` of a parameter the request does not have is `""`;
//! - a `#foreach` runs at most 1,000 iterations, then ends as if its list
//!   did ([`MAX_FOREACH`], API Gateway's limit);
//! - a template is at most 300 KB ([`MAX_TEMPLATE_BYTES`]).
//!
//! What a template sets under `$context.requestOverride` and
//! `$context.responseOverride` comes back from
//! [`Template::render_with_overrides`] as [`Overrides`]; behind a gateway a
//! request template's apply to the integration request and a response
//! template's to the method response.
//!
//! JSONPath is Jayway's dialect, as API Gateway's (see the `jsonpath`
//! module docs): a definite path (`$.a.b`, `$.a[0]`) selects one value, any
//! other (`[*]`, `..`, filters) a list, even of one.
//!
//! # Bounds
//!
//! A render is bounded by [`Limits`]: steps (each node, expression, call
//! and iteration is one; work over a value of n items is n/16 more), the
//! output's size, the size of every value it builds (strings up to
//! `max_output` bytes, lists and maps up to `max_output / 16` items in all),
//! macro and block nesting, and wall time. Past any of them, or on a
//! runtime error (an invalid JSONPath, `substring` out of range), the
//! render fails with a [`RenderError`]; behind a gateway that is a 500
//! "Internal server error" with the detail logged under the request id.
//! Parsing bounds nesting at 64 levels, so no template can exhaust the
//! stack.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod eval;
mod jsonpath;
mod parse;
mod value;

pub use parse::{Position, SyntaxError};

/// API Gateway's limit on a `#foreach`: at most 1,000 iterations
/// (limits.md, "Number of iterations in a #foreach ... #end loop in mapping
/// templates"). Past it the loop ends as Velocity's `maxloops` ends it,
/// without an error.
pub const MAX_FOREACH: usize = 1000;

/// API Gateway's limit on a mapping template: 300 KB
/// (api-gateway-known-issues.md). A larger template is refused when
/// compiled.
pub const MAX_TEMPLATE_BYTES: usize = 300 * 1024;

/// A compiled VTL template. Compile once (at config load), render per
/// request; shared across threads.
pub struct Template {
    source: Box<str>,
    parsed: parse::Parsed,
    /// JSONPaths written as literals in `$input.json('...')` and
    /// `$input.path('...')`, compiled with the template.
    paths: HashMap<Box<str>, Arc<jsonpath::JsonPath>>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("bytes", &self.source.len())
            .finish_non_exhaustive()
    }
}

/// What a template sees of the request.
///
/// `Debug` shows sizes only: the body and `$context.identity.apiKey` may
/// hold credentials.
#[derive(Clone, Copy)]
pub struct Variables<'a> {
    /// The payload: `$input.body`, and what `$input.json` and
    /// `$input.path` select from.
    pub body: &'a [u8],
    /// `$input.params()`.
    pub params: Params<'a>,
    /// `$context`: a JSON object (`{"requestId": "...", "identity":
    /// {"sourceIp": "..."}, ...}`).
    pub context: &'a serde_json::Value,
    /// `$stageVariables`.
    pub stage_variables: &'a BTreeMap<String, String>,
}

impl fmt::Debug for Variables<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variables")
            .field("body_bytes", &self.body.len())
            .field("params", &self.params)
            .field("stage_variables", &self.stage_variables.len())
            .finish_non_exhaustive()
    }
}

/// The method request's parameters, each name with its first value.
///
/// `Debug` shows the names only (a header may carry a credential).
#[derive(Clone, Copy)]
pub struct Params<'a> {
    /// Path parameters.
    pub path: &'a BTreeMap<String, String>,
    /// Query string parameters, decoded.
    pub querystring: &'a BTreeMap<String, String>,
    /// Headers (names as the request sent them, looked up in any case).
    pub header: &'a BTreeMap<String, String>,
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("path", &self.path.keys().collect::<Vec<_>>())
            .field("querystring", &self.querystring.keys().collect::<Vec<_>>())
            .field("header", &self.header.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Params<'a> {
    /// `$input.params(name)`: the path, then the query string, then the
    /// headers (any case), as API Gateway searches them (minijinja's
    /// `input.params('name')` too).
    pub(crate) fn lookup(&self, name: &str) -> Option<&'a str> {
        self.path
            .get(name)
            .or_else(|| self.querystring.get(name))
            .or_else(|| {
                self.header
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .map(String::as_str)
    }
}

/// Bounds on one render. [`Default`]: 1,000,000 steps, 10 MiB of output,
/// nesting 32 deep, 1 s. Behind a gateway they come from
/// `mapping_limits` (`fuel`, `max_output`, `max_depth`, `max_render_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Steps one render may take.
    pub max_steps: u64,
    /// The largest output, and the largest string a render may build, in
    /// bytes; lists and maps may hold `max_output / 16` items in all.
    pub max_output: usize,
    /// How deep macro calls and `#define` blocks may nest.
    pub max_depth: usize,
    /// How long a render may run.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 1_000_000,
            max_output: 10 << 20,
            max_depth: 32,
            max_time: Duration::from_secs(1),
        }
    }
}

impl Limits {
    /// Limits with these values (the struct is `non_exhaustive`).
    pub fn new(max_steps: u64, max_output: usize, max_depth: usize, max_time: Duration) -> Self {
        Self {
            max_steps,
            max_output,
            max_depth,
            max_time,
        }
    }

    fn max_items(&self) -> usize {
        (self.max_output / 16).max(1024)
    }
}

/// What a render wrote, and the overrides it set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rendered {
    /// The output.
    pub body: String,
    /// `$context.requestOverride.*` and `$context.responseOverride.*`.
    pub overrides: Overrides,
}

/// The overrides a template set, each value as Java's `toString` writes it
/// (a null value is no override). In a request template the
/// `requestOverride` ones apply to the integration request; in a response
/// template the `responseOverride` ones to the method response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Overrides {
    /// `$context.requestOverride.header.NAME`.
    pub request_header: Vec<(String, String)>,
    /// `$context.requestOverride.querystring.NAME`.
    pub request_querystring: Vec<(String, String)>,
    /// `$context.requestOverride.path.NAME`.
    pub request_path: Vec<(String, String)>,
    /// `$context.responseOverride.header.NAME`.
    pub response_header: Vec<(String, String)>,
    /// `$context.responseOverride.status`, when it is a status (100 to 599).
    pub response_status: Option<u16>,
}

impl Overrides {
    /// Whether the template set none.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A render that failed: a limit passed, or a runtime error. The message
/// is for logs (it may quote the template), never for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position.map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct RenderError {
    /// Where in the template, when known.
    pub position: Option<Position>,
    /// What went wrong.
    pub message: String,
}

impl Template {
    /// Compiles `source`. Errors: a template over [`MAX_TEMPLATE_BYTES`],
    /// a syntax error, or an invalid literal JSONPath, each with its line
    /// and column.
    pub fn compile(source: &str) -> Result<Self, SyntaxError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(SyntaxError {
                position: Position { line: 1, column: 1 },
                message: format!(
                    "the template is {} bytes; API Gateway's limit is 300 KB ({MAX_TEMPLATE_BYTES} bytes)",
                    source.len()
                ),
            });
        }
        let parsed = parse::parse(source)?;
        let mut paths = HashMap::new();
        let mut error = None;
        literal_paths(&parsed, &mut |path, at| {
            if paths.contains_key(path) || error.is_some() {
                return;
            }
            match jsonpath::JsonPath::parse(path) {
                Ok(p) => {
                    paths.insert(Box::from(path), Arc::new(p));
                }
                Err(e) => {
                    error = Some(SyntaxError {
                        position: parse::position(source, at),
                        message: format!("invalid JSONPath: {e}"),
                    })
                }
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        Ok(Self {
            source: source.into(),
            parsed,
            paths,
        })
    }

    /// Renders the template over `vars`, within `limits`.
    pub fn render(&self, vars: &Variables<'_>, limits: &Limits) -> Result<String, RenderError> {
        eval::Eval::new(self, vars, limits)
            .run()
            .map(|(body, _)| body)
    }

    /// Renders the template and reads what it set in
    /// `$context.requestOverride` and `$context.responseOverride` (API
    /// Gateway's mapping template overrides,
    /// apigateway-override-request-response-parameters.md): the caller
    /// applies them once the template is done.
    pub fn render_with_overrides(
        &self,
        vars: &Variables<'_>,
        limits: &Limits,
    ) -> Result<Rendered, RenderError> {
        eval::Eval::new(self, vars, limits)
            .run()
            .map(|(body, overrides)| Rendered { body, overrides })
    }

    /// The `$context` variables the template reads, by their first name
    /// (`identity` for `$context.identity.sourceIp`): `None` when it uses
    /// `$context` whole (a method call on it, `#set` into it), so that a
    /// caller builds only what is read.
    pub fn context_names(&self) -> Option<Vec<String>> {
        let mut names = Some(Vec::new());
        visit_refs(&self.parsed, &mut |r| {
            if &*r.root != "context" {
                return;
            }
            match r.chain.first() {
                Some(parse::Access::Property(p)) => {
                    if let Some(n) = names.as_mut()
                        && !n.iter().any(|x: &String| x == &**p)
                    {
                        n.push(p.to_string());
                    }
                }
                _ => names = None,
            }
        });
        names
    }

    /// Whether the template reads the body through `$input.json` or
    /// `$input.path` (which parse it as JSON).
    pub fn selects_body(&self) -> bool {
        let mut found = false;
        let mut any_input_call = false;
        literal_paths(&self.parsed, &mut |_, _| found = true);
        visit_refs(&self.parsed, &mut |r| {
            if &*r.root == "input"
                && matches!(r.chain.first(), Some(parse::Access::Method(m, _)) if &**m == "json" || &**m == "path")
            {
                any_input_call = true;
            }
        });
        found || any_input_call
    }
}

/// Calls `f` on every reference of the template.
fn visit_refs(parsed: &parse::Parsed, f: &mut dyn FnMut(&parse::Ref)) {
    use parse::{Access, Expr, Node};
    fn expr(e: &Expr, f: &mut dyn FnMut(&parse::Ref)) {
        match e {
            Expr::Ref(r) => reference(r, f),
            Expr::Interpolated(n) => nodes(n, f),
            Expr::List(items) => items.iter().for_each(|i| expr(i, f)),
            Expr::Range(a, b) | Expr::Binary(_, a, b, _) => {
                expr(a, f);
                expr(b, f);
            }
            Expr::Map(entries) => entries.iter().for_each(|(k, v)| {
                expr(k, f);
                expr(v, f);
            }),
            Expr::Not(a) | Expr::Neg(a) => expr(a, f),
            Expr::Lit(_) => {}
        }
    }
    fn reference(r: &parse::Ref, f: &mut dyn FnMut(&parse::Ref)) {
        f(r);
        for a in &r.chain {
            match a {
                Access::Method(_, args) => args.iter().for_each(|e| expr(e, f)),
                Access::Index(e) => expr(e, f),
                Access::Property(_) => {}
            }
        }
    }
    fn nodes(ns: &[Node], f: &mut dyn FnMut(&parse::Ref)) {
        for n in ns {
            match n {
                Node::Text(_) | Node::Break | Node::Stop | Node::Define(..) => {}
                Node::Ref(r) | Node::Escaped { reference: r, .. } => reference(r, f),
                Node::Set(r, e) => {
                    reference(r, f);
                    expr(e, f);
                }
                Node::If(branches, otherwise) => {
                    for (c, body) in branches {
                        expr(c, f);
                        nodes(body, f);
                    }
                    if let Some(body) = otherwise {
                        nodes(body, f);
                    }
                }
                Node::Foreach { iterable, body, .. } => {
                    expr(iterable, f);
                    nodes(body, f);
                }
                Node::Call { args, .. } => args.iter().for_each(|e| expr(e, f)),
            }
        }
    }
    nodes(&parsed.nodes, f);
    for m in &parsed.macros {
        nodes(&m.body, f);
    }
    for b in &parsed.blocks {
        nodes(b, f);
    }
}

/// Calls `f` with each literal JSONPath (`$input.json('...')`,
/// `$input.path('...')`) and its offset.
fn literal_paths(parsed: &parse::Parsed, f: &mut dyn FnMut(&str, usize)) {
    visit_refs(parsed, &mut |r| {
        if &*r.root != "input" {
            return;
        }
        if let Some(parse::Access::Method(m, args)) = r.chain.first()
            && (&**m == "json" || &**m == "path")
            && let [parse::Expr::Lit(parse::Lit::Str(p))] = args.as_slice()
        {
            f(p, r.at);
        }
    });
}
