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
//! - each operand of `+`, each item of a list or map literal, each filter's
//!   input (but for filters that only shrink: `length`, `first`, `default`,
//!   ...) and arguments, and each call's arguments pass through
//!   `__tollgate_sized`, which refuses a value whose rendered size is over the
//!   limit (a string's length; a list's or a map's items, counted without
//!   building them);
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
use minijinja::value::{Kwargs, Rest, StringInput, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// The most items a list or map a template builds may hold: minijinja's
/// own cap on `range`.
const MAX_ITEMS: usize = 100_000;
/// How deep a value is measured; a deeper one (or one that holds itself)
/// counts as over the limit.
const MAX_DEPTH: usize = 64;

/// Filters whose output is never larger than their input (a part of it, a
/// number, a reordering): their input is not measured again.
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
enum Mode {
    Plain,
    Sized,
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
            Expr::BinOp(b) if matches!(b.op, BinOpKind::Mul | BinOpKind::Concat) => {
                let f = if matches!(b.op, BinOpKind::Mul) {
                    "__tollgate_mul"
                } else {
                    "__tollgate_concat"
                };
                Ok(format!(
                    "{f}({}, {})",
                    self.expr(&b.left)?,
                    self.expr(&b.right)?
                ))
            }
            Expr::Call(c) => self.call(c, c.span()),
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
        kids: &[(&Expr<'_>, Mode)],
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
fn children<'b, 'a>(expr: &'b Expr<'a>) -> Vec<(&'b Expr<'a>, Mode)> {
    use Mode::{Plain, Sized};
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
        Expr::BinOp(b) => {
            let mode = match b.op {
                BinOpKind::Add => Sized,
                _ => Plain,
            };
            vec![(&b.left, mode), (&b.right, mode)]
        }
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
        Expr::Filter(f) => {
            // A filter whose output is never larger than its input needs no
            // measure of it (values reaching it were measured when built).
            let input = if SHRINKING.contains(&f.name) {
                Plain
            } else {
                Sized
            };
            f.expr
                .iter()
                .map(|e| (e, input))
                .chain(f.args.iter().map(|a| (arg_expr(a), Sized)))
                .collect()
        }
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

/// The size a value takes once rendered, counted without rendering it;
/// `None` when it is over `limit` (or nested past [`MAX_DEPTH`], or holds
/// more than [`MAX_ITEMS`] items).
pub(crate) fn size(v: &Value, limit: usize) -> Option<usize> {
    measure(v, limit, 0)
}

fn measure(v: &Value, limit: usize, depth: usize) -> Option<usize> {
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
                if i >= MAX_ITEMS {
                    return None;
                }
                total = total.checked_add(measure(&item, limit, depth + 1)? + 2)?;
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
                        if i >= MAX_ITEMS {
                            return None;
                        }
                        let item = v.get_item(&key).unwrap_or_default();
                        let pair = measure(&key, limit, depth + 1)?.checked_add(measure(
                            &item,
                            limit,
                            depth + 1,
                        )?)?;
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

/// Registers the functions the rewritten templates call and the bounded
/// filters, for values of at most `limit` bytes.
pub(crate) fn register(env: &mut Environment<'static>, limit: usize) {
    env.add_function("__tollgate_sized", move |v: Value| {
        check(size(&v, limit), limit).map(|()| v)
    });
    env.add_function("__tollgate_concat", move |a: Value, b: Value| {
        // minijinja's `~`, with the result's size known before it is built.
        let len = size(&a, limit).and_then(|x| x.checked_add(size(&b, limit)?));
        check(len, limit)?;
        let mut out = String::with_capacity(len.unwrap_or(0));
        std::fmt::Write::write_fmt(&mut out, format_args!("{a}{b}"))
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "concatenation failed"))?;
        Ok(Value::from(out))
    });
    env.add_function("__tollgate_mul", move |a: Value, b: Value| {
        let repeated = match (a.as_str(), b.as_str()) {
            (Some(s), None) => Some((s.len(), &b)),
            (None, Some(s)) => Some((s.len(), &a)),
            _ => None,
        };
        if let Some((len, n)) = repeated
            && let Some(n) = n.as_usize()
        {
            check(len.checked_mul(n), limit)?;
        }
        let product = multiply(&a, &b)?;
        if product.as_object().is_some() {
            // A list repeated is lazy in minijinja: measured (not built) here.
            check(size(&product, limit), limit)?;
        }
        Ok(product)
    });
    env.add_filter(
        "join",
        move |state: &State<'_, '_>, value: &Value, joiner: Option<StringInput<'_>>| {
            let sep = joiner.as_ref().map_or(0, |j| j.as_str().len());
            let count = value.len().unwrap_or(0);
            let total = size(value, limit).and_then(|n| n.checked_add(sep.checked_mul(count)?));
            check(total, limit)?;
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
        move |value: &Value, indent: Option<Value>, kwargs: Kwargs| {
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
            check(size(value, limit), limit)?;
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

/// `a * b` as minijinja computes it, for everything but a repeated string
/// (checked by the caller): evaluated by minijinja itself.
fn multiply(a: &Value, b: &Value) -> Result<Value, Error> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    let env = ENV.get_or_init(Environment::new);
    env.compile_expression("a * b")?
        .eval(minijinja::context! { a => a, b => b })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded_env(limit: usize) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_fuel(Some(1_000_000));
        register(&mut env, limit);
        env
    }

    fn render(env: &Environment<'static>, source: &str) -> Result<String, Error> {
        let ctx = minijinja::context! {
            name => "pet", items => vec![1, 2, 3], word => "a-b-c",
            obj => minijinja::context! { k => "v", n => 2 },
        };
        env.render_str(source, ctx)
    }

    #[test]
    fn rewritten_templates_render_as_the_originals() {
        let plain = Environment::new();
        let bounded = bounded_env(10 << 20);
        for source in [
            "{{ name ~ '-' ~ name|upper }}",
            "{{ (name ~ 'x')|upper ~ (items|join(',')) }}",
            "{{ ((name))|length }} {{ (obj).k ~ obj['n'] }}",
            "{{ items|map('string')|join('+') }}",
            "{{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ 2 * 3 }} {{ 2.5 * 2 }} {{ items * 2 }}",
            "{{ items + [4] }} {{ 1 + 2 }} {{ 'a' + 'b' }}",
            "{% set ns = namespace(s='') %}{% for i in items %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}",
            "{{ word|replace('-', '+') }} {{ word|indent(2) }} {{ obj|tojson }} {{ '%s=%d'|format('a', 1) }}",
            "{{ name if items|length > 2 else 'none' }} {{ -(items|length) }} {{ not name }}",
            "{{ items[1:] }} {{ items|batch(2)|list }} {{ items|slice(2)|list }} {{ range(3)|list }}",
            "{% with x = name ~ '!' %}{{ x }}{% endwith %}{% if name is defined and name is string %}y{% endif %}",
            "{{ dict(a=name ~ 1, b=items)|tojson }} {{ obj|items|list }} {{ 'x'|default('y' ~ 'z') }}",
            "{{ name ~ (items | join) ~ ( 'q' ) }}{{ (items|first) ~ (items|last) }}",
        ] {
            let rewritten = rewrite(source).unwrap();
            assert_eq!(
                render(&bounded, &rewritten).unwrap(),
                render(&plain, source).unwrap(),
                "{source}\n  rewritten: {rewritten}"
            );
        }
    }

    #[test]
    fn doubling_stops_at_the_limit() {
        let env = bounded_env(1 << 20);
        let bomb = r#"{% set ns = namespace(s="xxxxxxxxxx") %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"#;
        let e = render(&env, &rewrite(bomb).unwrap()).unwrap_err();
        assert!(e.to_string().contains("size limit"), "{e}");
        for bomb in [
            "{{ 'x' * 2000000 }}",
            "{{ range(100000)|join('yyyyyyyyyyyyyyyyyyyy') }}",
            "{{ 'abc'|replace('', 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz' * 20000) }}",
            "{{ 'a\nb'|indent(10000000) }}",
            "{{ '%99999999s'|format('a') }}",
            "{{ [1]|batch(10000000, 'x')|list|length }}",
            "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|join }}",
            "{% set ns = namespace(l=['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx']) %}{% for i in range(40) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|string|length }}",
            "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns ~ '' }}",
            "{{ (['x' * 100000] * 100)|string|length }}",
            "{% set s = 'x' * 100000 %}{% set a = [s,s,s,s,s,s,s,s,s,s] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}{{ b|string|length }}",
            "{% set s = 'x' * 100000 %}{% set a = [s,s,s,s,s,s,s,s,s,s] %}{% set b = {'k': a, 'l': a} %}{% set c = [b, b, b, b, b, b] %}{{ c|tojson|length }}",
            "{% set ns = namespace(s='\"') %}{% for i in range(30) %}{% set ns.s = ns.s|tojson %}{% endfor %}{{ ns.s|length }}",
        ] {
            let e = render(&env, &rewrite(bomb).unwrap()).unwrap_err();
            assert!(
                e.to_string().contains("size limit") || e.to_string().contains("at most"),
                "{bomb}: {e}"
            );
        }
    }

    #[test]
    fn what_cannot_be_bounded_is_refused_with_its_line() {
        for (source, line) in [
            ("a\n{% set x %}{{ y }}{% endset %}", 2),
            ("{% filter upper %}x{% endfilter %}", 1),
            ("\n\n{% macro m(x) %}{{ x }}{% endmacro %}", 3),
            ("{% for x in y recursive %}{{ loop(x) }}{% endfor %}", 1),
            ("{% include 'other' %}", 1),
            ("{% set __tollgate_sized = 1 %}", 1),
            ("{{ __tollgate_sized('x') }}", 1),
        ] {
            match rewrite(source) {
                Err(Unbounded::Unsupported { line: l, .. }) => assert_eq!(l, line, "{source}"),
                other => panic!("{source}: {other:?}"),
            }
        }
        assert_eq!(rewrite("{{ a ~ }}"), Err(Unbounded::Syntax));
    }
}
