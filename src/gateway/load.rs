//! Reading a [`Config`] from YAML or JSON.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::config::Config;
use super::resolve::resolve;
use crate::config::{ConfigError, ConfigErrorKind, ConfigIssue, push_field};

/// Configs larger than this are refused before parsing.
const MAX_CONFIG_BYTES: usize = 16 << 20;

impl Config {
    /// Parses and validates a YAML config.
    ///
    /// Every unknown field and every rule broken is reported, each with its path.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        check_size(yaml.len())?;
        let options = serde_saphyr::options! {
            // A snippet of the document could echo a secret into a log.
            with_snippet: false,
        };
        let mut unknown = Vec::new();
        let mut error_path = None;
        // The deserializer must stop at the first type error (the rest of the
        // document would read as a second one), so the path travels aside.
        let parsed = serde_saphyr::with_deserializer_from_str_with_options(yaml, options, |de| {
            deserialize_tracking(de, &mut unknown).map_err(|e| {
                error_path = Some(render_p2e_path(e.path()));
                e.into_inner()
            })
        });
        let result =
            parsed.map_err(|e| ConfigIssue::new(error_path.unwrap_or_default(), yaml_message(&e)));
        finish(result, unknown)
    }

    /// Parses and validates a JSON config.
    ///
    /// As for YAML, no message quotes the document: a syntax error names its
    /// line and column, a type error its path and the kind of value found
    /// (`keys[0]: invalid type: a string, expected struct KeyConfig`), never
    /// the value, which may be a key or a secret.
    pub fn from_json_str(json: &str) -> Result<Self, ConfigError> {
        check_size(json.len())?;
        let value = match crate::redacted::parse_json(json) {
            Ok(v) => v,
            Err(e) => {
                let issue = ConfigIssue::new("", e.to_string());
                return finish(Err(issue), Vec::new());
            }
        };
        let mut unknown = Vec::new();
        let result = deserialize_tracking(crate::redacted::ValueDeserializer(value), &mut unknown)
            .map_err(|e| ConfigIssue::new(render_p2e_path(e.path()), e.inner().to_string()));
        finish(result, unknown)
    }

    /// Reads a config file: JSON when the name ends in `.json`, YAML otherwise.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| {
            ConfigError::new(
                ConfigErrorKind::Io,
                vec![ConfigIssue::new("", format!("{}: {e}", path.display()))],
            )
        };
        // A regular file, read up to the size limit: a FIFO or a device
        // (`/dev/zero`) is refused, not read without end.
        let mut file = std::fs::File::open(path).map_err(io)?;
        if !file.metadata().map_err(io)?.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut file, MAX_CONFIG_BYTES as u64 + 1),
            &mut bytes,
        )
        .map_err(io)?;
        check_size(bytes.len())?;
        let text = String::from_utf8(bytes).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Syntax,
                vec![ConfigIssue::new(
                    "",
                    format!(
                        "{}: not UTF-8 text (byte {})",
                        path.display(),
                        e.utf8_error().valid_up_to()
                    ),
                )],
            )
        })?;
        let mut config = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_json_str(&text)
        } else {
            Self::from_yaml_str(&text)
        }?;
        // Files a config names are relative to it.
        if let Some(dir) = path.parent() {
            let rebase = |file: &mut String| {
                if Path::new(file.as_str()).is_relative() {
                    *file = dir.join(&*file).to_string_lossy().into_owned();
                }
            };
            for stage in config.stages.values_mut() {
                if let Some(file) = stage.canary.as_mut().and_then(|c| c.config.as_mut()) {
                    rebase(file);
                }
            }
            for api in config.apis.values_mut() {
                if let Some(file) = api.config.as_mut() {
                    rebase(file);
                }
                if let Some(file) = api.openapi.as_mut() {
                    rebase(file);
                }
            }
            if let Some(super::config::DeploymentStoreConfig::Dir(d)) =
                config.deployments.as_mut().map(|d| &mut d.store)
            {
                rebase(d);
            }
        }
        Ok(config)
    }

    /// Checks every rule, reporting every problem with its path. A config read
    /// with `from_*` has been validated already; call this on one built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.apis.is_empty() {
            return super::lifecycle::file::check_many(self);
        }
        resolve(self).map(|_| ())
    }
}

fn check_size(len: usize) -> Result<(), ConfigError> {
    if len > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            ConfigErrorKind::Syntax,
            vec![ConfigIssue::new(
                "",
                format!("the config is {len} bytes; the limit is {MAX_CONFIG_BYTES}"),
            )],
        ));
    }
    Ok(())
}

/// Deserializes `T`, recording the path of every field it does not know and
/// the path of the first type error.
fn deserialize_tracking<'de, D, T>(
    de: D,
    unknown: &mut Vec<String>,
) -> Result<T, serde_path_to_error::Error<D::Error>>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(render_unknown(&path));
    let ignored = serde_ignored::Deserializer::new(de, &mut record);
    serde_path_to_error::deserialize(ignored)
}

fn finish(
    result: Result<Config, ConfigIssue>,
    unknown: Vec<String>,
) -> Result<Config, ConfigError> {
    let mut issues: Vec<ConfigIssue> = unknown
        .into_iter()
        .map(|p| ConfigIssue::new(p, "unknown field"))
        .collect();
    match result {
        Err(issue) => {
            issues.push(issue);
            Err(ConfigError::new(ConfigErrorKind::Syntax, issues))
        }
        Ok(config) => {
            let kind = if issues.is_empty() {
                ConfigErrorKind::Invalid
            } else {
                ConfigErrorKind::Syntax
            };
            if let Err(e) = config.validate() {
                issues.extend(e.issues().iter().cloned());
            }
            if issues.is_empty() {
                Ok(config)
            } else {
                Err(ConfigError::new(kind, issues))
            }
        }
    }
}

fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = redact_values(&redact_variant(e.to_string()));
    match e.location() {
        Some(l) if l.line() > 0 && !text.contains("line") => {
            format!("{text} (line {}, column {})", l.line(), l.column())
        }
        _ => text,
    }
}

/// serde's own messages, which some paths of the YAML loader pass through
/// (tagged enums such as `integration`), quote the value they reject:
/// `invalid type: string "VALUE"`, ``integer `123` ``. Each becomes the kind
/// of value alone.
fn redact_values(text: &str) -> String {
    static QUOTED: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(re) = QUOTED.get_or_init(|| {
        regex::Regex::new(
            r#"string "(?:[^"\\]|\\.)*"|(integer|floating point|boolean|character|char) `[^`]*`"#,
        )
        .ok()
    }) else {
        return text.to_owned();
    };
    re.replace_all(text, |c: &regex::Captures<'_>| {
        match c.get(1).map(|m| m.as_str()) {
            None => "a string",
            Some("integer") => "an integer",
            Some("floating point") => "a number",
            Some("boolean") => "a boolean",
            Some(_) => "a character",
        }
    })
    .into_owned()
}

/// serde's "unknown variant `VALUE`, expected ..." quotes the value; the
/// YAML loader's other messages never do.
fn redact_variant(text: String) -> String {
    const START: &str = "unknown variant `";
    const END: &str = "`, expected";
    match (text.find(START), text.rfind(END)) {
        (Some(s), Some(e)) if s + START.len() <= e => {
            format!("{}unknown variant{}", &text[..s], &text[e + 1..])
        }
        _ => text,
    }
}

/// The path of an unknown field, its own name shown only up to a `=`, `:`
/// or space, and at most 64 characters: a `key=value` typed where
/// `key: value` was meant (`pepper=...` in a YAML flow map) reads as one
/// unknown field, and its value may be a secret.
fn render_unknown(path: &serde_ignored::Path<'_>) -> String {
    let serde_ignored::Path::Map { parent, key } = path else {
        return render_ignored(path);
    };
    let mut s = render_ignored(parent);
    let cut = key
        .find(['=', ':', ' ', '\t'])
        .map_or(key.len(), |i| i + 1)
        .min(key.char_indices().nth(64).map_or(key.len(), |(i, _)| i));
    if cut < key.len() {
        push_field(&mut s, &format!("{}…", &key[..cut]));
    } else {
        push_field(&mut s, key);
    }
    s
}

fn render_ignored(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_ignored(parent)),
        P::Map { parent, key } => {
            let mut s = render_ignored(parent);
            push_field(&mut s, key);
            s
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_ignored(parent)
        }
    }
}

fn render_p2e_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment as S;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            S::Seq { index } => s.push_str(&format!("[{index}]")),
            S::Map { key } => push_field(&mut s, key),
            S::Enum { variant } => push_field(&mut s, variant),
            S::Unknown => push_field(&mut s, "?"),
        }
    }
    s
}
