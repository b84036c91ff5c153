//! The config error, its issues, and the path builder every check uses.

use std::fmt;

/// Why a configuration could not be loaded or built.
///
/// It lists every problem found, each with the path of the field it concerns
/// (`stages.prod.methods."/pets/GET".throttle.rate: must be > 0`), so a config
/// can be fixed in one pass.
///
/// One limit to "every": a value of the wrong type stops the parser, so only
/// the first such error is reported (with every unknown field met before
/// it); rule checks run only on a config that parsed. No message quotes a
/// value of the document, which may hold API keys and secrets: messages say
/// what kind of value was found (see [`Config::from_json_str`](crate::Config::from_json_str)).
///
/// `Display` gives one line for one issue, else a count and one indented
/// line per issue, ready for a terminal or a log:
///
/// ```text
/// invalid gateway config (2 problems):
///   stages.prod.throttle.rate: must be > 0
///   keys[1].plans[0]: unknown plan `gold`
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    issues: Vec<ConfigIssue>,
}

/// What sort of [`ConfigError`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read. The one issue has an empty path; its
    /// message names the file and the operating system's error.
    Io,
    /// The text is not YAML or JSON of the config's shape (syntax, types,
    /// unknown fields), is not UTF-8, or is over the size limit. Rule
    /// violations found in the same pass are listed with it.
    Syntax,
    /// The config parsed but breaks a rule (bounds, references between sections, duplicates).
    Invalid,
    /// The config is valid but asks for something this version cannot enforce.
    Unsupported,
}

/// One problem in a configuration: where, and what.
///
/// `Display` is `path: message`, or the message alone for the whole
/// document. Tools (the petstore example's `--check`) print one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Rendered by `PathBuf`; empty for the whole document.
    path: String,
    /// What is wrong, for people; never quotes a value of the document.
    message: String,
}

impl ConfigIssue {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path of the field, as `a.b."c/d"[0].e`; empty for the whole document.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind, issues: Vec<ConfigIssue>) -> Self {
        Self { kind, issues }
    }

    /// What sort of error this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// Every problem found, in the order of the document's sections.
    pub fn issues(&self) -> &[ConfigIssue] {
        &self.issues
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ConfigErrorKind::Io => "cannot read the gateway config",
            ConfigErrorKind::Syntax | ConfigErrorKind::Invalid => "invalid gateway config",
            ConfigErrorKind::Unsupported => "unsupported gateway config",
        };
        match self.issues.as_slice() {
            [one] => write!(f, "{what}: {one}"),
            many => {
                write!(f, "{what} ({} problems):", many.len())?;
                for issue in many {
                    write!(f, "\n  {issue}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Builds field paths for messages: `stages.prod.methods."/pets/GET"`.
///
/// Each capability's checks receive the path of their slice and extend it,
/// so a check does not need to know where in the document its slice sits
/// (every capability owns its slice, and reports its problems with paths).
/// Every step clones the string: paths are built on the error path and at
/// load time, never per request.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathBuf(String);

impl PathBuf {
    /// The whole document: the empty path.
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// `self.name`, quoting names that are not plain identifiers.
    pub(crate) fn field(&self, name: &str) -> Self {
        let mut s = self.0.clone();
        push_field(&mut s, name);
        Self(s)
    }

    /// `self[i]`.
    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// The path as shown in an issue.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// `self.rest`, `rest` already a path (`request.templates."text/plain"`).
    pub(crate) fn join(&self, rest: &str) -> Self {
        if self.0.is_empty() {
            Self(rest.to_owned())
        } else {
            Self(format!("{}.{rest}", self.0))
        }
    }
}

/// Appends `.name` to a rendered path (no dot at the start). A plain name
/// (ASCII letters, digits, `_`, `-`) goes as it is; anything else (a
/// resource path, a header, a name with a dot) goes in double quotes, with
/// `"` and `\` escaped and control characters spelled out, so that the
/// path stays one unambiguous line whatever the document's keys hold.
pub(crate) fn push_field(s: &mut String, name: &str) {
    if !s.is_empty() {
        s.push('.');
    }
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        s.push_str(name);
    } else {
        s.push('"');
        for c in name.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&c.escape_default().to_string()),
                c => s.push(c),
            }
        }
        s.push('"');
    }
}

/// Collects issues while validating.
///
/// Checks push into it and carry on, rather than return at the first
/// problem; the caller turns a non-empty collector into one [`ConfigError`]
/// of kind [`Invalid`](ConfigErrorKind::Invalid). Issues keep the order
/// they were pushed in: the order the checks walk the document.
#[derive(Debug, Default)]
pub(crate) struct Issues(pub(crate) Vec<ConfigIssue>);

impl Issues {
    /// Records `message` at `path`. The message must not quote a value that
    /// may be secret.
    pub(crate) fn push(&mut self, path: &PathBuf, message: impl Into<String>) {
        self.0.push(ConfigIssue::new(path.as_str(), message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_what_is_not_an_identifier() {
        let p = PathBuf::root()
            .field("stages")
            .field("prod")
            .field("methods")
            .field("/pets/GET")
            .field("throttle")
            .field("rate");
        assert_eq!(
            p.as_str(),
            r#"stages.prod.methods."/pets/GET".throttle.rate"#
        );
        assert_eq!(
            PathBuf::root()
                .field("keys")
                .index(2)
                .field("value")
                .as_str(),
            "keys[2].value"
        );
        assert_eq!(PathBuf::root().field("a\"b").as_str(), r#""a\"b""#);
    }

    #[test]
    fn display_lists_every_issue() {
        let e = ConfigError::new(
            ConfigErrorKind::Invalid,
            vec![ConfigIssue::new("a", "x"), ConfigIssue::new("b.c", "y")],
        );
        assert_eq!(
            e.to_string(),
            "invalid gateway config (2 problems):\n  a: x\n  b.c: y"
        );
    }
}
