//! Template values: what a reference, a literal or a method call yields,
//! with the Java semantics API Gateway's Velocity gives them.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::rc::Rc;

use indexmap::IndexMap;

/// A map's entries, in insertion order (Java's `LinkedHashMap`, which is
/// what JSON objects become).
pub(crate) type Map = IndexMap<Rc<str>, Value>;

/// How a collection prints when rendered or turned into a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Java's `toString`: `[a, b]` and `{k=v, k2=v2}`.
    Java,
    /// JSON text: what a JSON array or object selected from the body
    /// prints as (json-smart's `toString`).
    Json,
}

/// A value. Lists and maps are shared and mutable, as Java's are: `#set($b
/// = $a)` then `$b.add(1)` changes `$a` too.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Java `null`; also what an undefined reference evaluates to.
    Null,
    Bool(bool),
    /// Java's `Integer` and `Long`.
    Int(i64),
    /// Java's `Double`.
    Double(f64),
    Str(Rc<str>),
    List(Rc<RefCell<Vec<Value>>>, Style),
    Map(Rc<RefCell<Map>>, Style),
    /// A `Map.Entry` from `entrySet()`: `key` and `value`.
    Entry(Rc<(Value, Value)>),
    /// A built-in object (`$input`, `$util`, `$foreach`).
    Builtin(Builtin),
}

/// The objects API Gateway and Velocity put in a template's context.
#[derive(Debug, Clone)]
pub(crate) enum Builtin {
    Input,
    Util,
    /// The innermost `#foreach`'s loop state.
    Foreach(Rc<LoopState>),
    /// A `#define` block (by index), rendered where it is used.
    Block(usize),
}

/// What `$foreach` offers inside a loop.
#[derive(Debug)]
pub(crate) struct LoopState {
    /// 0-based index of the current item.
    pub(crate) index: std::cell::Cell<usize>,
    /// How many items the loop runs over (capped at the iteration limit).
    pub(crate) len: usize,
    /// The enclosing loop's state, for `$foreach.parent`.
    pub(crate) parent: Option<Rc<LoopState>>,
}

impl Value {
    pub(crate) fn str(s: &str) -> Self {
        Value::Str(Rc::from(s))
    }

    pub(crate) fn string(s: String) -> Self {
        Value::Str(Rc::from(s))
    }

    pub(crate) fn list(items: Vec<Value>) -> Self {
        Value::List(Rc::new(RefCell::new(items)), Style::Java)
    }

    pub(crate) fn map(m: Map) -> Self {
        Value::Map(Rc::new(RefCell::new(m)), Style::Java)
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Velocity's `#if` truth: `null` and `false` are false, everything
    /// else (an empty string, zero, an empty list) is true.
    pub(crate) fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    /// The value as a number, if it is one.
    pub(crate) fn number(&self) -> Option<Num> {
        match self {
            Value::Int(i) => Some(Num::Int(*i)),
            Value::Double(d) => Some(Num::Double(*d)),
            _ => None,
        }
    }

    /// The value as Java's `toString` would write it (`null` inside a
    /// collection is `null`), cut at 16 MiB.
    pub(crate) fn to_java_string(&self) -> String {
        let mut s = String::new();
        match self {
            Value::Null => s.push_str("null"),
            Value::Int(_) | Value::Double(_) | Value::Bool(_) => scalar(self, &mut s),
            Value::Str(v) => s.push_str(v),
            Value::Builtin(b) => s.push_str(match b {
                Builtin::Input => "$input",
                Builtin::Util => "$util",
                Builtin::Foreach(_) => "$foreach",
                Builtin::Block(_) => "#define",
            }),
            _ => {
                self.java_bounded(&mut s, 16 << 20);
            }
        }
        s
    }

    /// A JSON document as a value: objects in their order, integers that
    /// fit 64 bits as integers, other numbers as doubles. As API Gateway
    /// prints what json-smart parsed, a map prints as Java's maps do and a
    /// list as JSON.
    pub(crate) fn from_json(v: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::str(s),
            J::Array(items) => Value::List(
                Rc::new(RefCell::new(items.iter().map(Value::from_json).collect())),
                Style::Json,
            ),
            J::Object(m) => Value::Map(
                Rc::new(RefCell::new(
                    m.iter()
                        .map(|(k, v)| (Rc::from(k.as_str()), Value::from_json(v)))
                        .collect(),
                )),
                Style::Java,
            ),
        }
    }

    /// Velocity's `==` as API Gateway runs it: numbers compare by value
    /// whatever their class; null equals null and `""` (API Gateway's
    /// departure); values of different classes compare by their
    /// `toString`. `budget` is the work allowed (values visited, bytes
    /// written): `None` when it runs out.
    pub(crate) fn velocity_eq(&self, other: &Value, budget: &mut usize) -> Option<bool> {
        self.eq_at(other, 0, budget)
    }

    fn eq_at(&self, other: &Value, depth: usize, budget: &mut usize) -> Option<bool> {
        *budget = budget.checked_sub(1)?;
        if depth > 64 {
            return Some(false);
        }
        Some(match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Null, Value::Str(s)) | (Value::Str(s), Value::Null) => s.is_empty(),
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Int(x), Value::Int(y)) => x == y,
            (a, b) if a.number().is_some() && b.number().is_some() => {
                a.number().map(Num::as_f64) == b.number().map(Num::as_f64)
            }
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a, _), Value::List(b, _)) => {
                if Rc::ptr_eq(a, b) {
                    return Some(true);
                }
                let (a, b) = (a.borrow(), b.borrow());
                if a.len() != b.len() {
                    return Some(false);
                }
                for (x, y) in a.iter().zip(b.iter()) {
                    if !x.java_eq_at(y, depth + 1, budget)? {
                        return Some(false);
                    }
                }
                true
            }
            (Value::Map(a, _), Value::Map(b, _)) => {
                if Rc::ptr_eq(a, b) {
                    return Some(true);
                }
                let (a, b) = (a.borrow(), b.borrow());
                if a.len() != b.len() {
                    return Some(false);
                }
                for (k, v) in a.iter() {
                    match b.get(k) {
                        Some(w) if v.java_eq_at(w, depth + 1, budget)? => {}
                        _ => return Some(false),
                    }
                }
                true
            }
            (a, b) => {
                let (mut x, mut y) = (String::new(), String::new());
                if !a.java_bounded(&mut x, *budget) || !b.java_bounded(&mut y, *budget) {
                    return None;
                }
                *budget = budget.checked_sub(x.len() + y.len())?;
                x == y
            }
        })
    }

    /// Java's `equals` (an `Integer` never equals a `Double`, null only
    /// null), within `budget` as [`Value::velocity_eq`].
    pub(crate) fn java_equals(&self, other: &Value, budget: &mut usize) -> Option<bool> {
        self.java_eq_at(other, 0, budget)
    }

    fn java_eq_at(&self, other: &Value, depth: usize, budget: &mut usize) -> Option<bool> {
        match (self, other) {
            (Value::Null, b) => Some(b.is_null()),
            (_, Value::Null) => Some(false),
            (Value::Int(_), Value::Double(_)) | (Value::Double(_), Value::Int(_)) => Some(false),
            (Value::Str(_), b) if !matches!(b, Value::Str(_)) => Some(false),
            (a, Value::Str(_)) if !matches!(a, Value::Str(_)) => Some(false),
            (a, b) => a.eq_at(b, depth, budget),
        }
    }

    /// Java's `toString` into `out`, false (stopped) past `limit` bytes or
    /// 64 levels: a list holding itself twice would print for ever. A
    /// collection holding itself directly prints as Java prints it.
    pub(crate) fn java_bounded(&self, out: &mut String, limit: usize) -> bool {
        self.bounded_at(out, limit, 0, false)
    }

    fn bounded_at(&self, out: &mut String, limit: usize, depth: usize, json: bool) -> bool {
        if out.len() > limit || depth > 64 {
            return false;
        }
        match self {
            Value::List(items, style) => {
                let json = json || *style == Style::Json;
                out.push('[');
                for (i, x) in items.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push_str(if json { "," } else { ", " });
                    }
                    if !json && matches!(x, Value::List(inner, _) if Rc::ptr_eq(inner, items)) {
                        out.push_str("(this Collection)");
                    } else if !x.bounded_at(out, limit, depth + 1, json) {
                        return false;
                    }
                }
                out.push(']');
            }
            Value::Map(m, style) => {
                let json = json || *style == Style::Json;
                out.push('{');
                for (i, (k, x)) in m.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push_str(if json { "," } else { ", " });
                    }
                    if json {
                        json_string(k, out);
                        out.push(':');
                    } else {
                        out.push_str(k);
                        out.push('=');
                    }
                    if !json && matches!(x, Value::Map(inner, _) if Rc::ptr_eq(inner, m)) {
                        out.push_str("(this Map)");
                    } else if !x.bounded_at(out, limit, depth + 1, json) {
                        return false;
                    }
                }
                out.push('}');
            }
            Value::Entry(e) => {
                if json {
                    out.push('{');
                    json_string(&e.0.to_java_string(), out);
                    out.push(':');
                } else if !e.0.bounded_at(out, limit, depth + 1, false) {
                    return false;
                } else {
                    out.push('=');
                }
                if !e.1.bounded_at(out, limit, depth + 1, json) {
                    return false;
                }
                if json {
                    out.push('}');
                }
            }
            Value::Str(s) if json => json_string(s, out),
            Value::Null if json => out.push_str("null"),
            Value::Double(d) if json && !d.is_finite() => out.push_str("null"),
            Value::Builtin(_) if json => out.push_str("null"),
            other => out.push_str(&other.to_java_string()),
        }
        out.len() <= limit
    }
}

/// Writes a number or boolean as Java prints it.
pub(crate) fn scalar(v: &Value, out: &mut String) {
    match v {
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::Double(d) => java_double(*d, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        _ => {}
    }
}

/// A number, for arithmetic and comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    Double(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Double(d) => d,
        }
    }
}

/// Writes `s` as a JSON string, escaping as json-smart does: `"`, `\`,
/// `/` and control characters.
pub(crate) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Java's `Double.toString`: the shortest digits that read back as the
/// same double; plain notation from 10^-3 up to (not including) 10^7,
/// otherwise `d.dddE±n`; always at least one digit after the point
/// (`1.0`, `1.0E7`, `1.0E-4`), `NaN`, `Infinity`.
pub(crate) fn java_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
        return;
    }
    if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if d == 0.0 {
        out.push_str(if d.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: `1.2345e7`.
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if d < 0.0 {
        out.push('-');
    }
    if (-3..7).contains(&exp) {
        if exp >= 0 {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        let _ = write!(out, "E{exp}");
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_java_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> String {
        let mut s = String::new();
        java_double(x, &mut s);
        s
    }

    #[test]
    fn doubles_print_as_java_prints_them() {
        // Java's Double.toString (JDK 19+, shortest digits).
        assert_eq!(d(1.0), "1.0");
        assert_eq!(d(249.99), "249.99");
        assert_eq!(d(-0.5), "-0.5");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(1234567.0), "1234567.0");
        assert_eq!(d(12345678.0), "1.2345678E7");
        assert_eq!(d(1e21), "1.0E21");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(d(100.0), "100.0");
    }

    #[test]
    fn collections_print_as_api_gateway_prints_them() {
        let json: serde_json::Value = serde_json::json!({"a": [1, "x", null], "b": {"c": 2.5}});
        // A map from JSON prints as Java's, a list as JSON (API Gateway's
        // recorded output: `{foo=[{"nested":"bar"}]}`).
        assert_eq!(
            Value::from_json(&json).to_java_string(),
            r#"{a=[1,"x",null], b={c=2.5}}"#
        );
        let list = serde_json::json!([{"foo": "bar"}]);
        assert_eq!(
            Value::from_json(&list).to_java_string(),
            r#"[{"foo":"bar"}]"#
        );
    }
}
