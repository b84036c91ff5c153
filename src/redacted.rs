//! Deserializing a parsed JSON document with errors that never quote it.
//!
//! serde's default messages quote the value they reject (`invalid type:
//! string "demo-key-0123…", expected struct KeyConfig`), and a config's
//! values include API keys, secret access keys and peppers. A document
//! deserialized through [`ValueDeserializer`] reports the kind of value it found
//! instead (`invalid type: a string, expected struct KeyConfig`), so an error
//! can be logged or shown without leaking what the document held. The path of
//! the error comes from `serde_path_to_error`, as for any deserializer.
//!
//! Syntax errors come from `serde_json`'s parser, whose messages name a
//! line and column, never a value.
//!
//! The pipeline for a JSON config: the text is parsed into a [`Value`] by
//! [`parse_json`] (which also refuses duplicate keys), then `Config` is
//! deserialized from that value through [`ValueDeserializer`], wrapped in
//! `serde_ignored` (unknown fields) and `serde_path_to_error` (the path of
//! the first error). The deserializer is a copy of what `serde_json::Value`
//! does, with one change: the error type. (YAML goes through
//! serde-saphyr's own deserializer, with its document snippets turned off.)
//!
//! What still passes through [`de::Error::custom`]: messages written by a
//! type's own `Deserialize` impl. Such impls must word their messages
//! without the value, as `ByteSize`'s does.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;

/// A deserialization error whose message never holds a value of the input.
/// Only the message: the path is added by `serde_path_to_error` around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What was found, without the value: `a string`, `an integer`. Signed and
/// unsigned are both "an integer": the sign would tell something of the
/// value.
fn kind_of(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) => "a character",
        Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "null",
        Unexpected::Option => "an optional value",
        Unexpected::NewtypeStruct => "a newtype struct",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a map",
        Unexpected::Enum => "an enum",
        Unexpected::UnitVariant => "a unit variant",
        Unexpected::NewtypeVariant => "a newtype variant",
        Unexpected::TupleVariant => "a tuple variant",
        Unexpected::StructVariant => "a struct variant",
        Unexpected::Other(_) => "a value",
    }
}

/// serde's default messages, minus the values: `invalid_type` and
/// `invalid_value` say what kind of value was found; `unknown_variant`
/// lists the variants expected but not the one given (a secret pasted into
/// the wrong field, such as `fail_mode`, must not come back in the error).
/// `missing_field` and `duplicate_field` keep serde's wording: they name
/// fields of the schema, not values.
impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self(format!("invalid type: {}, expected {exp}", kind_of(&unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self(format!(
            "invalid value: {}, expected {exp}",
            kind_of(&unexp)
        ))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        if expected.is_empty() {
            return Self("unknown variant, there are no variants".to_owned());
        }
        let names: Vec<String> = expected.iter().map(|v| format!("`{v}`")).collect();
        Self(format!(
            "unknown variant, expected one of {}",
            names.join(", ")
        ))
    }
}

/// Deserializes `T` from `value` (through any wrapping such as
/// `serde_ignored` or `serde_path_to_error`, which take the deserializer).
///
/// Self-describing, like `serde_json::Value`: integers are offered as
/// `u64`, else `i64`, else as `f64`; a string deserializes an enum's unit
/// variant and a one-key map an externally tagged one; `null` is `None`
/// for an `Option` and `()` otherwise. Owned all the way down: strings are
/// moved out of the value, not copied.
pub(crate) struct ValueDeserializer(pub(crate) Value);

impl<'de> IntoDeserializer<'de, Error> for ValueDeserializer {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(ValueDeserializer));
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Value::Object(map) => {
                let mut access =
                    MapDeserializer::new(map.into_iter().map(|(k, v)| (k, ValueDeserializer(v))));
                let out = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(ValueDeserializer(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let entries = map.into_iter().map(|(k, v)| (k, ValueDeserializer(v)));
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(entries)))
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &"an enum")),
        }
    }

    /// An ignored value (an unknown field, seen by `serde_ignored` first) is
    /// dropped without being walked.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// Parses JSON text into a [`Value`], refusing a key given twice in one
/// object (which `serde_json::Value` would keep the last of, silently).
/// The message names the key and where it is, as a syntax error does.
pub(crate) fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = <Strict as de::Deserialize>::deserialize(&mut de)?.0;
    de.end()?;
    Ok(value)
}

/// A JSON value whose objects have no repeated keys. A duplicate in a config
/// is almost always a mistake (two `throttle:` blocks, the second silently
/// winning), and YAML's parser refuses them too, so JSON should not differ.
struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// Builds the [`Value`] that `serde_json` would, checking each object's keys
/// as they come (a key seen twice stops the parse at its line and column).
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The [`Unexpected`] for a value, with placeholder contents: only its kind
/// is ever shown (by [`kind_of`]), so the real value is never copied into
/// an error.
fn unexpected(v: &Value) -> Unexpected<'static> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(_) => Unexpected::Bool(false),
        Value::Number(_) => Unexpected::Unsigned(0),
        Value::String(_) => Unexpected::Str(""),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Open,
        Closed,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Doc {
        name: String,
        n: Option<u32>,
        tags: Vec<String>,
        mode: Mode,
    }

    fn parse(json: &str) -> Result<Doc, Error> {
        Doc::deserialize(ValueDeserializer(serde_json::from_str(json).unwrap()))
    }

    #[test]
    fn a_document_deserializes_as_serde_json_would() {
        let doc = parse(r#"{"name": "a", "n": 3, "tags": ["x"], "mode": "open"}"#).unwrap();
        assert_eq!(
            doc,
            Doc {
                name: "a".into(),
                n: Some(3),
                tags: vec!["x".into()],
                mode: Mode::Open
            }
        );
        let doc = parse(r#"{"name": "a", "n": null, "tags": [], "mode": "closed"}"#).unwrap();
        assert_eq!(doc.n, None);
    }

    #[test]
    fn a_key_given_twice_is_refused_with_its_place() {
        let e = parse_json("{\n \"a\": 1,\n \"a\": 2}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duplicate key `a`") && e.contains("line 3"),
            "{e}"
        );
        let v = parse_json(r#"{"a": [1, 2.5, "x", null, true], "b": {"a": 1}}"#).unwrap();
        assert_eq!(v["a"][2], "x");
        assert!(parse_json("{} x").is_err());
    }

    #[test]
    fn errors_say_what_kind_was_found_never_the_value() {
        for (json, found) in [
            (
                r#"{"name": ["secret-1"], "tags": [], "mode": "open"}"#,
                "a list",
            ),
            (
                r#"{"name": 987654321, "tags": [], "mode": "open"}"#,
                "an integer",
            ),
            (
                r#"{"name": "a", "tags": ["x", "secret-2"], "n": "secret-3", "mode": "open"}"#,
                "a string",
            ),
            (
                r#"{"name": "a", "tags": [], "n": 4294967296123, "mode": "open"}"#,
                "an integer",
            ),
            (
                r#"{"name": "a", "tags": [], "mode": "secret-4"}"#,
                "unknown variant",
            ),
            (
                r#"{"name": "a", "tags": [123456.5], "mode": "open"}"#,
                "a number",
            ),
        ] {
            let e = parse(json).unwrap_err().to_string();
            assert!(e.contains(found), "{json}: {e}");
            for leaked in ["secret", "987654321", "4294967296123", "123456"] {
                assert!(!e.contains(leaked), "{json}: {e}");
            }
        }
    }
}
