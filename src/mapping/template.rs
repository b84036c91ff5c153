//! Body templates: minijinja, with API Gateway's `$input`, `$context`,
//! `$stageVariables` and `$util` under readable names.
//!
//! | API Gateway (VTL) | tollgate (minijinja) |
//! |---|---|
//! | `$input.body` | `input.body` |
//! | `$input.json('$.a')` | `input.json('$.a')` (JSON text) |
//! | `$input.path('$.a')` | `input.path('$.a')` (a value) |
//! | `$input.params()`, `$input.params('x')` | `input.params()`, `input.params('x')` |
//! | `$context.requestId`, `$context.identity.sourceIp`, ... | `context.request_id`, `context.source_ip`, ... |
//! | `$stageVariables.x` | `stage_variables.x` |
//! | `$util.escapeJavaScript(s)`, `$util.urlEncode(s)`, ... | `util.escape_javascript(s)`, `util.url_encode(s)`, ... |
//!
//! The helpers follow "API Gateway mapping template and access logging
//! variable reference" ([`api-gateway-mapping-template-reference`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html)). Each
//! works out the size of what it returns before building it and refuses
//! one over `max_output`, as the rest of a bounded template does (see
//! `bound`).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minijinja::value::{Object, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json_path::JsonPath;

/// Builds the environment templates compile into: no auto-escaping, fuel
/// bounding the work one render may do.
///
/// Templates write JSON, XML or anything else, so HTML auto-escaping would
/// corrupt them. minijinja's recursion limit is lowered to 64 levels.
pub(crate) fn environment(fuel: u64) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_fuel(Some(fuel));
    env.set_recursion_limit(64);
    env
}

/// What `input.params()` offers: the method request's parameters.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct Params {
    /// Path parameters the route matched.
    pub(crate) path: BTreeMap<String, String>,
    /// Query parameters, decoded, each with its first value.
    pub(crate) querystring: BTreeMap<String, String>,
    /// Headers, names lower-case, each with its first value.
    pub(crate) header: BTreeMap<String, String>,
}

impl Params {
    /// `input.params('name')`: the path, then the query string, then the
    /// headers (any case), as `$input.params(x)` searches them.
    fn lookup(&self, name: &str) -> Option<&str> {
        crate::vtl::Params {
            path: &self.path,
            querystring: &self.querystring,
            header: &self.header,
        }
        .lookup(name)
    }
}

/// `input`: the body being mapped and the method request's parameters.
#[derive(Debug)]
pub(crate) struct Input {
    /// `input.body`: the body as a string, invalid UTF-8 replaced.
    pub(crate) body: Value,
    /// The body's bytes, parsed as JSON the first time a template selects
    /// from them (a template that never does pays no parse).
    pub(crate) raw: bytes::Bytes,
    /// The parsed body once parsed (the layer may fill it in advance);
    /// `None` inside when the body is not JSON.
    pub(crate) json: std::sync::OnceLock<Option<serde_json::Value>>,
    /// `input.params()`.
    pub(crate) params: Arc<Params>,
    /// The most a selection may hold, serialized (`max_output`): `$..*`
    /// over a deep document copies each node once per ancestor.
    pub(crate) limit: usize,
}

/// Every value weighs at least what it takes in memory once converted
/// (`[[], [], ...]` is small as text, not as values).
const VALUE_WEIGHT: usize = 48;

/// The serialized size of `v`, counted without serializing it; `None`
/// past `budget`. Each value counts at least [`VALUE_WEIGHT`], so the size
/// bounds both the JSON text a selection becomes and the template value it
/// is converted to.
fn json_size(v: &serde_json::Value, budget: usize) -> Option<usize> {
    use serde_json::Value as J;
    let n = match v {
        J::Null | J::Bool(_) | J::Number(_) => VALUE_WEIGHT,
        J::String(s) => (s.len() + 2).max(VALUE_WEIGHT),
        J::Array(items) => {
            let mut total = VALUE_WEIGHT;
            for item in items {
                total = total.checked_add(json_size(item, budget.checked_sub(total)?)? + 1)?;
            }
            total
        }
        J::Object(map) => {
            let mut total = VALUE_WEIGHT;
            for (k, item) in map {
                let left = budget.checked_sub(total)?;
                total = total.checked_add(k.len() + 4 + json_size(item, left)?)?;
            }
            total
        }
    };
    (n <= budget).then_some(n)
}

/// The one string argument of helper `what`, or an error saying what it takes.
fn str_arg<'a>(args: &'a [Value], what: &str) -> Result<&'a str, Error> {
    match args {
        [v] => v.as_str().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{what} takes a string"),
            )
        }),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{what} takes one argument"),
        )),
    }
}

impl Input {
    /// The body as JSON: an empty body is `null`; a body of another content
    /// type is JSON only if it parses. Parsed at most once per render, and
    /// within [`parse_bounded`](super::json::parse_bounded)'s cap on values.
    fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| {
                if self.raw.is_empty() {
                    return Some(serde_json::Value::Null);
                }
                super::json::parse_bounded(&self.raw, self.limit).ok()
            })
            .as_ref()
    }

    /// Applies `f` to the nodes `path` selects: one node as itself, several
    /// as an array, none as null; the selection is not copied.
    ///
    /// `path` is RFC 9535 JSONPath. The nodes are measured first, together
    /// at most `limit`: `$..*` over a deeply nested document selects each
    /// node once per ancestor, so a selection can be far larger than the
    /// body it came from. Errors: an invalid path, a body that is not JSON,
    /// a selection over the limit.
    fn select<T>(
        &self,
        path: &str,
        f: impl FnOnce(&dyn erased::Selection) -> T,
    ) -> Result<T, Error> {
        let path = JsonPath::parse(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("invalid JSONPath `{path}`: {e}"),
            )
        })?;
        let Some(json) = self.json() else {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "the body is not JSON",
            ));
        };
        let nodes = path.query(json).all();
        let mut total = 0usize;
        for node in &nodes {
            let left = self.limit.saturating_sub(total);
            total = json_size(node, left)
                .and_then(|n| total.checked_add(n))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "the JSONPath selection is larger than the mapping's size limit",
                    )
                })?;
        }
        Ok(match nodes.as_slice() {
            [] => f(&serde_json::Value::Null),
            [one] => f(*one),
            many => f(&many),
        })
    }
}

/// A selection, whichever its shape, for `input.json` and `input.path`.
///
/// One node is a `&serde_json::Value` and several a slice of references:
/// a trait object over both lets `Input::select` pass either to its
/// caller's closure without first copying the nodes into one array.
mod erased {
    /// Serializable and writable as JSON text.
    pub(crate) trait Selection {
        /// As compact JSON text (`input.json`).
        fn to_json(&self) -> String;
        /// As a template value (`input.path`).
        fn to_value(&self) -> minijinja::Value;
    }

    impl<T: serde::Serialize> Selection for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }

        fn to_value(&self) -> minijinja::Value {
            minijinja::Value::from_serialize(self)
        }
    }
}

impl Object for Input {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "body" => Some(self.body.clone()),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        // Selections are measured before they are copied (`select`), and
        // accounted for while the template holds them.
        match method {
            "json" => {
                let text = self.select(str_arg(args, "input.json")?, |s| s.to_json())?;
                super::bound::hold(state, Value::from(text), self.limit)
            }
            "path" => {
                let v = self.select(str_arg(args, "input.path")?, |s| s.to_value())?;
                super::bound::hold(state, v, self.limit)
            }
            "params" => match args {
                [] => Ok(Value::from_serialize(&*self.params)),
                _ => {
                    let name = str_arg(args, "input.params")?;
                    Ok(Value::from(self.params.lookup(name).unwrap_or("")))
                }
            },
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `util`: API Gateway's `$util` helpers.
#[derive(Debug)]
pub(crate) struct Util {
    /// The mapping's size limit (`max_output`): no helper's output is larger.
    pub(crate) limit: usize,
}

/// What `url_encode` leaves as it is (`application/x-www-form-urlencoded`,
/// as Java's `URLEncoder`: letters, digits, `.-*_`; a space becomes `+`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'*')
    .remove(b'_');

/// `util.url_encode`: `application/x-www-form-urlencoded`, as API Gateway's
/// `$util.urlEncode` (Java's `URLEncoder`): letters, digits and `.-*_` stay,
/// a space becomes `+`, every other byte of the UTF-8 is `%XX`.
///
/// ```
/// use tollgate::mapping::url_encode;
///
/// assert_eq!(url_encode("a b&c=d/é*"), "a+b%26c%3Dd%2F%C3%A9*");
/// ```
pub fn url_encode(s: &str) -> String {
    s.split(' ')
        .map(|part| utf8_percent_encode(part, FORM).to_string())
        .collect::<Vec<_>>()
        .join("+")
}

/// `util.url_decode`: `+` is a space; an invalid escape is kept as it is.
/// Bytes that are not UTF-8 once decoded become U+FFFD.
///
/// ```
/// use tollgate::mapping::url_decode;
///
/// assert_eq!(url_decode("a+b%26c%3Dd%2F%C3%A9*"), "a b&c=d/é*");
/// assert_eq!(url_decode("100%"), "100%");
/// ```
pub fn url_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// `util.escape_javascript`: JavaScript string rules, as API Gateway's
/// `$util.escapeJavaScript` (quotes, backslash and `/` escaped, control
/// characters as `\n`, `\t`, ... or `\uXXXX`, characters past ASCII as `\uXXXX`).
///
/// A character outside the Basic Multilingual Plane becomes its two UTF-16
/// surrogates, as a JavaScript string holds it:
///
/// ```
/// use tollgate::mapping::escape_javascript;
///
/// assert_eq!(escape_javascript("it's /ok/"), r"it\'s \/ok\/");
/// assert_eq!(escape_javascript("😀"), r"\uD83D\uDE00");
/// ```
pub fn escape_javascript(s: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// What `parse_json` may read, as a part of the limit: a parsed document
/// takes about 13 times its text, twice over (serde_json's, then the
/// template's).
const PARSE_JSON_SHARE: usize = 32;

impl Object for Util {
    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let bad = |what: &str| Error::new(ErrorKind::InvalidOperation, what.to_owned());
        let limit = self.limit;
        // Each helper's output is measured before it is built where it can
        // grow (escaping: up to 12 bytes a character), and accounted for.
        let out: Value = match method {
            "escape_javascript" => {
                let text = str_arg(args, method)?;
                let grown: usize = text.chars().map(escaped_len).sum();
                if grown > limit {
                    return Err(super::bound::too_large());
                }
                escape_javascript(text).into()
            }
            "url_encode" => {
                let text = str_arg(args, method)?;
                if text.len().saturating_mul(3) > limit {
                    return Err(super::bound::too_large());
                }
                url_encode(text).into()
            }
            "url_decode" => url_decode(str_arg(args, method)?).into(),
            "base64_encode" => {
                let text = str_arg(args, method)?;
                if text.len().div_ceil(3).saturating_mul(4) > limit {
                    return Err(super::bound::too_large());
                }
                STANDARD.encode(text).into()
            }
            "base64_decode" => {
                let bytes = STANDARD
                    .decode(str_arg(args, method)?)
                    .map_err(|_| bad("base64_decode: not base64"))?;
                String::from_utf8_lossy(&bytes).into_owned().into()
            }
            "parse_json" => {
                let text = str_arg(args, method)?;
                if text.len() > limit / PARSE_JSON_SHARE {
                    return Err(super::bound::too_large());
                }
                let v: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| bad(&format!("parse_json: {e}")))?;
                Value::from_serialize(v)
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        };
        super::bound::hold(state, out, limit)
    }
}

/// How long `c` is once `escape_javascript` has escaped it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\'' | '\\' | '/' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c if (c as u32) > 0x7e => 6 * c.len_utf16(),
        _ => 1,
    }
}

/// A writer that refuses to grow past `limit` bytes.
///
/// A write that would pass the limit is refused whole and `buf` keeps what
/// it had; minijinja then ends the render with a write error, which the
/// layer answers with a 500. Output is never held past `limit`, however
/// the template loops.
pub(crate) struct Capped {
    /// What the render wrote so far.
    pub(crate) buf: Vec<u8>,
    /// `max_output`, in bytes.
    pub(crate) limit: usize,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(io::Error::other("template output over the limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The values a template sees besides `input`: serialized as `context`,
/// with snake_case names (`context.request_id`). A value the request does
/// not have (no API key, no authorizer) is the empty string.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct TemplateContext {
    pub(crate) request_id: String,
    pub(crate) stage: String,
    pub(crate) resource_path: String,
    pub(crate) http_method: String,
    pub(crate) source_ip: String,
    pub(crate) api_key_id: String,
    pub(crate) principal_id: String,
    pub(crate) authorizer: BTreeMap<String, String>,
}

/// Renders template `name` of `env` with `input`, at most `limit` bytes.
///
/// The output is bounded by `limits.max_output` ([`Capped`]), the time by
/// `limits.max_render` (the render runs inside the bound's `Pace::run`), and
/// the instructions by the fuel the environment was built with. Any of
/// them, or a template error, is an `Err`: the caller logs it and answers
/// 500.
pub(crate) fn render(
    env: &Environment<'static>,
    name: &str,
    input: Input,
    context: &TemplateContext,
    stage_variables: &BTreeMap<String, String>,
    limits: &super::MappingLimits,
) -> Result<Vec<u8>, Error> {
    let limit = limits.max_output;
    let template = env.get_template(name)?;
    let ctx = minijinja::context! {
        input => Value::from_object(input),
        context => Value::from_serialize(context),
        stage_variables => Value::from_serialize(stage_variables),
        util => Value::from_object(Util { limit }),
    };
    let mut out = Capped {
        buf: Vec::new(),
        limit,
    };
    super::bound::Pace::run(limits.max_render, || {
        template.render_captured_to(ctx, &mut out).map(|_| ())
    })?;
    Ok(out.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_is_form_encoding() {
        assert_eq!(url_encode("a b&c=d/é*"), "a+b%26c%3Dd%2F%C3%A9*");
        assert_eq!(url_decode("a+b%26c%3Dd%2F%C3%A9*"), "a b&c=d/é*");
        assert_eq!(url_decode("100%"), "100%");
    }

    #[test]
    fn javascript_escaping_follows_string_rules() {
        assert_eq!(
            escape_javascript("He said \"hi\" / it's\n\tok\u{1}é"),
            "He said \\\"hi\\\" \\/ it\\'s\\n\\tok\\u0001\\u00E9"
        );
        assert_eq!(escape_javascript("😀"), "\\uD83D\\uDE00");
    }
}
