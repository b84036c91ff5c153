//! The JSON a template reads: a body with a JSON media type must parse
//! (400 `BAD_REQUEST_BODY` with serde_json's line and column otherwise), and
//! one a template selects from is parsed only when its values fit.
//!
//! Text is a poor measure of a document's memory: 10 MiB of `[[],[],...]`
//! is small as text and not as values. [`count_values`] counts the values as
//! they are read and builds nothing; [`parse_bounded`] parses only a body
//! whose values, parsed, fit in its limit.

use std::fmt;

use bytes::Bytes;

/// Whether a media type is JSON: `application/json` or any `+json` type
/// (`application/problem+json`).
fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The body parsed for a template that selects from it: an empty body is
/// `null` (a GET's template still renders); a JSON content type that does
/// not parse is an error; anything else is JSON only if it parses.
pub(super) fn parse_json_body(
    media: &str,
    body: &Bytes,
    limit: usize,
) -> Result<Option<serde_json::Value>, BodyJsonError> {
    if body.is_empty() {
        return Ok(Some(serde_json::Value::Null));
    }
    if !is_json(media) {
        return Ok(parse_bounded(body, limit).ok());
    }
    parse_bounded(body, limit).map(Some)
}

/// Why a JSON body cannot be mapped.
#[derive(Debug)]
pub(crate) enum BodyJsonError {
    /// It does not parse.
    Syntax(serde_json::Error),
    /// It holds more values than a render may hold parsed.
    TooManyValues,
}

impl fmt::Display for BodyJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(e) => write!(f, "Invalid JSON in request body: {e}"),
            Self::TooManyValues => f.write_str(
                "The JSON in the request body has more values than a mapping template may hold",
            ),
        }
    }
}

/// Parses a JSON body whose values, parsed, fit in 4 times `limit`
/// (`max_output`): each takes about 48 bytes, so the values are counted
/// first, without building them.
pub(crate) fn parse_bounded(body: &[u8], limit: usize) -> Result<serde_json::Value, BodyJsonError> {
    // Every value takes at least a byte of text: a body this short cannot
    // hold too many, and is parsed once.
    if body.len().saturating_mul(48) > limit.saturating_mul(4) {
        let count = count_values(body).map_err(BodyJsonError::Syntax)?;
        if count.saturating_mul(48) > limit.saturating_mul(4) {
            return Err(BodyJsonError::TooManyValues);
        }
    }
    serde_json::from_slice(body).map_err(BodyJsonError::Syntax)
}

/// How many values a JSON document holds, counted as they are read and
/// dropped (no document is built). It goes through `deserialize_any`, so
/// serde_json's nesting limit (128) applies as it does to a parse.
pub(super) fn count_values(body: &[u8]) -> Result<usize, serde_json::Error> {
    let count = std::cell::Cell::new(0usize);
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::de::DeserializeSeed::deserialize(Counting(&count), &mut de)?;
    de.end()?;
    Ok(count.get())
}

/// Counts the values of a JSON document as they are read and dropped.
struct Counting<'a>(&'a std::cell::Cell<usize>);

impl Counting<'_> {
    /// Counts one scalar.
    fn one<E>(&self) -> Result<(), E> {
        self.0.set(self.0.get() + 1);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Counting<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Counting<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.one()
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.one()
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.one()
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.one()
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.one()
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.one()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.set(self.0.get() + 1);
        while seq.next_element_seed(Counting(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.set(self.0.get() + 1);
        while map.next_key_seed(Counting(self.0))?.is_some() {
            map.next_value_seed(Counting(self.0))?;
        }
        Ok(())
    }
}

/// Checks that a body whose content type is JSON parses, before a template
/// renders (400 otherwise), without building it: it is parsed for real
/// only when a template selects from it.
pub(super) fn check_json_body(media: &str, body: &Bytes) -> Result<(), serde_json::Error> {
    if body.is_empty() || !is_json(media) {
        return Ok(());
    }
    count_values(body).map(|_| ())
}

/// JSON text parsed for a VTL template (`$input`'s body, a
/// `$util.parseJson` argument), within [`parse_bounded`]'s cap on values
/// (four times `limit`); `Err` says why it is not JSON, naming no source
/// (the caller does).
pub(crate) fn parse_json_for_template(
    body: &[u8],
    limit: usize,
) -> Result<serde_json::Value, String> {
    parse_bounded(body, limit).map_err(|e| match e {
        BodyJsonError::Syntax(e) => e.to_string(),
        BodyJsonError::TooManyValues => "more values than a mapping template may hold".to_owned(),
    })
}
