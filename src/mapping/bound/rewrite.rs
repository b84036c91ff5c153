//! The compile-time half: a template's source rewritten so that every
//! operation that can grow a value goes through a checked function.
//!
//! The template is parsed with minijinja's own parser, so the rewrite reads
//! exactly what minijinja will compile, but the rewrite itself works on the
//! source text: each statement's expression is rewritten bottom-up and its
//! span in the source replaced by the new text. Everything else (raw text,
//! tags, comments, whitespace control) is copied as it is, and no new text
//! holds a line break, so an error in the compiled template names the line
//! the user wrote. The result is compiled by minijinja like any template.
//!
//! ```text
//! {{ name ~ '-' ~ name|upper }}
//! {{ __tollgate_concat(__tollgate_concat(name, '-'), __tollgate_output(__tollgate_input(name, "upper")|upper)) }}
//! ```
//!
//! Spans need care: minijinja spans a filter from its name and an attribute
//! from the attribute, not from the operand before them, so the text an
//! expression covers is its span joined with its children's, widened over
//! the parentheses that group its first operand (`Rewriter::extent`). A
//! statement that cannot be bounded is refused with its line
//! ([`Unbounded::Unsupported`]).

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{Span, WhitespaceConfig, parse};
use minijinja::syntax::SyntaxConfig;

use super::budget::NO_COPY;

/// Why a template cannot be bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unbounded {
    /// minijinja's parser refused it: the environment reports the error.
    Syntax,
    /// A construct that cannot be bounded: `what` it is, for the message
    /// (`a recursive loop`), and the `line` it starts on, counted from 1 as
    /// minijinja counts (0 when it cannot be told).
    Unsupported { line: usize, what: &'static str },
}

/// Rewrites `source` so that every operation that can grow a value checks
/// its operands first (see the module docs).
// `SyntaxConfig` is a unit struct unless minijinja's `custom_syntax` feature
// is on (another crate in the build may turn it on): `default()` works for both.
#[allow(clippy::default_constructed_unit_structs)]
pub(crate) fn rewrite(source: &str) -> Result<Rewritten, Unbounded> {
    let ast = parse(
        source,
        "template",
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    )
    .map_err(|_| Unbounded::Syntax)?;
    let mut r = Rewriter {
        src: source,
        selects_json: false,
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
    Ok(Rewritten {
        source: out,
        selects_json: r.selects_json,
    })
}

/// A template rewritten, and what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewritten {
    /// The source to compile.
    pub(crate) source: String,
    /// Whether it selects from the body as JSON (`input.json`, `input.path`):
    /// only then is the body parsed.
    pub(crate) selects_json: bool,
}

/// One template's rewrite in progress.
struct Rewriter<'s> {
    /// The template as written: every span and edit is a byte range of it.
    src: &'s str,
    /// Whether the template selects from the body as JSON.
    selects_json: bool,
    /// Top-level expressions replaced: (start, end, new text), in order.
    edits: Vec<(usize, usize, String)>,
}

/// How a child expression is written back.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// As rewritten, unwrapped.
    Plain,
    /// Through `__tollgate_sized`.
    Sized,
    /// A filter's input, through `__tollgate_input(VALUE, "FILTER")`.
    Input(&'a str),
}

/// [`Unbounded::Unsupported`] at the line `span` starts on.
fn unsupported(span: Span, what: &'static str) -> Unbounded {
    Unbounded::Unsupported {
        line: usize::from(span.start_line),
        what,
    }
}

impl Rewriter<'_> {
    /// Rewrites each statement, in order; the first refusal ends it.
    fn stmts(&mut self, stmts: &[Stmt<'_>]) -> Result<(), Unbounded> {
        stmts.iter().try_for_each(|s| self.stmt(s))
    }

    /// Rewrites the expressions of one statement and recurses into its
    /// bodies. Only the statements listed are known to be boundable; any
    /// other, including one a later minijinja adds, falls to the refusing
    /// arm rather than through unchecked.
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
                // Each iteration looks at the render's deadline.
                self.top_wrapped(&f.iter, "__tollgate_loop")?;
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
        // `input` and `util` stay tollgate's: their calls are not wrapped.
        let mut shadows = false;
        walk_vars(target, &mut |v| shadows |= matches!(v.id, "input" | "util"));
        if shadows {
            return Err(unsupported(target.span(), "assigning to `input` or `util`"));
        }
        self.check_names(target)
    }

    /// Refuses a variable whose name starts with `__tollgate` anywhere in
    /// `expr`, and notes whether `expr` selects from the body as JSON.
    ///
    /// That test goes by name alone (`.json` or `.path` on anything counts),
    /// since an alias of `input` cannot be told apart when compiling. A
    /// false positive costs only a parse of the body before rendering.
    fn check_names(&mut self, expr: &Expr<'_>) -> Result<(), Unbounded> {
        if let Expr::Var(v) = expr
            && v.id.starts_with("__tollgate")
        {
            return Err(unsupported(v.span(), "a name starting with __tollgate"));
        }
        // `input.json`, `input.path` (or `x["path"]`, `x|attr("json")` on
        // an alias of `input`): the template selects from the body as JSON.
        let named = |e: &Expr<'_>| matches!(e, Expr::Const(c) if matches!(c.value.as_str(), Some("json" | "path")));
        self.selects_json |= match expr {
            Expr::GetAttr(g) => matches!(g.name, "json" | "path"),
            Expr::GetItem(g) => named(&g.subscript_expr),
            Expr::Filter(f) => f.name == "attr" && f.args.iter().any(|a| named(arg_expr(a))),
            _ => false,
        };
        for (child, _) in children(expr) {
            self.check_names(child)?;
        }
        Ok(())
    }

    /// A statement's expression, rewritten and passed through `function`.
    fn top_wrapped(&mut self, expr: &Expr<'_>, function: &str) -> Result<(), Unbounded> {
        self.check_names(expr)?;
        let (start, end) = self.extent(expr);
        let text = self.expr(expr)?;
        self.edits.push((start, end, format!("{function}({text})")));
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

    /// The rewritten text of `expr`. `~`, `+` and `*` become checked calls;
    /// the results of calls, of filters that may copy and of slices pass
    /// through `__tollgate_output`; anything else is its own text with its
    /// children rewritten in place. Calls of `input.*` and `util.*` are not
    /// wrapped: those helpers account for their own results.
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
            // `input.*` and `util.*` account for their own results.
            Expr::Call(c) if own_method(&c.expr) => self.call(c, c.span()),
            Expr::Call(c) => Ok(format!("__tollgate_output({})", self.call(c, c.span())?)),
            // A filter's result, unless it is its input, a part of it or
            // a number; a slice is a copy.
            Expr::Filter(f) if !NO_COPY.contains(&f.name) => {
                let kids = children(expr);
                let text = self.splice(self.extent(expr), &kids)?;
                Ok(format!("__tollgate_output({text})"))
            }
            Expr::Slice(_) => {
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

    /// A call's text: the callee rewritten plainly, each argument (but a
    /// literal) passed through `__tollgate_sized`.
    fn call(&mut self, call: &ast::Call<'_>, span: Span) -> Result<String, Unbounded> {
        let mut kids = vec![(&call.expr, Mode::Plain)];
        kids.extend(call.args.iter().map(|a| (arg_expr(a), Mode::Sized)));
        let extent = self.extent_of_call(call, span);
        self.splice(extent, &kids)
    }

    /// The node's text from `extent`, each child rewritten in place.
    ///
    /// Children are spliced in the order they appear in the source, not the
    /// order the AST lists them (a map's keys come before its values
    /// there); the text between them, operators and punctuation, is copied.
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
                // A literal is as small as the template's own text.
                Mode::Sized if matches!(kid, Expr::Const(_)) => out.push_str(&text),
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

    /// The text a call covers: its own span joined with its callee's and
    /// its arguments'.
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

    /// The extent of a node spanned `span` with children `kids`. When its
    /// first child ends before its own span begins (`(a ~ b)|upper`, whose
    /// span starts at `upper`), each `)` between them closes a `(` that the
    /// node must cover too: the start moves back over one `(` (and the
    /// whitespace before it) per `)`.
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

/// Calls `f` on every variable in `expr`.
fn walk_vars<'a>(expr: &Expr<'a>, f: &mut dyn FnMut(&ast::Var<'a>)) {
    if let Expr::Var(v) = expr {
        f(v);
    }
    for (child, _) in children(expr) {
        walk_vars(child, f);
    }
}

/// `input.NAME` or `util.NAME`: tollgate's own helpers, which measure and
/// account for what they return.
fn own_method(callee: &Expr<'_>) -> bool {
    matches!(callee, Expr::GetAttr(g) if matches!(&g.expr, Expr::Var(v) if matches!(v.id, "input" | "util")))
}

/// The expression of a call argument, whatever its form (positional,
/// keyword, `*args`, `**kwargs`).
fn arg_expr<'a, 'b>(arg: &'b CallArg<'a>) -> &'b Expr<'a> {
    match arg {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => e,
    }
}

/// An expression's child expressions, and how each is written back.
///
/// A filter's input goes through `__tollgate_input` with the filter's name;
/// arguments of filters and calls, and the items of list and map literals,
/// through `__tollgate_sized`; everything else plainly (an operator's
/// operands are measured by the checked function that replaces it).
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

/// The line of a statement the rewrite has no arm for, for the refusal;
/// 0 when it cannot be told.
fn stmt_line(stmt: &Stmt<'_>) -> usize {
    // Every statement is spanned; the catch-all arm has no typed access, so
    // the line is read from its debug form's trailing span when present.
    let shown = format!("{stmt:?}");
    shown
        .rsplit_once(" @ ")
        .and_then(|(_, span)| span.split(':').next()?.parse().ok())
        .unwrap_or(0)
}
