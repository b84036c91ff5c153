//! Bounding the memory of a template render, not only its output.
//!
//! minijinja's fuel counts instructions and the output writer counts bytes
//! written, but nothing bounds the values a template builds along the way:
//! `{% set ns.s = ns.s ~ ns.s %}` in a loop of 26 doubles a string to 671 MB
//! in a few hundred instructions. minijinja has no hook on its operators, so
//! tollgate bounds them at compile time, by rewriting the template's source
//! (parsed with minijinja's own parser):
//!
//! - `a ~ b` becomes `__tollgate_concat(a, b)`, which measures both sides
//!   and refuses a result over the limit before building it;
//! - `a + b` becomes `__tollgate_add(a, b)`, likewise;
//! - each item of a list or map literal and each argument of a filter or a
//!   call passes through `__tollgate_sized`, which refuses a value whose
//!   rendered size is over the limit (a string's length; a list's or a map's
//!   items, counted without building them);
//! - a filter's input passes through `__tollgate_input`, which refuses an
//!   input whose output could pass the limit (six times an HTML-escaped
//!   input, a string exploded into more than 100,000 items), and the result
//!   of a call or of a filter that may grow through `__tollgate_output`;
//! - the long strings (64 KiB and more) a render holds are accounted for while
//!   they live, and may add up to 4 times the limit; measuring has a budget
//!   of 10 million item visits a render, as minijinja's fuel does not count it;
//! - `a * b` becomes `__tollgate_mul(a, b)`, which refuses a repeated string
//!   over the limit before building it;
//! - filters whose output grows with an argument (`join`, `replace`,
//!   `indent`, `tojson`, `format`, `batch`, `slice`) are replaced by versions
//!   that compute their output's size first.
//!
//! So no value is ever built larger than about twice the limit
//! (`mapping_limits.max_output`). What cannot be bounded this way is refused
//! when the template is compiled: block captures (`{% set x %}…{% endset %}`,
//! `{% filter %}`), macros and `{% call %}`, recursive loops, and templates
//! that include or extend others. Each of those accumulates output in a
//! buffer of minijinja's own that the limit never sees.

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{Span, WhitespaceConfig, parse};
use minijinja::syntax::SyntaxConfig;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use minijinja::value::{Kwargs, Object, Rest, StringInput, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Expression, State};

/// The most items a list or map a template builds may hold: minijinja's
/// own cap on `range`.
const MAX_ITEMS: usize = 100_000;
/// How deep a value is measured; a deeper one (or one that holds itself)
/// counts as over the limit.
const MAX_DEPTH: usize = 64;

/// Why a template cannot be bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unbounded {
    /// minijinja's parser refused it: the environment reports the error.
    Syntax,
    /// A construct that cannot be bounded, on this line.
    Unsupported { line: usize, what: &'static str },
}

/// Rewrites `source` so that every operation that can grow a value checks
/// its operands first (see the module docs).
// `SyntaxConfig` is a unit struct unless minijinja's `custom_syntax` feature
// is on (another crate in the build may turn it on): `default()` works for both.
#[allow(clippy::default_constructed_unit_structs)]
pub(crate) fn rewrite(source: &str) -> Result<String, Unbounded> {
    let ast = parse(
        source,
        "template",
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    )
    .map_err(|_| Unbounded::Syntax)?;
    let mut r = Rewriter {
        src: source,
        edits: Vec::new(),
    };
    r.stmt(&ast)?;
    let mut out = String::with_capacity(source.len() + r.edits.len() * 24);
    let mut pos = 0;
    for (start, end, text) in r.edits {
        out.push_str(&source[pos..start]);
        out.push_str(&text);
        pos = end;
    }
    out.push_str(&source[pos..]);
    Ok(out)
}

struct Rewriter<'s> {
    src: &'s str,
    /// Top-level expressions replaced: (start, end, new text), in order.
    edits: Vec<(usize, usize, String)>,
}

/// How a child expression is written back.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Plain,
    /// Through `__tollgate_sized`.
    Sized,
    /// A filter's input, through `__tollgate_input(VALUE, "FILTER")`.
    Input(&'a str),
}

fn unsupported(span: Span, what: &'static str) -> Unbounded {
    Unbounded::Unsupported {
        line: usize::from(span.start_line),
        what,
    }
}

impl Rewriter<'_> {
    fn stmts(&mut self, stmts: &[Stmt<'_>]) -> Result<(), Unbounded> {
        stmts.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) -> Result<(), Unbounded> {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.top(&e.expr),
            Stmt::EmitRaw(_) => Ok(()),
            Stmt::ForLoop(f) => {
                if f.recursive {
                    return Err(unsupported(f.span(), "a recursive loop"));
                }
                self.target(&f.target)?;
                self.top(&f.iter)?;
                if let Some(e) = &f.filter_expr {
                    self.top(e)?;
                }
                self.stmts(&f.body)?;
                self.stmts(&f.else_body)
            }
            Stmt::IfCond(i) => {
                self.top(&i.expr)?;
                self.stmts(&i.true_body)?;
                self.stmts(&i.false_body)
            }
            Stmt::WithBlock(w) => {
                for (target, expr) in &w.assignments {
                    self.target(target)?;
                    self.top(expr)?;
                }
                self.stmts(&w.body)
            }
            Stmt::Set(s) => {
                self.target(&s.target)?;
                self.top(&s.expr)
            }
            Stmt::AutoEscape(a) => {
                self.top(&a.enabled)?;
                self.stmts(&a.body)
            }
            Stmt::SetBlock(s) => Err(unsupported(
                s.span(),
                "a block set ({% set x %}...{% endset %})",
            )),
            Stmt::FilterBlock(f) => Err(unsupported(f.span(), "a filter block")),
            Stmt::Do(d) => {
                let text = self.call(&d.call, d.call.span())?;
                let (start, end) = self.extent_of_call(&d.call, d.call.span());
                self.edits.push((start, end, text));
                Ok(())
            }
            // Macros, call blocks, includes, imports, extends and blocks,
            // and whatever a later minijinja adds.
            _ => Err(Unbounded::Unsupported {
                line: stmt_line(stmt),
                what: "a macro, call block, include, import, extends or block",
            }),
        }
    }

    /// Assignment targets are written back as they are, but may not name
    /// tollgate's own functions.
    fn target(&mut self, target: &Expr<'_>) -> Result<(), Unbounded> {
        self.check_names(target)
    }

    fn check_names(&self, expr: &Expr<'_>) -> Result<(), Unbounded> {
        if let Expr::Var(v) = expr
            && v.id.starts_with("__tollgate")
        {
            return Err(unsupported(v.span(), "a name starting with __tollgate"));
        }
        for (child, _) in children(expr) {
            self.check_names(child)?;
        }
        Ok(())
    }

    /// A statement's expression: replaced whole by its rewritten text.
    fn top(&mut self, expr: &Expr<'_>) -> Result<(), Unbounded> {
        self.check_names(expr)?;
        let (start, end) = self.extent(expr);
        let text = self.expr(expr)?;
        if text != self.src[start..end] {
            self.edits.push((start, end, text));
        }
        Ok(())
    }

    fn expr(&mut self, expr: &Expr<'_>) -> Result<String, Unbounded> {
        match expr {
            Expr::BinOp(b)
                if matches!(b.op, BinOpKind::Mul | BinOpKind::Concat | BinOpKind::Add) =>
            {
                let f = match b.op {
                    BinOpKind::Mul => "__tollgate_mul",
                    BinOpKind::Add => "__tollgate_add",
                    _ => "__tollgate_concat",
                };
                Ok(format!(
                    "{f}({}, {})",
                    self.expr(&b.left)?,
                    self.expr(&b.right)?
                ))
            }
            // A call's or a growing filter's result is accounted for.
            Expr::Call(c) => Ok(format!("__tollgate_output({})", self.call(c, c.span())?)),
            Expr::Filter(f) if !SHRINKING.contains(&f.name) => {
                let kids = children(expr);
                let text = self.splice(self.extent(expr), &kids)?;
                Ok(format!("__tollgate_output({text})"))
            }
            _ => {
                let kids = children(expr);
                self.splice(self.extent(expr), &kids)
            }
        }
    }

    fn call(&mut self, call: &ast::Call<'_>, span: Span) -> Result<String, Unbounded> {
        let mut kids = vec![(&call.expr, Mode::Plain)];
        kids.extend(call.args.iter().map(|a| (arg_expr(a), Mode::Sized)));
        let extent = self.extent_of_call(call, span);
        self.splice(extent, &kids)
    }

    /// The node's text from `extent`, each child rewritten in place.
    fn splice(
        &mut self,
        (start, end): (usize, usize),
        kids: &[(&Expr<'_>, Mode<'_>)],
    ) -> Result<String, Unbounded> {
        let mut kids: Vec<_> = kids.iter().map(|&(k, m)| (self.extent(k), k, m)).collect();
        kids.sort_by_key(|(e, _, _)| e.0);
        let mut out = String::new();
        let mut pos = start;
        for ((ks, ke), kid, mode) in kids {
            out.push_str(&self.src[pos..ks]);
            let text = self.expr(kid)?;
            match mode {
                Mode::Plain => out.push_str(&text),
                Mode::Sized => {
                    out.push_str("__tollgate_sized(");
                    out.push_str(&text);
                    out.push(')');
                }
                Mode::Input(filter) => {
                    out.push_str("__tollgate_input(");
                    out.push_str(&text);
                    out.push_str(", \"");
                    out.push_str(filter);
                    out.push_str("\")");
                }
            }
            pos = ke;
        }
        out.push_str(&self.src[pos..end]);
        Ok(out)
    }

    fn extent_of_call(&self, call: &ast::Call<'_>, span: Span) -> (usize, usize) {
        let mut kids = vec![&call.expr];
        kids.extend(call.args.iter().map(arg_expr));
        self.extent_with(span, &kids)
    }

    /// Where an expression's text starts and ends in the source: its own
    /// span joined with its children's, and the parentheses that group its
    /// first operand when its own span starts after that operand (a filter's
    /// span starts at its name, an attribute's at the attribute).
    fn extent(&self, expr: &Expr<'_>) -> (usize, usize) {
        let kids: Vec<&Expr<'_>> = children(expr).into_iter().map(|(k, _)| k).collect();
        match expr {
            Expr::Call(c) => self.extent_of_call(c, c.span()),
            _ => self.extent_with(expr.span(), &kids),
        }
    }

    fn extent_with(&self, span: Span, kids: &[&Expr<'_>]) -> (usize, usize) {
        let own = (span.start_offset as usize, span.end_offset as usize);
        let mut ext = own;
        let mut first: Option<(usize, usize)> = None;
        for k in kids {
            let e = self.extent(k);
            ext.0 = ext.0.min(e.0);
            ext.1 = ext.1.max(e.1);
            if first.is_none_or(|f| e.0 < f.0) {
                first = Some(e);
            }
        }
        if let Some((fs, fe)) = first
            && fs < own.0
            && fe <= own.0
        {
            let closers = self.src[fe..own.0].matches(')').count();
            let mut start = ext.0;
            for _ in 0..closers {
                let before = self.src[..start].trim_end();
                if !before.ends_with('(') {
                    break;
                }
                start = before.len() - 1;
            }
            ext.0 = start;
        }
        ext
    }
}

fn arg_expr<'a, 'b>(arg: &'b CallArg<'a>) -> &'b Expr<'a> {
    match arg {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => e,
    }
}

/// An expression's child expressions, and how each is written back.
fn children<'b, 'a>(expr: &'b Expr<'a>) -> Vec<(&'b Expr<'a>, Mode<'a>)> {
    use Mode::{Input, Plain, Sized};
    match expr {
        Expr::Var(_) | Expr::Const(_) => Vec::new(),
        Expr::Slice(s) => [
            Some(&s.expr),
            s.start.as_ref(),
            s.stop.as_ref(),
            s.step.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|e| (e, Plain))
        .collect(),
        Expr::UnaryOp(u) => vec![(&u.expr, Plain)],
        Expr::BinOp(b) => vec![(&b.left, Plain), (&b.right, Plain)],
        Expr::Compare(c) => std::iter::once(&c.expr)
            .chain(c.ops.iter().map(|o| &o.expr))
            .map(|e| (e, Plain))
            .collect(),
        Expr::IfExpr(i) => [
            Some(&i.test_expr),
            Some(&i.true_expr),
            i.false_expr.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|e| (e, Plain))
        .collect(),
        Expr::Filter(f) => f
            .expr
            .iter()
            .map(|e| (e, Input(f.name)))
            .chain(f.args.iter().map(|a| (arg_expr(a), Sized)))
            .collect(),
        Expr::Test(t) => std::iter::once(&t.expr)
            .chain(t.args.iter().map(arg_expr))
            .map(|e| (e, Plain))
            .collect(),
        Expr::GetAttr(g) => vec![(&g.expr, Plain)],
        Expr::GetItem(g) => vec![(&g.expr, Plain), (&g.subscript_expr, Plain)],
        Expr::Call(c) => std::iter::once((&c.expr, Plain))
            .chain(c.args.iter().map(|a| (arg_expr(a), Sized)))
            .collect(),
        Expr::List(l) => l.items.iter().map(|e| (e, Sized)).collect(),
        Expr::Map(m) => m
            .keys
            .iter()
            .chain(m.values.iter())
            .map(|e| (e, Sized))
            .collect(),
    }
}

fn stmt_line(stmt: &Stmt<'_>) -> usize {
    // Every statement is spanned; the catch-all arm has no typed access, so
    // the line is read from its debug form's trailing span when present.
    let shown = format!("{stmt:?}");
    shown
        .rsplit_once(" @ ")
        .and_then(|(_, span)| span.split(':').next()?.parse().ok())
        .unwrap_or(0)
}

/// The most item visits a render may spend measuring values: measuring is
/// not counted by minijinja's fuel, so it has a budget of its own.
const MAX_VISITS: usize = 10_000_000;
/// What the strings a render keeps alive may add up to, as a multiple of
/// `max_output`: each value is bounded by the limit, and their sum by this.
pub(crate) const LIVE_FACTOR: usize = 4;
/// Strings at least this long are accounted for while they live.
const KEEP_MIN: usize = 64 << 10;

/// Filters whose output is never larger than their input (a part of it, a
/// number, a reordering): neither is measured again, unless the input is a
/// string they would explode into items.
const SHRINKING: &[&str] = &[
    "length",
    "count",
    "first",
    "last",
    "default",
    "d",
    "int",
    "float",
    "abs",
    "round",
    "bool",
    "attr",
    "trim",
    "safe",
    "min",
    "max",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "reverse",
    "sort",
    "unique",
    "dictsort",
];

/// Filters that turn a string into a list of its characters or lines.
const ITEMIZING: &[&str] = &[
    "list",
    "lines",
    "split",
    "sort",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "unique",
    "batch",
    "slice",
    "map",
    "groupby",
    "items",
    "dictsort",
    "chain",
    "zip",
    "min",
    "max",
];

/// How much larger than its input a filter's output may be (HTML-escaping
/// `"` takes six bytes): the input may be at most the limit divided by this.
/// `tojson` computes its exact length instead.
fn expansion(filter: &str) -> usize {
    match filter {
        "escape" | "e" => 6,
        "pprint" | "urlencode" | "upper" | "lower" | "title" | "capitalize" => 4,
        _ => 1,
    }
}

/// What one render spends: the long strings it keeps alive and the items
/// it visits while measuring.
#[derive(Debug)]
struct Budget {
    /// Long strings tollgate built or saw built; each is dropped from here
    /// once the template no longer holds it.
    live: Mutex<Vec<Arc<str>>>,
    visits: AtomicUsize,
    limit: usize,
}

impl Object for Budget {}

impl Budget {
    fn of(state: &State<'_, '_>, limit: usize) -> Arc<Self> {
        state.get_or_set_temp_object("__tollgate_budget", || Self {
            live: Mutex::new(Vec::new()),
            visits: AtomicUsize::new(0),
            limit,
        })
    }

    /// Spends `visits` of the render's measuring budget.
    fn spend(&self, visits: usize) -> Result<(), Error> {
        if self.visits.fetch_add(visits, Ordering::Relaxed) + visits > MAX_VISITS {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a render measured more values than the mapping's budget allows",
            ));
        }
        Ok(())
    }

    /// The rendered size of `v`, at most the limit, its visits spent.
    fn size(&self, v: &Value) -> Result<usize, Error> {
        let mut visits = 0;
        let n = measure(v, self.limit, 0, &mut visits);
        self.spend(visits)?;
        n.ok_or_else(too_large)
    }

    /// Hands `s` to the template, accounting for it while it lives: the
    /// long strings alive may add up to `LIVE_FACTOR` times the limit.
    fn keep(&self, s: &str) -> Result<Value, Error> {
        if s.len() > self.limit {
            return Err(too_large());
        }
        if s.len() < KEEP_MIN {
            return Ok(Value::from(s));
        }
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        // Ours is the last reference to a string the template let go of.
        live.retain(|kept| Arc::strong_count(kept) > 1);
        let held: usize = live.iter().map(|kept| kept.len()).sum();
        if held.saturating_add(s.len()) > self.limit.saturating_mul(LIVE_FACTOR) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "the values a render holds would add up past the mapping's budget \
                 (4 times mapping_limits.max_output)",
            ));
        }
        let kept: Arc<str> = Arc::from(s);
        live.push(kept.clone());
        Ok(Value::from(kept))
    }
}

/// The size a value takes once rendered, counted without rendering it, the
/// items visited added to `visits`; `None` when it is over `limit` (or
/// nested past [`MAX_DEPTH`], or holds more than [`MAX_ITEMS`] items).
fn measure(v: &Value, limit: usize, depth: usize, visits: &mut usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let n = match v.kind() {
        ValueKind::String => v.as_str().map_or(0, str::len),
        ValueKind::Bytes => v.as_bytes().map_or(0, <[u8]>::len),
        ValueKind::Seq | ValueKind::Iterable => {
            if v.len().is_some_and(|n| n > MAX_ITEMS) {
                return None;
            }
            let mut total = 2usize;
            let iter = v.try_iter().ok()?;
            for (i, item) in iter.enumerate() {
                *visits += 1;
                if i >= MAX_ITEMS {
                    return None;
                }
                total = total.checked_add(measure(&item, limit, depth + 1, visits)? + 2)?;
                if total > limit {
                    return None;
                }
            }
            total
        }
        ValueKind::Map => {
            if v.len().is_some_and(|n| n > MAX_ITEMS) {
                return None;
            }
            let mut total = 2usize;
            match v.try_iter() {
                Ok(keys) => {
                    for (i, key) in keys.enumerate() {
                        *visits += 1;
                        if i >= MAX_ITEMS {
                            return None;
                        }
                        let item = v.get_item(&key).unwrap_or_default();
                        let pair = measure(&key, limit, depth + 1, visits)?
                            .checked_add(measure(&item, limit, depth + 1, visits)?)?;
                        total = total.checked_add(pair + 4)?;
                        if total > limit {
                            return None;
                        }
                    }
                    total
                }
                // An object that does not list its contents (tollgate's
                // `input`, `util`): a small value.
                Err(_) => 64,
            }
        }
        // Numbers, booleans, none, undefined, plain objects.
        _ => 40,
    };
    (n <= limit).then_some(n)
}

/// The length of `v` as JSON, with room for an indent of up to 16 on each
/// line, counted without writing it.
fn json_len(v: &Value, limit: usize, depth: usize, visits: &mut usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let n = match v.kind() {
        ValueKind::String => v.as_str().unwrap_or("").bytes().fold(2usize, |n, b| {
            n + match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
                b'<' | b'>' | b'&' | b'\'' => 6,
                b if b < 0x20 => 6,
                _ => 1,
            }
        }),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
            let is_map = v.kind() == ValueKind::Map;
            let mut total = 2usize;
            for (i, item) in v.try_iter().ok()?.enumerate() {
                *visits += 1;
                if i >= MAX_ITEMS {
                    return None;
                }
                let mut n = json_len(&item, limit, depth + 1, visits)? + 1;
                if is_map {
                    let value = v.get_item(&item).unwrap_or_default();
                    n += json_len(&value, limit, depth + 1, visits)? + 1;
                }
                total = total.checked_add(n + 17)?;
                if total > limit {
                    return None;
                }
            }
            total
        }
        _ => 40,
    };
    (n <= limit).then_some(n)
}

fn too_large() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "a value would grow past the mapping's size limit (mapping_limits.max_output)",
    )
}

fn check(n: Option<usize>, limit: usize) -> Result<(), Error> {
    match n {
        Some(n) if n <= limit => Ok(()),
        _ => Err(too_large()),
    }
}

/// Concatenates two values as minijinja's `~` does, the result measured
/// before it is built and accounted for while it lives.
fn concat(state: &State<'_, '_>, a: &Value, b: &Value, limit: usize) -> Result<Value, Error> {
    let budget = Budget::of(state, limit);
    let len = budget.size(a)?.checked_add(budget.size(b)?);
    check(len, limit)?;
    let mut out = String::with_capacity(len.unwrap_or(0));
    std::fmt::Write::write_fmt(&mut out, format_args!("{a}{b}"))
        .map_err(|_| Error::new(ErrorKind::WriteFailure, "concatenation failed"))?;
    budget.keep(&out)
}

/// A filter's or call's result, accounted for: a long string while it
/// lives, a list or map measured.
fn output(state: &State<'_, '_>, v: Value, limit: usize) -> Result<Value, Error> {
    let budget = Budget::of(state, limit);
    match v.as_str() {
        Some(s) if s.len() >= KEEP_MIN => budget.keep(s),
        Some(_) => Ok(v),
        None => {
            if matches!(
                v.kind(),
                ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
            ) {
                budget.size(&v)?;
            }
            Ok(v)
        }
    }
}

/// Registers the functions the rewritten templates call and the bounded
/// filters, for values of at most `limit` bytes and renders that build at
/// most `BUILD_FACTOR` times that.
pub(crate) fn register(env: &mut Environment<'static>, limit: usize) {
    env.add_function(
        "__tollgate_sized",
        move |state: &State<'_, '_>, v: Value| Budget::of(state, limit).size(&v).map(|_| v),
    );
    env.add_function(
        "__tollgate_input",
        move |state: &State<'_, '_>, v: Value, filter: &str| {
            if let Some(text) = v.as_str()
                && ITEMIZING.contains(&filter)
                && text.chars().nth(MAX_ITEMS).is_some()
            {
                return Err(too_large());
            }
            if !SHRINKING.contains(&filter) {
                let n = Budget::of(state, limit).size(&v)?;
                check(n.checked_mul(expansion(filter)), limit)?;
            }
            Ok(v)
        },
    );
    env.add_function(
        "__tollgate_output",
        move |state: &State<'_, '_>, v: Value| output(state, v, limit),
    );
    env.add_function(
        "__tollgate_concat",
        move |state: &State<'_, '_>, a: Value, b: Value| concat(state, &a, &b, limit),
    );
    env.add_function(
        "__tollgate_add",
        move |state: &State<'_, '_>, a: Value, b: Value| {
            if a.as_str().is_some() && b.as_str().is_some() {
                return concat(state, &a, &b, limit);
            }
            // Numbers, or lists (lazy in minijinja): each side measured.
            let budget = Budget::of(state, limit);
            budget.size(&a)?;
            budget.size(&b)?;
            binary(BinOp::Add, &a, &b)
        },
    );
    env.add_function(
        "__tollgate_mul",
        move |state: &State<'_, '_>, a: Value, b: Value| {
            let budget = Budget::of(state, limit);
            let repeated = match (a.as_str(), b.as_str()) {
                (Some(s), None) => Some((s, &b)),
                (None, Some(s)) => Some((s, &a)),
                _ => None,
            };
            if let Some((text, n)) = repeated
                && let Some(n) = n.as_usize()
            {
                check(text.len().checked_mul(n), limit)?;
                return budget.keep(&text.repeat(n));
            }
            let product = binary(BinOp::Mul, &a, &b)?;
            if product.as_object().is_some() {
                // A list repeated is lazy in minijinja: measured (not built) here.
                budget.size(&product)?;
            }
            Ok(product)
        },
    );
    env.add_filter(
        "join",
        move |state: &State<'_, '_>, value: &Value, joiner: Option<StringInput<'_>>| {
            let budget = Budget::of(state, limit);
            let sep = joiner.as_ref().map_or(0, |j| j.as_str().len());
            let count = value.len().unwrap_or(0);
            let separators = sep.saturating_mul(count);
            check(budget.size(value)?.checked_add(separators), limit)?;
            minijinja::filters::join(state, value, joiner)
        },
    );
    env.add_filter(
        "replace",
        move |state: &State<'_, '_>,
              value: StringInput<'_>,
              from: StringInput<'_>,
              to: StringInput<'_>| {
            let (text, old) = (value.as_str(), from.as_str());
            let hits = if old.is_empty() {
                text.chars().count() + 1
            } else {
                text.matches(old).count()
            };
            let grown = hits
                .checked_mul(to.as_str().len())
                .and_then(|grow| grow.checked_add(text.len()));
            check(grown, limit)?;
            minijinja::filters::replace(state, value, from, to)
        },
    );
    env.add_filter(
        "indent",
        move |value: StringInput<'_>,
              width: Option<usize>,
              first: Option<bool>,
              blank: Option<bool>,
              kwargs: Kwargs| {
            let lines = value.as_str().lines().count() + 1;
            let grown = width
                .unwrap_or(4)
                .checked_mul(lines)
                .and_then(|grow| grow.checked_add(value.as_str().len()));
            check(grown, limit)?;
            minijinja::filters::indent(value, width, first, blank, kwargs)
        },
    );
    env.add_filter(
        "tojson",
        move |state: &State<'_, '_>, value: &Value, indent: Option<Value>, kwargs: Kwargs| {
            let wide = |i: &Value| {
                i.as_usize().is_some_and(|n| n > 16) || i.as_str().is_some_and(|s| s.len() > 16)
            };
            let named: Option<Value> = kwargs.peek("indent")?;
            if indent.as_ref().is_some_and(wide) || named.as_ref().is_some_and(wide) {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent is at most 16",
                ));
            }
            let mut visits = 0;
            let len = json_len(value, limit, 0, &mut visits);
            Budget::of(state, limit).spend(visits)?;
            check(len, limit)?;
            minijinja::filters::tojson(value, indent, kwargs)
        },
    );
    env.add_filter(
        "format",
        move |state: &State<'_, '_>, format: &Value, args: Rest<Value>| {
            if let Some(f) = format.as_str()
                && widest_field(f) > limit
            {
                return Err(too_large());
            }
            minijinja::filters::format(state, format, args)
        },
    );
    env.add_filter(
        "batch",
        move |state: &State<'_, '_>, value: Value, count: usize, fill: Option<Value>| {
            if count > MAX_ITEMS {
                return Err(too_large());
            }
            minijinja::filters::batch(state, value, count, fill)
        },
    );
    env.add_filter(
        "slice",
        move |state: &State<'_, '_>, value: Value, count: usize, fill: Option<Value>| {
            if count > MAX_ITEMS {
                return Err(too_large());
            }
            minijinja::filters::slice(state, value, count, fill)
        },
    );
}

/// The widest width or precision in a printf-style format string.
fn widest_field(format: &str) -> usize {
    let mut widest = 0usize;
    let mut digits = 0usize;
    let mut in_spec = false;
    for c in format.chars() {
        if c == '%' {
            in_spec = !in_spec;
            digits = 0;
            continue;
        }
        if !in_spec {
            continue;
        }
        if let Some(d) = c.to_digit(10) {
            digits = digits.saturating_mul(10).saturating_add(d as usize);
            widest = widest.max(digits);
        } else if c == '.' || "-+ #0".contains(c) {
            digits = 0;
        } else {
            in_spec = false;
        }
    }
    widest
}

/// An operator minijinja evaluates for tollgate's checked versions.
#[derive(Clone, Copy)]
enum BinOp {
    Add,
    Mul,
}

/// `a + b` or `a * b` as minijinja computes it (numbers, lists), evaluated
/// by minijinja itself; repeated strings are checked by the caller.
fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, Error> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    static ADD: OnceLock<Option<Expression<'static, 'static>>> = OnceLock::new();
    static MUL: OnceLock<Option<Expression<'static, 'static>>> = OnceLock::new();
    let env = ENV.get_or_init(Environment::new);
    let expr = match op {
        BinOp::Add => ADD.get_or_init(|| env.compile_expression("a + b").ok()),
        BinOp::Mul => MUL.get_or_init(|| env.compile_expression("a * b").ok()),
    };
    match expr {
        Some(e) => e.eval(minijinja::context! { a => a, b => b }),
        None => Err(Error::new(
            ErrorKind::InvalidOperation,
            "operator unavailable",
        )),
    }
}

#[cfg(test)]
#[path = "bound_tests.rs"]
mod tests;
