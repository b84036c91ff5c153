//! Models: JSON Schema draft 4 documents, compiled once with every other
//! model of the API reachable by `$ref`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The deepest a model may nest (schemas within schemas). Deeper models
/// are refused when compiled: the validator walks them recursively.
pub const MAX_MODEL_DEPTH: usize = 64;

/// The most models one API may declare (API Gateway's own quota is 500).
pub const MAX_MODELS: usize = 1000;

/// How long a `pattern` may backtrack on one string before the match is
/// given up, in backtracking steps: a catastrophic pattern fails the value
/// (400) instead of holding the request thread.
pub const PATTERN_BACKTRACK_LIMIT: usize = 10_000;

/// The most checks one value of a body may take against a model without
/// descending into it: each `$ref`, `allOf`, `anyOf`, `oneOf`, `not` and
/// schema `dependencies` branch counts, `$ref`s followed. A model over it
/// (`anyOf: [{$ref: B}, {$ref: B}]` chained 20 deep is a million) is
/// refused when compiled.
pub const MAX_BRANCHING: u64 = 10_000;

/// The longest piece of a body (a property name) a validation error
/// string quotes, in characters.
const MAX_QUOTED: usize = 64;

/// The URI each model is registered under, so that models refer to each
/// other whatever form their `$ref` takes in the source.
const MODEL_URI: &str = "urn:tollgate:model:";

/// The keywords API Gateway's validator does not enforce, dropped from a
/// model before it is compiled so that a body API Gateway accepts is
/// accepted here (api-gateway-known-issues.md: "The `maxItems` and
/// `minItems` tags are not included in simple request validation";
/// "`exclusiveMinimum` is not supported by API Gateway").
pub const UNENFORCED_KEYWORDS: &[&str] = &["minItems", "maxItems", "exclusiveMinimum"];

/// An API's models, by name, each compiled once.
///
/// A model is a JSON Schema draft 4 document (API Gateway's models are,
/// whatever the OpenAPI version around them). It may refer to another
/// model of the same API with `$ref` in any of the forms an API Gateway
/// export or an OpenAPI document writes:
///
/// - `https://apigateway.amazonaws.com/restapis/{api}/models/{Name}`
///   (API Gateway's own);
/// - `#/definitions/{Name}` (Swagger 2.0) or `#/components/schemas/{Name}`
///   (OpenAPI 3), when the model has no local definition of that name.
///
/// Other references resolve within the model itself (`#/definitions/Local`,
/// `#/properties/a`); a reference to anything outside (another URL, a
/// file) is refused when compiled, as nothing is fetched.
///
/// What is compiled differs from the source in API Gateway's documented
/// gaps ([`UNENFORCED_KEYWORDS`]), in `format`, which is not checked (API
/// Gateway documents no format checks, and a body it accepts must not be
/// refused here), in `pattern`, which runs on the `fancy-regex` engine
/// (Java's look-around works; a pattern without look-around or
/// back-references runs in linear time) with at most
/// [`PATTERN_BACKTRACK_LIMIT`] backtracking steps per value, and in `id`,
/// `$id` and `$schema`, which are dropped (every model is draft 4, and no
/// schema can take another's name). A model whose branches multiply past
/// [`MAX_BRANCHING`] checks of one value is refused.
///
/// ```
/// use std::collections::BTreeMap;
/// use serde_json::json;
/// use tollgate::validate::Models;
///
/// let mut source = BTreeMap::new();
/// source.insert("Tag".to_owned(), json!({ "type": "string", "maxLength": 8 }));
/// source.insert("Pet".to_owned(), json!({
///     "type": "object",
///     "required": ["name"],
///     "properties": {
///         "name": { "type": "string" },
///         "tags": { "type": "array", "items": { "$ref": "#/definitions/Tag" }, "minItems": 1 }
///     }
/// }));
/// let models = Models::compile(&source).unwrap();
/// let pet = models.get("Pet").unwrap();
/// assert!(pet.is_valid(&json!({ "name": "Rex", "tags": ["good"] })));
/// assert!(pet.is_valid(&json!({ "name": "Rex", "tags": [] })));          // minItems is not enforced
/// assert!(!pet.is_valid(&json!({ "name": "Rex", "tags": ["much too long"] })));
/// assert!(!pet.is_valid(&json!({ "tags": [] })));
/// ```
#[derive(Clone, Default)]
pub struct Models {
    by_name: BTreeMap<String, Arc<Model>>,
}

impl fmt::Debug for Models {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl PartialEq for Models {
    fn eq(&self, other: &Self) -> bool {
        self.by_name == other.by_name
    }
}

/// One compiled model.
pub struct Model {
    name: Box<str>,
    /// The model as written (what an export carries).
    source: Value,
    validator: jsonschema::Validator,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Model {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.source == other.source
    }
}

/// A model that cannot be compiled: its name and why. The message may
/// quote a part of the model (a schema is no secret; an export publishes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{model}: {message}")]
pub struct ModelError {
    /// The model's name (empty for a problem with the set as a whole).
    pub model: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem [`Models::compile`] found, one per model (or for the set),
/// in the order the models are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelErrors(pub Vec<ModelError>);

impl fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelErrors {}

impl std::ops::Deref for ModelErrors {
    type Target = [ModelError];
    fn deref(&self) -> &[ModelError] {
        &self.0
    }
}

impl IntoIterator for ModelErrors {
    type Item = ModelError;
    type IntoIter = std::vec::IntoIter<ModelError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Model {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model as written, before API Gateway's gaps were dropped.
    pub fn schema(&self) -> &Value {
        &self.source
    }

    /// Whether `instance` satisfies the model.
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// What is wrong with `instance`: its first problem, as
    /// `INSTANCE_PATH: KEYWORD (SCHEMA_PATH)` (where in the body, which
    /// keyword failed, where in the model); `None` when it is valid. No
    /// value from the body is quoted; the property names of the path are
    /// cut to 64 characters and escaped (`"`, `\`, control characters) so
    /// that the string sits inside a JSON string and on one log line. Only
    /// the first problem is built: collecting every one of a large invalid
    /// body would take memory in proportion to its errors.
    pub fn first_error(&self, instance: &Value) -> Option<String> {
        if self.validator.is_valid(instance) {
            return None;
        }
        let e = self.validator.validate(instance).err()?;
        let at = e.instance_path().as_str();
        let at = if at.is_empty() {
            "/".to_owned()
        } else {
            quoted(at)
        };
        let schema = quoted(e.schema_path().as_str());
        let keyword = schema.rsplit('/').next().unwrap_or("").to_owned();
        Some(format!("{at}: {keyword} ({schema})"))
    }
}

impl Models {
    /// No models.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles every model of `source` (name → draft 4 schema).
    ///
    /// # Errors
    /// A name that is not alphanumeric (API Gateway's rule), more than
    /// [`MAX_MODELS`] models, a model that is not an object, nests deeper
    /// than [`MAX_MODEL_DEPTH`], refers outside the API's models, or is
    /// not a valid draft 4 schema: one [`ModelError`] per problem.
    pub fn compile(source: &BTreeMap<String, Value>) -> Result<Self, ModelErrors> {
        let mut errors = Vec::new();
        if source.len() > MAX_MODELS {
            errors.push(ModelError {
                model: String::new(),
                message: format!("{} models; at most {MAX_MODELS}", source.len()),
            });
            return Err(ModelErrors(errors));
        }
        let mut prepared = BTreeMap::new();
        for (name, schema) in source {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                errors.push(ModelError {
                    model: name.clone(),
                    message: "a model name is letters and digits only (API Gateway's rule)"
                        .to_owned(),
                });
                continue;
            }
            match prepare(schema, source) {
                Ok(p) => {
                    prepared.insert(name.as_str(), p);
                }
                Err(message) => errors.push(ModelError {
                    model: name.clone(),
                    message,
                }),
            }
        }
        // A model whose branches multiply out (refs followed) is refused.
        for (name, cost) in branching(&prepared) {
            if cost > MAX_BRANCHING {
                errors.push(ModelError {
                    model: (*name).to_owned(),
                    message: format!(
                        "its `$ref`s and `allOf`/`anyOf`/`oneOf` branches check one value more than {MAX_BRANCHING} times"
                    ),
                });
            }
        }
        prepared.retain(|name, _| !errors.iter().any(|e| e.model == *name));
        let registry = prepared
            .iter()
            .try_fold(
                jsonschema::Registry::new()
                    .draft(jsonschema::Draft::Draft4)
                    .retrieve_known_draft_meta_schemas(false),
                |builder, (name, schema)| builder.add(format!("{MODEL_URI}{name}"), schema),
            )
            .and_then(|b| b.prepare());
        let registry = match registry {
            Ok(r) => r,
            Err(e) => {
                errors.push(ModelError {
                    model: String::new(),
                    message: format!("the models do not resolve: {}", kind_of(&e.to_string())),
                });
                return Err(ModelErrors(errors));
            }
        };
        let mut by_name = BTreeMap::new();
        for (name, schema) in &prepared {
            let options = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .with_registry(&registry)
                .with_base_uri(format!("{MODEL_URI}{name}"))
                .should_validate_formats(false)
                .with_pattern_options(
                    jsonschema::PatternOptions::fancy_regex()
                        .backtrack_limit(PATTERN_BACKTRACK_LIMIT)
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20),
                );
            match options.build(schema) {
                Ok(validator) => {
                    by_name.insert(
                        (*name).to_owned(),
                        Arc::new(Model {
                            name: (*name).into(),
                            source: source.get(*name).cloned().unwrap_or(Value::Null),
                            validator,
                        }),
                    );
                }
                Err(e) => errors.push(ModelError {
                    model: (*name).to_owned(),
                    message: format!(
                        "not a valid draft 4 schema at {}: {}",
                        display_path(e.schema_path().as_str()),
                        kind_of(&e.to_string())
                    ),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Self { by_name })
        } else {
            Err(ModelErrors(errors))
        }
    }

    /// The model named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.by_name.get(name)
    }

    /// Every model, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Model>)> {
        self.by_name.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether there is no model.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// `s` cut to [`MAX_QUOTED`] characters per `/` segment, with `"`, `\` and
/// control characters escaped as JSON escapes them.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(1024));
    for (i, seg) in s.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        for (n, c) in seg.chars().enumerate() {
            if n == MAX_QUOTED {
                out.push('…');
                break;
            }
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        if out.len() > 1024 {
            out.push('…');
            break;
        }
    }
    out
}

fn display_path(p: &str) -> &str {
    if p.is_empty() { "/" } else { p }
}

/// An error message on one line, at most 200 characters.
fn kind_of(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    first.chars().take(200).collect()
}

/// The model as compiled: API Gateway's unenforced keywords dropped and
/// every `$ref` to another model pointed at that model's URI. Walks schema
/// positions only (a property named `minItems` is kept).
fn prepare(schema: &Value, models: &BTreeMap<String, Value>) -> Result<Value, String> {
    if !schema.is_object() {
        return Err("a model is a JSON object (a draft 4 schema)".to_owned());
    }
    let local: Vec<String> = schema
        .get("definitions")
        .and_then(Value::as_object)
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    let mut out = schema.clone();
    walk(&mut out, 0, &|r| rewrite_ref(r, &local, models))?;
    Ok(out)
}

/// The model-level URI for a reference that names another model.
fn rewrite_ref(r: &str, local: &[String], models: &BTreeMap<String, Value>) -> Option<String> {
    let named = |name: &str| {
        models
            .contains_key(name)
            .then(|| format!("{MODEL_URI}{name}"))
    };
    if let Some(rest) = r.strip_prefix("https://apigateway.amazonaws.com/restapis/") {
        let (_, name) = rest.split_once("/models/")?;
        return named(name);
    }
    for prefix in ["#/definitions/", "#/components/schemas/"] {
        if let Some(name) = r.strip_prefix(prefix)
            && !name.contains('/')
            && !(prefix == "#/definitions/" && local.iter().any(|l| l == name))
        {
            return named(name);
        }
    }
    None
}

/// Keywords whose value is a map of name to schema.
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "definitions"];
/// Keywords whose value is a schema.
const SCHEMA_ONE: &[&str] = &["additionalProperties", "additionalItems", "not", "items"];
/// Keywords whose value is a list of schemas.
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "items"];

fn walk(
    schema: &mut Value,
    depth: usize,
    rewrite: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    if depth > MAX_MODEL_DEPTH {
        return Err(format!("nested deeper than {MAX_MODEL_DEPTH} levels"));
    }
    let Some(obj) = schema.as_object_mut() else {
        // `true`/`false` schemas and wrong types: the compiler judges them.
        return Ok(());
    };
    for k in UNENFORCED_KEYWORDS {
        obj.remove(*k);
    }
    // Draft 4 only, and no schema renames itself: an `id` would change
    // what `$ref`s resolve to (one could take another model's name), and
    // a nested `$schema` would switch drafts.
    for k in ["id", "$id", "$schema"] {
        obj.remove(k);
    }
    if let Some(Value::String(r)) = obj.get_mut("$ref") {
        if let Some(to) = rewrite(r) {
            *r = to;
        } else if !r.starts_with('#') {
            return Err(
                "a `$ref` names something outside the API's models (nothing is fetched)".to_owned(),
            );
        }
    }
    for (key, value) in obj.iter_mut() {
        let key = key.as_str();
        if SCHEMA_MAPS.contains(&key) {
            if let Some(map) = value.as_object_mut() {
                walk_map(map, depth, rewrite)?;
            }
        } else if key == "dependencies" {
            // Values are schemas or lists of names.
            if let Some(map) = value.as_object_mut() {
                for v in map.values_mut().filter(|v| v.is_object()) {
                    walk(v, depth + 1, rewrite)?;
                }
            }
        } else if SCHEMA_LISTS.contains(&key) && value.is_array() {
            if let Some(list) = value.as_array_mut() {
                for v in list {
                    walk(v, depth + 1, rewrite)?;
                }
            }
        } else if SCHEMA_ONE.contains(&key) {
            walk(value, depth + 1, rewrite)?;
        }
    }
    Ok(())
}

fn walk_map(
    map: &mut Map<String, Value>,
    depth: usize,
    rewrite: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    for v in map.values_mut() {
        walk(v, depth + 1, rewrite)?;
    }
    Ok(())
}

/// How many checks each model makes of one value without descending into
/// it: 1, plus each same-level applicator's (`allOf`, `anyOf`, `oneOf`,
/// `not`, schema `dependencies`), `$ref`s to models and local definitions
/// followed. A loop counts once (the validator stops it). Saturates at
/// `MAX_BRANCHING + 1`.
fn branching<'a>(prepared: &'a BTreeMap<&'a str, Value>) -> Vec<(&'a str, u64)> {
    fn cost(
        s: &Value,
        root: &Value,
        models: &BTreeMap<&str, Value>,
        stack: &mut Vec<*const Value>,
        budget: &mut u64,
    ) -> u64 {
        const CAP: u64 = MAX_BRANCHING + 1;
        // The whole walk is bounded too: a model with many branches that
        // share one target is still walked at most CAP * 16 steps.
        if *budget == 0 {
            return CAP;
        }
        *budget -= 1;
        let Some(obj) = s.as_object() else { return 1 };
        let ptr = s as *const Value;
        if stack.contains(&ptr) {
            return 1;
        }
        stack.push(ptr);
        let mut total: u64 = 1;
        if let Some(Value::String(r)) = obj.get("$ref") {
            let target = if let Some(name) = r.strip_prefix(MODEL_URI) {
                models.get(name).map(|m| (m, m))
            } else {
                r.strip_prefix('#')
                    .and_then(|p| root.pointer(p))
                    .map(|t| (t, root))
            };
            if let Some((t, r2)) = target {
                total = total.saturating_add(cost(t, r2, models, stack, budget));
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for b in obj.get(key).and_then(Value::as_array).into_iter().flatten() {
                total = total.saturating_add(cost(b, root, models, stack, budget));
            }
        }
        if let Some(n) = obj.get("not") {
            total = total.saturating_add(cost(n, root, models, stack, budget));
        }
        for d in obj
            .get("dependencies")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|v| v.is_object())
        {
            total = total.saturating_add(cost(d, root, models, stack, budget));
        }
        stack.pop();
        total.min(CAP)
    }
    prepared
        .iter()
        .map(|(name, schema)| {
            let mut budget = (MAX_BRANCHING + 1) * 16;
            (
                *name,
                cost(schema, schema, prepared, &mut Vec::new(), &mut budget),
            )
        })
        .collect()
}
