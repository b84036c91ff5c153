//! JSONPath as API Gateway evaluates it: Jayway JsonPath's dialect
//! ([jayway/JsonPath](https://github.com/json-path/JsonPath), which the
//! mapping-template reference names for `$input.json` and `$input.path`).
//!
//! - `$` the document (a path that does not start with `$` gets `$.` in
//!   front, as Jayway does), `.name`, `['name']`, `['a','b']`, `.*`, `[*]`,
//!   `[0]`, `[-1]`, `[0,2]`, `[1:3]`, `[:2]`, `[-2:]`, `..name`, `..*`,
//!   `..[0]`;
//! - filters `[?(...)]` over an array's elements (or over an object
//!   itself): `@.a`, `@['a']`, `$.a`, literals (numbers, `'text'`,
//!   `"text"`, `true`, `false`, `null`, `[lists]`), `/regex/` with flag
//!   `i`, the operators `== != < <= > >= =~ in nin subsetof anyof noneof
//!   size empty`, `&& || !` and parentheses; `[?(@.a)]` tests that `a`
//!   exists.
//! - A *definite* path (names and single indexes only) selects one value
//!   or nothing; any other (wildcards, `..`, filters, slices, several
//!   names or indexes) selects a list, empty when nothing matches.

use serde_json::Value as J;

/// A compiled path.
#[derive(Debug)]
pub(crate) struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Child(Selector),
    Descendant(Selector),
}

#[derive(Debug)]
enum Selector {
    Names(Vec<String>),
    Wildcard,
    Indexes(Vec<i64>),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug)]
enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Exists(Operand),
    Compare(Operand, Op, Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Regex,
    In,
    Nin,
    SubsetOf,
    AnyOf,
    NoneOf,
    Size,
    Empty,
}

#[derive(Debug)]
enum Operand {
    /// `@...` (relative) or `$...` (the document).
    Path {
        relative: bool,
        path: JsonPath,
    },
    /// `@.x.length()`.
    Length {
        relative: bool,
        path: JsonPath,
    },
    Lit(J),
    Regex(regex::Regex),
}

/// What a path selected.
#[derive(Debug)]
pub(crate) enum Selection<'a> {
    /// A definite path: the value, or `None` when it is not there.
    One(Option<&'a J>),
    /// An indefinite path: every match, in document order.
    Many(Vec<&'a J>),
}

/// Most nodes one selection may visit: `$..*` over a deep document visits
/// each node once per ancestor.
const MAX_VISITS: usize = 1_000_000;

impl JsonPath {
    /// Parses `path`; `Err` says what is wrong.
    pub(crate) fn parse(path: &str) -> Result<Self, String> {
        let path = path.trim();
        // Jayway reads `a.b` as `$.a.b`.
        let owned;
        let s = if path.starts_with('$') {
            path
        } else {
            owned = if path.starts_with('[') || path.starts_with('.') {
                format!("${path}")
            } else {
                format!("$.{path}")
            };
            &owned
        };
        let mut p = Lexer { s, i: 0, depth: 0 };
        let (jp, _) = p.path(false)?;
        if p.i < p.s.len() {
            return Err(format!(
                "unexpected `{}` at {} in JSONPath `{path}`",
                &p.s[p.i..p.s.ceil(p.i + 1)],
                p.i
            ));
        }
        Ok(jp)
    }

    fn definite(&self) -> bool {
        self.segments.iter().all(|s| match s {
            Segment::Child(Selector::Names(n)) => n.len() == 1,
            Segment::Child(Selector::Indexes(i)) => i.len() == 1,
            _ => false,
        })
    }

    /// Selects from `doc`; `Err` when the selection visits more than
    /// [`MAX_VISITS`] nodes.
    pub(crate) fn select<'a>(&self, doc: &'a J) -> Result<Selection<'a>, String> {
        let mut visits = 0usize;
        let nodes = self.run(doc, doc, &mut visits)?;
        if self.definite() {
            Ok(Selection::One(nodes.into_iter().next()))
        } else {
            Ok(Selection::Many(nodes))
        }
    }

    fn run<'a>(&self, root: &'a J, start: &'a J, visits: &mut usize) -> Result<Vec<&'a J>, String> {
        let mut current = vec![start];
        for seg in &self.segments {
            let mut next = Vec::new();
            for node in current {
                match seg {
                    Segment::Child(sel) => apply(sel, node, root, &mut next, visits)?,
                    Segment::Descendant(sel) => {
                        let mut all = Vec::new();
                        descendants(node, &mut all, visits)?;
                        for n in all {
                            apply(sel, n, root, &mut next, visits)?;
                        }
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }
}

fn count(visits: &mut usize) -> Result<(), String> {
    *visits += 1;
    if *visits > MAX_VISITS {
        return Err("the JSONPath selection visits too many nodes".into());
    }
    Ok(())
}

/// `node` and everything under it, in document order.
fn descendants<'a>(node: &'a J, out: &mut Vec<&'a J>, visits: &mut usize) -> Result<(), String> {
    count(visits)?;
    out.push(node);
    match node {
        J::Array(items) => {
            for i in items {
                descendants(i, out, visits)?;
            }
        }
        J::Object(m) => {
            for v in m.values() {
                descendants(v, out, visits)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn apply<'a>(
    sel: &Selector,
    node: &'a J,
    root: &'a J,
    out: &mut Vec<&'a J>,
    visits: &mut usize,
) -> Result<(), String> {
    count(visits)?;
    match sel {
        Selector::Names(names) => {
            if let J::Object(m) = node {
                out.extend(names.iter().filter_map(|n| m.get(n)));
            }
        }
        Selector::Wildcard => match node {
            J::Array(items) => out.extend(items.iter()),
            J::Object(m) => out.extend(m.values()),
            _ => {}
        },
        Selector::Indexes(idx) => {
            if let J::Array(items) = node {
                for &i in idx {
                    let len = items.len() as i64;
                    let at = if i < 0 { len + i } else { i };
                    if (0..len).contains(&at) {
                        out.push(&items[at as usize]);
                    }
                }
            }
        }
        Selector::Slice(from, to) => {
            if let J::Array(items) = node {
                let len = items.len() as i64;
                let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
                let a = from.map_or(0, norm);
                let b = to.map_or(len, norm);
                if a < b {
                    out.extend(items[a as usize..b as usize].iter());
                }
            }
        }
        Selector::Filter(f) => match node {
            J::Array(items) => {
                for item in items {
                    if f.test(item, root, visits)? {
                        out.push(item);
                    }
                }
            }
            J::Object(_) if f.test(node, root, visits)? => out.push(node),
            _ => {}
        },
    }
    Ok(())
}

/// What an operand evaluates to: a value, or nothing (a path that is not
/// there).
enum Operandv<'a> {
    Missing,
    Value(std::borrow::Cow<'a, J>),
    Regex(&'a regex::Regex),
}

impl Filter {
    fn test(&self, item: &J, root: &J, visits: &mut usize) -> Result<bool, String> {
        Ok(match self {
            Filter::Or(a, b) => a.test(item, root, visits)? || b.test(item, root, visits)?,
            Filter::And(a, b) => a.test(item, root, visits)? && b.test(item, root, visits)?,
            Filter::Not(a) => !a.test(item, root, visits)?,
            Filter::Exists(o) => !matches!(o.eval(item, root, visits)?, Operandv::Missing),
            Filter::Compare(l, op, r) => {
                let l = l.eval(item, root, visits)?;
                let r = r.eval(item, root, visits)?;
                // List operators compare every pair: that work counts.
                if matches!(op, Op::In | Op::Nin | Op::SubsetOf | Op::AnyOf | Op::NoneOf) {
                    let len = |v: &Operandv<'_>| match v {
                        Operandv::Value(v) => v.as_array().map_or(1, Vec::len),
                        _ => 1,
                    };
                    *visits = visits.saturating_add(len(&l).saturating_mul(len(&r)));
                    count(visits)?;
                }
                compare(&l, *op, &r)
            }
        })
    }
}

impl Operand {
    fn eval<'a>(
        &'a self,
        item: &'a J,
        root: &'a J,
        visits: &mut usize,
    ) -> Result<Operandv<'a>, String> {
        use std::borrow::Cow;
        Ok(match self {
            Operand::Lit(v) => Operandv::Value(Cow::Borrowed(v)),
            Operand::Regex(r) => Operandv::Regex(r),
            Operand::Path { relative, path } | Operand::Length { relative, path } => {
                let start = if *relative { item } else { root };
                let found = path.run(root, start, visits)?;
                let value = if path.definite() {
                    match found.first() {
                        Some(v) => Cow::Borrowed(*v),
                        None => return Ok(Operandv::Missing),
                    }
                } else {
                    // Copied for each item the filter tests: that work counts.
                    *visits = visits.saturating_add(found.len());
                    count(visits)?;
                    Cow::Owned(J::Array(found.into_iter().cloned().collect()))
                };
                if matches!(self, Operand::Length { .. }) {
                    match &*value {
                        J::Array(a) => Operandv::Value(Cow::Owned(J::from(a.len()))),
                        J::String(s) => Operandv::Value(Cow::Owned(J::from(s.chars().count()))),
                        J::Object(m) => Operandv::Value(Cow::Owned(J::from(m.len()))),
                        _ => Operandv::Missing,
                    }
                } else {
                    Operandv::Value(value)
                }
            }
        })
    }
}

fn num(v: &J) -> Option<f64> {
    v.as_f64()
}

fn compare(l: &Operandv<'_>, op: Op, r: &Operandv<'_>) -> bool {
    let (Operandv::Value(a), right) = (l, r) else {
        // A path that is not there matches only `!=`.
        return op == Op::Ne && !matches!(r, Operandv::Missing);
    };
    let b = match right {
        Operandv::Value(b) => b,
        Operandv::Regex(re) => {
            return op == Op::Regex && a.as_str().is_some_and(|s| re.is_match(s));
        }
        Operandv::Missing => return op == Op::Ne,
    };
    let (a, b) = (&**a, &**b);
    let eq = |x: &J, y: &J| match (num(x), num(y)) {
        (Some(p), Some(q)) => p == q,
        _ => x == y,
    };
    let ord = |x: &J, y: &J| match (x, y) {
        (J::Number(_), J::Number(_)) => num(x).partial_cmp(&num(y)),
        (J::String(p), J::String(q)) => Some(p.cmp(q)),
        _ => None,
    };
    let list = |v: &J| match v {
        J::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => eq(a, b),
        Op::Ne => !eq(a, b),
        Op::Lt => ord(a, b) == Some(Less),
        Op::Le => matches!(ord(a, b), Some(Less | Equal)),
        Op::Gt => ord(a, b) == Some(Greater),
        Op::Ge => matches!(ord(a, b), Some(Greater | Equal)),
        Op::Regex => false,
        Op::In => list(b).iter().any(|x| eq(a, x)),
        Op::Nin => !list(b).iter().any(|x| eq(a, x)),
        Op::SubsetOf => list(a).iter().all(|x| list(b).iter().any(|y| eq(x, y))),
        Op::AnyOf => list(a).iter().any(|x| list(b).iter().any(|y| eq(x, y))),
        Op::NoneOf => !list(a).iter().any(|x| list(b).iter().any(|y| eq(x, y))),
        Op::Size => {
            let n = match a {
                J::Array(v) => v.len(),
                J::String(s) => s.chars().count(),
                _ => return false,
            };
            num(b) == Some(n as f64)
        }
        Op::Empty => {
            let empty = match a {
                J::Array(v) => v.is_empty(),
                J::String(s) => s.is_empty(),
                J::Object(m) => m.is_empty(),
                _ => return false,
            };
            b.as_bool() == Some(empty)
        }
    }
}

struct Lexer<'s> {
    s: &'s str,
    i: usize,
    depth: usize,
}

trait Ceil {
    fn ceil(&self, i: usize) -> usize;
}

impl Ceil for str {
    /// The first char boundary at or after `i`.
    fn ceil(&self, mut i: usize) -> usize {
        while i < self.len() && !self.is_char_boundary(i) {
            i += 1;
        }
        i.min(self.len())
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at {} in JSONPath `{}`", self.i, self.s))
    }

    /// A path from its `$` or `@`; `(path, relative)`. In a filter,
    /// `relative_ok` lets it start with `@`.
    fn path(&mut self, relative_ok: bool) -> Result<(JsonPath, bool), String> {
        self.depth += 1;
        if self.depth > 32 {
            return self.err("nested too deeply");
        }
        let relative = if self.eat("$") {
            false
        } else if relative_ok && self.eat("@") {
            true
        } else {
            return self.err("expected `$`");
        };
        self.finish_path(relative)
    }

    fn finish_path(&mut self, relative: bool) -> Result<(JsonPath, bool), String> {
        let mut segments = Vec::new();
        loop {
            if self.eat("..") {
                if self.eat("*") {
                    segments.push(Segment::Descendant(Selector::Wildcard));
                } else if self.peek() == Some(b'[') {
                    let sel = self.bracket()?;
                    segments.push(Segment::Descendant(sel));
                } else {
                    let name = self.name()?;
                    segments.push(Segment::Descendant(Selector::Names(vec![name])));
                }
            } else if self.peek() == Some(b'.') {
                // `.length()` ends a filter operand.
                if self.s[self.i..].starts_with(".length()") {
                    break;
                }
                self.i += 1;
                if self.eat("*") {
                    segments.push(Segment::Child(Selector::Wildcard));
                } else {
                    let name = self.name()?;
                    segments.push(Segment::Child(Selector::Names(vec![name])));
                }
            } else if self.peek() == Some(b'[') {
                let sel = self.bracket()?;
                segments.push(Segment::Child(sel));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok((JsonPath { segments }, relative))
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b'.' | b'[' | b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b']' | b','
            ) {
                break;
            }
            self.i += 1;
        }
        self.i = self.s.ceil(self.i);
        if self.i == start {
            return self.err("expected a name");
        }
        Ok(self.s[start..self.i].to_owned())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().unwrap_or(b'\'');
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.s[self.i..].chars().next() else {
                return self.err("a quoted name without its closing quote");
            };
            self.i += c.len_utf8();
            if c as u32 == u32::from(q) {
                return Ok(out);
            }
            if c == '\\' {
                if let Some(n) = self.s[self.i..].chars().next() {
                    self.i += n.len_utf8();
                    out.push(n);
                }
                continue;
            }
            out.push(c);
        }
    }

    fn int(&mut self) -> Result<i64, String> {
        self.ws();
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.s[start..self.i]
            .parse()
            .or_else(|_| self.err("expected an index"))
    }

    fn bracket(&mut self) -> Result<Selector, String> {
        self.i += 1; // `[`
        self.ws();
        let sel = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Selector::Wildcard
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                loop {
                    self.ws();
                    if !self.eat(",") {
                        break;
                    }
                    self.ws();
                    names.push(self.quoted()?);
                }
                Selector::Names(names)
            }
            Some(b'?') => {
                self.i += 1;
                self.ws();
                if !self.eat("(") {
                    return self.err("a filter is written `[?(...)]`");
                }
                let f = self.or()?;
                self.ws();
                if !self.eat(")") {
                    return self.err("a filter's `(` without its `)`");
                }
                Selector::Filter(f)
            }
            Some(b':') => {
                self.i += 1;
                self.ws();
                let to = if self.peek() == Some(b']') {
                    None
                } else {
                    Some(self.int()?)
                };
                Selector::Slice(None, to)
            }
            _ => {
                let first = self.int()?;
                self.ws();
                if self.eat(":") {
                    self.ws();
                    let to = if self.peek() == Some(b']') {
                        None
                    } else {
                        Some(self.int()?)
                    };
                    Selector::Slice(Some(first), to)
                } else {
                    let mut idx = vec![first];
                    while self.eat(",") {
                        idx.push(self.int()?);
                        self.ws();
                    }
                    Selector::Indexes(idx)
                }
            }
        };
        self.ws();
        if !self.eat("]") {
            return self.err("a `[` without its `]`");
        }
        Ok(sel)
    }

    /// One more `&&` or `||` in a chain (they nest to the left).
    fn chained(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > 32 {
            return self.err("a filter nested or chained too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, String> {
        let depth = self.depth;
        let r = self.or_chain();
        self.depth = depth;
        r
    }

    fn or_chain(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        loop {
            self.ws();
            if self.eat("||") {
                self.chained()?;
                let right = self.and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Filter, String> {
        let depth = self.depth;
        let r = self.and_chain();
        self.depth = depth;
        r
    }

    fn and_chain(&mut self) -> Result<Filter, String> {
        let mut left = self.atom()?;
        loop {
            self.ws();
            if self.eat("&&") {
                self.chained()?;
                let right = self.atom()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn atom(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > 32 {
            return self.err("nested too deeply");
        }
        self.ws();
        let f = if self.peek() == Some(b'!') && !self.s[self.i..].starts_with("!=") {
            self.i += 1;
            Filter::Not(Box::new(self.atom()?))
        } else if self.peek() == Some(b'(') {
            self.i += 1;
            let f = self.or()?;
            self.ws();
            if !self.eat(")") {
                return self.err("a `(` without its `)`");
            }
            f
        } else {
            let left = self.operand()?;
            self.ws();
            let ops = [
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("<", Op::Lt),
                (">", Op::Gt),
                ("=~", Op::Regex),
                ("subsetof", Op::SubsetOf),
                ("anyof", Op::AnyOf),
                ("noneof", Op::NoneOf),
                ("nin", Op::Nin),
                ("in", Op::In),
                ("size", Op::Size),
                ("empty", Op::Empty),
            ];
            match ops.iter().find(|(t, _)| self.s[self.i..].starts_with(t)) {
                Some((t, op)) => {
                    self.i += t.len();
                    let right = self.operand()?;
                    Filter::Compare(left, *op, right)
                }
                None => Filter::Exists(left),
            }
        };
        self.depth -= 1;
        Ok(f)
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.ws();
        match self.peek() {
            Some(b'@' | b'$') => {
                let (path, relative) = self.path(true)?;
                if self.eat(".length()") {
                    Ok(Operand::Length { relative, path })
                } else {
                    Ok(Operand::Path { relative, path })
                }
            }
            Some(b'\'' | b'"') => Ok(Operand::Lit(J::String(self.quoted()?))),
            Some(b'/') => {
                self.i += 1;
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c == b'/' && self.s.as_bytes()[self.i - 1] != b'\\' {
                        break;
                    }
                    self.i += 1;
                }
                let pattern = self.s[start..self.i].to_owned();
                if !self.eat("/") {
                    return self.err("a `/regex/` without its closing `/`");
                }
                let case_insensitive = self.eat("i");
                regex::RegexBuilder::new(&pattern)
                    .case_insensitive(case_insensitive)
                    .size_limit(1 << 20)
                    .build()
                    .map(Operand::Regex)
                    .map_err(|e| format!("invalid regex `/{pattern}/` in JSONPath: {e}"))
            }
            Some(b'[' | b'{') => {
                // A JSON literal: read through its matching bracket.
                let start = self.i;
                let mut depth = 0usize;
                let mut in_str: Option<u8> = None;
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match (in_str, c) {
                        (Some(q), b'\\') if q != 0 => self.i += 1,
                        (Some(q), c) if c == q => in_str = None,
                        (Some(_), _) => {}
                        (None, b'"' | b'\'') => in_str = Some(c),
                        (None, b'[' | b'{') => depth += 1,
                        (None, b']' | b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let text = self.s[start..self.s.ceil(self.i.min(self.s.len()))].replace('\'', "\"");
                serde_json::from_str(&text)
                    .map(Operand::Lit)
                    .map_err(|_| format!("invalid literal `{text}` in JSONPath filter"))
            }
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+') {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                let word = &self.s[start..self.i];
                serde_json::from_str::<J>(word)
                    .ok()
                    .filter(|v| !v.is_object() && !v.is_array())
                    .map(Operand::Lit)
                    .map_or_else(|| self.err("expected a value"), Ok)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, doc: &J) -> J {
        match JsonPath::parse(path).unwrap().select(doc).unwrap() {
            Selection::One(v) => v.cloned().unwrap_or(J::String("<missing>".into())),
            Selection::Many(v) => J::Array(v.into_iter().cloned().collect()),
        }
    }

    #[test]
    fn jayway_paths() {
        // Cases from Jayway JsonPath's README (the store document, cut down).
        let doc = json!({"store": {"book": [
            {"category": "reference", "author": "Nigel Rees", "price": 8.95},
            {"category": "fiction", "author": "Evelyn Waugh", "price": 12.99},
            {"category": "fiction", "author": "Herman Melville", "isbn": "0-553-21311-3", "price": 8.99}
        ], "bicycle": {"color": "red", "price": 19.95}}, "expensive": 10});
        assert_eq!(sel("$.store.bicycle.color", &doc), json!("red"));
        assert_eq!(sel("store.bicycle.color", &doc), json!("red"));
        assert_eq!(sel("$['store']['bicycle']['price']", &doc), json!(19.95));
        assert_eq!(
            sel("$.store.book[*].author", &doc),
            json!(["Nigel Rees", "Evelyn Waugh", "Herman Melville"])
        );
        assert_eq!(sel("$..author", &doc).as_array().unwrap().len(), 3);
        assert_eq!(
            sel("$.store.book[-1].author", &doc),
            json!("Herman Melville")
        );
        assert_eq!(sel("$.store.book[0,1].price", &doc), json!([8.95, 12.99]));
        assert_eq!(sel("$.store.book[:2].price", &doc), json!([8.95, 12.99]));
        assert_eq!(sel("$.store.book[-2:].price", &doc), json!([12.99, 8.99]));
        assert_eq!(
            sel("$..book[?(@.isbn)].author", &doc),
            json!(["Herman Melville"])
        );
        assert_eq!(
            sel("$.store.book[?(@.price < 10)].price", &doc),
            json!([8.95, 8.99])
        );
        assert_eq!(
            sel("$..book[?(@.price <= $['expensive'])].price", &doc),
            json!([8.95, 8.99])
        );
        assert_eq!(
            sel("$..book[?(@.author =~ /.*REES/i)].price", &doc),
            json!([8.95])
        );
        assert_eq!(
            sel(
                "$..book[?(@.category == 'fiction' && @.price > 10)].author",
                &doc
            ),
            json!(["Evelyn Waugh"])
        );
        assert_eq!(
            sel("$..book[?(@.category in ['reference'])].price", &doc),
            json!([8.95])
        );
        assert_eq!(
            sel("$..book[?(!(@.price > 9))].price", &doc),
            json!([8.95, 8.99])
        );
        assert_eq!(sel("$.store.missing", &doc), json!("<missing>"));
        assert_eq!(sel("$.store.book[?(@.price > 100)]", &doc), json!([]));
        assert_eq!(sel("$", &doc), doc);
    }

    #[test]
    fn bad_paths_are_errors() {
        for p in ["$.a[", "$[?(@.a ==)]", "$.a[?(@.x =~ /(/)]", "$['a"] {
            assert!(JsonPath::parse(p).is_err(), "{p}");
        }
    }
}
