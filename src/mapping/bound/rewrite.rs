//! The compile-time half: a template's source rewritten so that every
//! operation that can grow a value goes through a checked function.

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{Span, WhitespaceConfig, parse};
use minijinja::syntax::SyntaxConfig;

use super::budget::NO_COPY;

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

struct Rewriter<'s> {
    src: &'s str,
    /// Whether the template selects from the body as JSON.
    selects_json: bool,
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
