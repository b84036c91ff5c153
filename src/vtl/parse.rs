//! The template source parsed into nodes: text, references, directives.
//!
//! Velocity 1.7's lexical rules, which API Gateway's templates are written
//! against:
//! - an identifier is a letter or `_`, then letters, digits, `_` and `-`;
//! - a reference is `$name`, `$!name`, `${name}` or `$!{name}`, then any
//!   number of `.name`, `.name(args)` and `[index]`; a `.` not followed by
//!   an identifier is text, as is a `$` that starts no reference;
//! - `\` before a reference or directive escapes it (see [`Node::Escaped`]);
//! - `##` comments to the end of the line (the newline included), `#* *#`
//!   block comments, `#[[ ]]#` unparsed text;
//! - whitespace ("gobbling", Velocity 1.x): a `#set` takes the spaces and
//!   tabs before it; the `)` closing a directive's arguments, and `#else`
//!   and `#end`, take the spaces, tabs and one newline after them when
//!   nothing else follows on the line. Other text stays as written.

use std::fmt;

/// A position in the source, 1-based, columns in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// The position of byte offset `at` in `src`.
pub(crate) fn position(src: &str, at: usize) -> Position {
    let mut at = at.min(src.len());
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[start..].chars().count() + 1;
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// A template that does not parse: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct SyntaxError {
    /// Where the problem starts.
    pub position: Position,
    /// What is wrong.
    pub message: String,
}

/// Deepest nesting of blocks, expressions and string interpolations: a
/// template deeper than this is refused when compiled (the parser and the
/// evaluator both recurse).
pub(crate) const MAX_NESTING: usize = 64;

#[derive(Debug)]
pub(crate) enum Node {
    Text(Box<str>),
    /// A reference rendered in place.
    Ref(Ref),
    /// `\$ref`: Velocity prints a defined reference's source without one
    /// backslash of each pair, an undefined one as written.
    Escaped {
        /// Backslashes before the `$`.
        backslashes: usize,
        reference: Ref,
        /// The reference as written, without the backslashes.
        source: Box<str>,
    },
    Set(Ref, Expr),
    If(Vec<(Expr, Vec<Node>)>, Option<Vec<Node>>),
    Foreach {
        var: Box<str>,
        iterable: Expr,
        body: Vec<Node>,
        at: usize,
    },
    Break,
    Stop,
    /// `#define($name)`: the block is stored in the template's table.
    Define(Box<str>, usize),
    /// `#name(args)`: a macro call, or text when no macro has that name.
    Call {
        name: Box<str>,
        args: Vec<Expr>,
        source: Box<str>,
        at: usize,
    },
}

#[derive(Debug)]
pub(crate) struct Ref {
    pub(crate) root: Box<str>,
    pub(crate) chain: Vec<Access>,
    /// Byte offset of the `$`.
    pub(crate) at: usize,
}

#[derive(Debug)]
pub(crate) enum Access {
    Property(Box<str>),
    Method(Box<str>, Vec<Expr>),
    Index(Expr),
}

#[derive(Debug)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Lit(Lit),
    /// A double-quoted string: parsed as a template, rendered when used.
    Interpolated(Vec<Node>),
    Ref(Ref),
    List(Vec<Expr>),
    Range(Box<Expr>, Box<Expr>),
    Map(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>, usize),
}

/// A `#macro`: its parameter names and body.
#[derive(Debug)]
pub(crate) struct Macro {
    pub(crate) name: Box<str>,
    pub(crate) params: Vec<Box<str>>,
    pub(crate) body: Vec<Node>,
}

/// What a parse produced.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    pub(crate) macros: Vec<Macro>,
    /// `#define` blocks, by index.
    pub(crate) blocks: Vec<Vec<Node>>,
}

/// Parses a whole template.
pub(crate) fn parse(src: &str) -> Result<Parsed, SyntaxError> {
    let mut p = Parser {
        src,
        b: src.as_bytes(),
        i: 0,
        depth: 0,
        macros: Vec::new(),
        blocks: Vec::new(),
    };
    let (nodes, end) = p.nodes(false)?;
    match end {
        Closed::Eof => {}
        Closed::End(at) => return Err(p.error_at(at, "`#end` without a block to close")),
        Closed::Else(at) => return Err(p.error_at(at, "`#else` outside an `#if`")),
        Closed::ElseIf(_, at) => return Err(p.error_at(at, "`#elseif` outside an `#if`")),
    }
    Ok(Parsed {
        nodes,
        macros: p.macros,
        blocks: p.blocks,
    })
}

/// How a block of nodes ended.
enum Closed {
    Eof,
    End(usize),
    Else(usize),
    ElseIf(Expr, usize),
}

const DIRECTIVES: &[&str] = &[
    "set", "if", "elseif", "else", "end", "foreach", "break", "stop", "define", "macro",
];

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

struct Parser<'s> {
    src: &'s str,
    b: &'s [u8],
    i: usize,
    depth: usize,
    macros: Vec<Macro>,
    blocks: Vec<Vec<Node>>,
}

impl<'s> Parser<'s> {
    fn error_at(&self, at: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position: position(self.src, at),
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.b.get(self.i + n).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        self.b[self.i..].starts_with(s.as_bytes())
    }

    fn deeper(&mut self, at: usize) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error_at(
                at,
                format!("nested deeper than {MAX_NESTING} levels (blocks, expressions or strings)"),
            ));
        }
        Ok(())
    }

    /// An identifier at the cursor (the cursor moves past it).
    fn ident(&mut self) -> Option<&'s str> {
        let start = self.i;
        if !self.peek().is_some_and(ident_start) {
            return None;
        }
        while self.peek().is_some_and(ident_char) {
            self.i += 1;
        }
        Some(&self.src[start..self.i])
    }

    /// Skips spaces, tabs and newlines (inside a directive's parentheses).
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// After a directive: spaces and tabs then one newline are taken;
    /// anything else on the line leaves them.
    fn gobble_line_end(&mut self) {
        let mut j = self.i;
        while matches!(self.b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        match self.b.get(j) {
            Some(b'\n') => self.i = j + 1,
            Some(b'\r') => {
                self.i = if self.b.get(j + 1) == Some(&b'\n') {
                    j + 2
                } else {
                    j + 1
                }
            }
            _ => {}
        }
    }

    /// Nodes up to the end of the source, or (inside a block) up to the
    /// `#end`, `#else` or `#elseif` that ends it.
    fn nodes(&mut self, in_block: bool) -> Result<(Vec<Node>, Closed), SyntaxError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        let flush = |text: &mut String, nodes: &mut Vec<Node>| {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text).into_boxed_str()));
            }
        };
        while let Some(c) = self.peek() {
            match c {
                b'\\' => {
                    let start = self.i;
                    let mut n = 0;
                    while self.peek() == Some(b'\\') {
                        self.i += 1;
                        n += 1;
                    }
                    if self.peek() == Some(b'$')
                        && let Some((reference, source)) = self.try_reference()?
                    {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Escaped {
                            backslashes: n,
                            reference,
                            source: source.into(),
                        });
                    } else if self.peek() == Some(b'#') && self.directive_ahead() {
                        text.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            // `\#if` is text: the `#` and the name.
                            text.push('#');
                            self.i += 1;
                        }
                    } else {
                        text.push_str(&self.src[start..self.i]);
                    }
                }
                b'$' => {
                    if let Some((reference, _)) = self.try_reference()? {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Ref(reference));
                    } else {
                        text.push('$');
                        self.i += 1;
                    }
                }
                b'#' => match self.peek_at(1) {
                    Some(b'#') => {
                        // A line comment, its newline included.
                        while let Some(c) = self.peek() {
                            self.i += 1;
                            if c == b'\n' {
                                break;
                            }
                        }
                    }
                    Some(b'*') => {
                        let at = self.i;
                        match self.src[self.i + 2..].find("*#") {
                            Some(k) => self.i += 2 + k + 2,
                            None => return Err(self.error_at(at, "`#*` comment without `*#`")),
                        }
                    }
                    Some(b'[') if self.peek_at(2) == Some(b'[') => {
                        let at = self.i;
                        match self.src[self.i + 3..].find("]]#") {
                            Some(k) => {
                                text.push_str(&self.src[self.i + 3..self.i + 3 + k]);
                                self.i += 3 + k + 3;
                            }
                            None => {
                                return Err(self.error_at(at, "`#[[` text without `]]#`"));
                            }
                        }
                    }
                    _ => {
                        let at = self.i;
                        match self.directive(&mut text, &mut nodes, in_block)? {
                            Some(end) => {
                                flush(&mut text, &mut nodes);
                                return Ok((nodes, end));
                            }
                            None if self.i == at => {
                                text.push('#');
                                self.i += 1;
                            }
                            None => {}
                        }
                    }
                },
                _ => {
                    // Copy a run of plain text.
                    let start = self.i;
                    while let Some(c) = self.peek() {
                        if matches!(c, b'\\' | b'$' | b'#') {
                            break;
                        }
                        self.i += 1;
                    }
                    text.push_str(&self.src[start..self.i]);
                }
            }
        }
        flush(&mut text, &mut nodes);
        Ok((nodes, Closed::Eof))
    }

    /// Whether a directive name follows the `#` at the cursor.
    fn directive_ahead(&self) -> bool {
        let rest = &self.b[self.i + 1..];
        let rest = rest.strip_prefix(b"{").unwrap_or(rest);
        rest.first().is_some_and(|c| ident_start(*c))
    }

    /// A directive at the `#` under the cursor. Returns the end of a block
    /// for `#end`, `#else`, `#elseif`; otherwise pushes the node (or
    /// leaves the cursor where it was, for a `#` that is text).
    fn directive(
        &mut self,
        text: &mut String,
        nodes: &mut Vec<Node>,
        in_block: bool,
    ) -> Result<Option<Closed>, SyntaxError> {
        let at = self.i;
        self.i += 1;
        let braced = self.peek() == Some(b'{');
        if braced {
            self.i += 1;
        }
        let Some(name) = self.ident() else {
            self.i = at;
            return Ok(None);
        };
        if braced {
            if self.peek() != Some(b'}') {
                self.i = at;
                return Ok(None);
            }
            self.i += 1;
        }
        let flush = |text: &mut String, nodes: &mut Vec<Node>| {
            if !text.is_empty() {
                nodes.push(Node::Text(std::mem::take(text).into_boxed_str()));
            }
        };
        match name {
            "end" => {
                self.gobble_line_end();
                Ok(Some(Closed::End(at)))
            }
            "else" => {
                self.gobble_line_end();
                Ok(Some(Closed::Else(at)))
            }
            "elseif" => {
                let cond = self.paren_expr(at, "#elseif")?;
                self.gobble_line_end();
                Ok(Some(Closed::ElseIf(cond, at)))
            }
            "break" => {
                flush(text, nodes);
                nodes.push(Node::Break);
                Ok(None)
            }
            "stop" => {
                flush(text, nodes);
                nodes.push(Node::Stop);
                Ok(None)
            }
            "set" => {
                // `#set` alone on its line takes the line's indentation.
                let before = &self.src[..at];
                let indent = before.len() - before.trim_end_matches([' ', '\t']).len();
                let line_start = before.len() - indent;
                if (line_start == 0 || before.as_bytes()[line_start - 1] == b'\n')
                    && text.ends_with(&before[line_start..])
                {
                    text.truncate(text.len() - indent);
                }
                self.open_paren(at, "#set")?;
                self.ws();
                let lhs_at = self.i;
                let Some((lhs, _)) = self.try_reference()? else {
                    return Err(
                        self.error_at(lhs_at, "`#set` needs a reference to set: `#set($x = ...)`")
                    );
                };
                self.ws();
                if self.peek() != Some(b'=') {
                    return Err(self.error_at(self.i, "`#set` needs `=` after the reference"));
                }
                self.i += 1;
                let value = self.expr()?;
                self.close_paren(at, "#set")?;
                self.gobble_line_end();
                flush(text, nodes);
                nodes.push(Node::Set(lhs, value));
                Ok(None)
            }
            "if" => {
                let cond = self.paren_expr(at, "#if")?;
                self.gobble_line_end();
                flush(text, nodes);
                self.deeper(at)?;
                let mut branches = Vec::new();
                let mut otherwise = None;
                let mut cond = cond;
                loop {
                    let (body, end) = self.nodes(true)?;
                    match end {
                        Closed::End(_) => {
                            branches.push((cond, body));
                            break;
                        }
                        Closed::ElseIf(next, _) => {
                            branches.push((cond, body));
                            cond = next;
                        }
                        Closed::Else(_) => {
                            branches.push((cond, body));
                            let (body, end) = self.nodes(true)?;
                            match end {
                                Closed::End(_) => {
                                    otherwise = Some(body);
                                    break;
                                }
                                Closed::Else(a) | Closed::ElseIf(_, a) => {
                                    return Err(
                                        self.error_at(a, "`#else` already seen in this `#if`")
                                    );
                                }
                                Closed::Eof => {
                                    return Err(self.error_at(at, "`#if` without `#end`"));
                                }
                            }
                        }
                        Closed::Eof => return Err(self.error_at(at, "`#if` without `#end`")),
                    }
                }
                self.depth -= 1;
                nodes.push(Node::If(branches, otherwise));
                Ok(None)
            }
            "foreach" => {
                self.open_paren(at, "#foreach")?;
                self.ws();
                let var_at = self.i;
                let var = match self.try_reference()? {
                    Some((r, _)) if r.chain.is_empty() => r.root,
                    _ => {
                        return Err(self.error_at(
                            var_at,
                            "`#foreach` needs a variable: `#foreach($item in $list)`",
                        ));
                    }
                };
                self.ws();
                if !self.starts_with("in") || self.peek_at(2).is_some_and(ident_char) {
                    return Err(self.error_at(self.i, "`#foreach` needs `in` after its variable"));
                }
                self.i += 2;
                let iterable = self.expr()?;
                self.close_paren(at, "#foreach")?;
                self.gobble_line_end();
                flush(text, nodes);
                let body = self.block(at, "#foreach")?;
                nodes.push(Node::Foreach {
                    var,
                    iterable,
                    body,
                    at,
                });
                Ok(None)
            }
            "define" => {
                self.open_paren(at, "#define")?;
                self.ws();
                let name_at = self.i;
                let name = match self.try_reference()? {
                    Some((r, _)) if r.chain.is_empty() => r.root,
                    _ => {
                        return Err(
                            self.error_at(name_at, "`#define` needs a name: `#define($block)`")
                        );
                    }
                };
                self.close_paren(at, "#define")?;
                self.gobble_line_end();
                flush(text, nodes);
                let body = self.block(at, "#define")?;
                self.blocks.push(body);
                nodes.push(Node::Define(name, self.blocks.len() - 1));
                Ok(None)
            }
            "macro" => {
                if in_block {
                    return Err(
                        self.error_at(at, "`#macro` must be at the top level of a template")
                    );
                }
                self.open_paren(at, "#macro")?;
                self.ws();
                let name_at = self.i;
                let Some(name) = self.ident() else {
                    return Err(
                        self.error_at(name_at, "`#macro` needs a name: `#macro(name $arg)`")
                    );
                };
                if DIRECTIVES.contains(&name) {
                    return Err(self.error_at(
                        name_at,
                        format!("`{name}` is a directive, not a macro name"),
                    ));
                }
                let mut params = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some(b',') {
                        self.i += 1;
                        continue;
                    }
                    if self.peek() == Some(b')') {
                        break;
                    }
                    let p_at = self.i;
                    match self.try_reference()? {
                        Some((r, _)) if r.chain.is_empty() => params.push(r.root),
                        _ => return Err(self.error_at(p_at, "a macro's parameters are `$names`")),
                    }
                }
                self.close_paren(at, "#macro")?;
                self.gobble_line_end();
                let body = self.block(at, "#macro")?;
                self.macros.push(Macro {
                    name: name.into(),
                    params,
                    body,
                });
                Ok(None)
            }
            _ => {
                // A macro call needs its parentheses; anything else is text.
                let mut j = self.i;
                while matches!(self.b.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                if braced || self.b.get(j) != Some(&b'(') {
                    self.i = at;
                    return Ok(None);
                }
                self.i = j + 1;
                let mut args = Vec::new();
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b')') => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => self.i += 1,
                        None => return Err(self.error_at(at, format!("`#{name}(` without `)`"))),
                        _ => args.push(self.unary()?),
                    }
                }
                let source = &self.src[at..self.i];
                self.gobble_line_end();
                flush(text, nodes);
                nodes.push(Node::Call {
                    name: name.into(),
                    args,
                    source: source.into(),
                    at,
                });
                Ok(None)
            }
        }
    }

    /// A block's body up to its `#end`.
    fn block(&mut self, at: usize, what: &str) -> Result<Vec<Node>, SyntaxError> {
        self.deeper(at)?;
        let (body, end) = self.nodes(true)?;
        self.depth -= 1;
        match end {
            Closed::End(_) => Ok(body),
            Closed::Else(a) | Closed::ElseIf(_, a) => {
                Err(self.error_at(a, format!("`#else` inside `{what}` (only `#if` has one)")))
            }
            Closed::Eof => Err(self.error_at(at, format!("`{what}` without `#end`"))),
        }
    }

    fn open_paren(&mut self, at: usize, what: &str) -> Result<(), SyntaxError> {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        if self.peek() != Some(b'(') {
            return Err(self.error_at(at, format!("`{what}` needs `(`")));
        }
        self.i += 1;
        Ok(())
    }

    fn close_paren(&mut self, at: usize, what: &str) -> Result<(), SyntaxError> {
        self.ws();
        if self.peek() != Some(b')') {
            return Err(self.error_at(
                if self.i >= self.b.len() { at } else { self.i },
                format!("`{what}(` without its `)`"),
            ));
        }
        self.i += 1;
        Ok(())
    }

    fn paren_expr(&mut self, at: usize, what: &str) -> Result<Expr, SyntaxError> {
        self.open_paren(at, what)?;
        let e = self.expr()?;
        self.close_paren(at, what)?;
        Ok(e)
    }

    /// A reference at the `$` under the cursor, and its source text;
    /// `None` (cursor unmoved) when the `$` starts none.
    fn try_reference(&mut self) -> Result<Option<(Ref, &'s str)>, SyntaxError> {
        let at = self.i;
        let mut j = self.i + 1;
        if self.b.get(j) == Some(&b'!') {
            j += 1;
        }
        let braced = self.b.get(j) == Some(&b'{');
        if braced {
            j += 1;
        }
        if !self.b.get(j).is_some_and(|c| ident_start(*c)) {
            return Ok(None);
        }
        self.i = j;
        let root = self.ident().unwrap_or_default();
        let mut chain = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') if self.peek_at(1).is_some_and(ident_start) => {
                    self.i += 1;
                    let name = self.ident().unwrap_or_default();
                    if self.peek() == Some(b'(') {
                        self.i += 1;
                        let args = self.args(at)?;
                        chain.push(Access::Method(name.into(), args));
                    } else {
                        chain.push(Access::Property(name.into()));
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.deeper(at)?;
                    let index = self.expr()?;
                    self.depth -= 1;
                    self.ws();
                    if self.peek() != Some(b']') {
                        return Err(self.error_at(at, "an index `[` without its `]`"));
                    }
                    self.i += 1;
                    chain.push(Access::Index(index));
                }
                _ => break,
            }
        }
        if braced {
            if self.peek() != Some(b'}') {
                return Err(self.error_at(at, "`${` without its `}`"));
            }
            self.i += 1;
        }
        Ok(Some((
            Ref {
                root: root.into(),
                chain,
                at,
            },
            &self.src[at..self.i],
        )))
    }

    /// Method arguments after the `(`, through the `)`.
    fn args(&mut self, at: usize) -> Result<Vec<Expr>, SyntaxError> {
        self.deeper(at)?;
        let mut args = Vec::new();
        self.ws();
        if self.peek() == Some(b')') {
            self.i += 1;
            self.depth -= 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.error_at(at, "a method call's `(` without its `)`")),
            }
        }
        self.depth -= 1;
        Ok(args)
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.i;
        self.deeper(at)?;
        let e = self.or();
        self.depth -= 1;
        e
    }

    /// A word operator (`and`, `eq`, ...) at the cursor, after spaces.
    fn word(&mut self, w: &str) -> bool {
        self.ws();
        if self.starts_with(w) && !self.peek_at(w.len()).is_some_and(ident_char) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        self.ws();
        if self.starts_with(s) {
            self.i += s.len();
            true
        } else {
            false
        }
    }

    /// One more operator in a chain: `a + b + c` nests to the left, so
    /// each counts as a level of nesting (released by [`Parser::release`]).
    fn chained(&mut self, at: usize, n: &mut usize) -> Result<(), SyntaxError> {
        *n += 1;
        self.deeper(at)
    }

    fn release(&mut self, n: usize) {
        self.depth -= n;
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut n = 0;
        let r = self.or_chain(&mut n);
        self.release(n);
        r
    }

    fn or_chain(&mut self, n: &mut usize) -> Result<Expr, SyntaxError> {
        let mut left = self.and()?;
        loop {
            let at = self.i;
            if self.sym("||") || self.word("or") {
                self.chained(at, n)?;
                let right = self.and()?;
                left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right), at);
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut n = 0;
        let r = self.and_chain(&mut n);
        self.release(n);
        r
    }

    fn and_chain(&mut self, n: &mut usize) -> Result<Expr, SyntaxError> {
        let mut left = self.equality()?;
        loop {
            let at = self.i;
            if self.sym("&&") || self.word("and") {
                self.chained(at, n)?;
                let right = self.equality()?;
                left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right), at);
            } else {
                return Ok(left);
            }
        }
    }

    fn equality(&mut self) -> Result<Expr, SyntaxError> {
        let mut n = 0;
        let r = self.equality_chain(&mut n);
        self.release(n);
        r
    }

    fn equality_chain(&mut self, n: &mut usize) -> Result<Expr, SyntaxError> {
        let mut left = self.relational()?;
        loop {
            let at = self.i;
            let op = if self.sym("==") || self.word("eq") {
                BinOp::Eq
            } else if self.sym("!=") || self.word("ne") {
                BinOp::Ne
            } else {
                return Ok(left);
            };
            self.chained(at, n)?;
            let right = self.relational()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right), at);
        }
    }

    fn relational(&mut self) -> Result<Expr, SyntaxError> {
        let mut n = 0;
        let r = self.relational_chain(&mut n);
        self.release(n);
        r
    }

    fn relational_chain(&mut self, n: &mut usize) -> Result<Expr, SyntaxError> {
        let mut left = self.additive()?;
        loop {
            let at = self.i;
            let op = if self.sym("<=") || self.word("le") {
                BinOp::Le
            } else if self.sym(">=") || self.word("ge") {
                BinOp::Ge
            } else if self.sym("<") || self.word("lt") {
                BinOp::Lt
            } else if self.sym(">") || self.word("gt") {
                BinOp::Gt
            } else {
                return Ok(left);
            };
            self.chained(at, n)?;
            let right = self.additive()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right), at);
        }
    }

    fn additive(&mut self) -> Result<Expr, SyntaxError> {
        let mut n = 0;
        let r = self.additive_chain(&mut n);
        self.release(n);
        r
    }

    fn additive_chain(&mut self, n: &mut usize) -> Result<Expr, SyntaxError> {
        let mut left = self.multiplicative()?;
        loop {
            let at = self.i;
            let op = if self.sym("+") {
                BinOp::Add
            } else if self.sym("-") {
                BinOp::Sub
            } else {
                return Ok(left);
            };
            self.chained(at, n)?;
            let right = self.multiplicative()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right), at);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, SyntaxError> {
        let mut n = 0;
        let r = self.multiplicative_chain(&mut n);
        self.release(n);
        r
    }

    fn multiplicative_chain(&mut self, n: &mut usize) -> Result<Expr, SyntaxError> {
        let mut left = self.unary()?;
        loop {
            let at = self.i;
            let op = if self.sym("*") {
                BinOp::Mul
            } else if self.sym("/") {
                BinOp::Div
            } else if self.sym("%") {
                BinOp::Rem
            } else {
                return Ok(left);
            };
            self.chained(at, n)?;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right), at);
        }
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.i;
        self.deeper(at)?;
        let e = if self.sym("!") || self.word("not") {
            self.unary().map(|e| Expr::Not(Box::new(e)))
        } else if self.peek_after_ws() == Some(b'-')
            && !self.b.get(self.i + 1).is_some_and(|c| c.is_ascii_digit())
        {
            self.i += 1;
            self.unary().map(|e| Expr::Neg(Box::new(e)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        e
    }

    fn peek_after_ws(&mut self) -> Option<u8> {
        self.ws();
        self.peek()
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        self.ws();
        let at = self.i;
        match self.peek() {
            Some(b'$') => match self.try_reference()? {
                Some((r, _)) => Ok(Expr::Ref(r)),
                None => Err(self.error_at(at, "`$` that starts no reference")),
            },
            Some(b'\'') => {
                self.i += 1;
                match self.src[self.i..].find('\'') {
                    Some(k) => {
                        let s = &self.src[self.i..self.i + k];
                        self.i += k + 1;
                        Ok(Expr::Lit(Lit::Str(s.into())))
                    }
                    None => Err(self.error_at(at, "a `'` string without its closing `'`")),
                }
            }
            Some(b'"') => {
                self.i += 1;
                match self.src[self.i..].find('"') {
                    Some(k) => {
                        let inner = &self.src[self.i..self.i + k];
                        let inner_at = self.i;
                        self.i += k + 1;
                        if !inner.contains(['$', '#', '\\']) {
                            return Ok(Expr::Lit(Lit::Str(inner.into())));
                        }
                        self.deeper(at)?;
                        let parsed = parse(inner).map_err(|e| {
                            // Positions inside the string, moved to the template's.
                            let offset =
                                inner_at + byte_offset(inner, e.position.line, e.position.column);
                            self.error_at(offset, e.message)
                        })?;
                        self.depth -= 1;
                        if !parsed.macros.is_empty() || !parsed.blocks.is_empty() {
                            return Err(self
                                .error_at(at, "`#macro` and `#define` cannot be inside a string"));
                        }
                        Ok(Expr::Interpolated(parsed.nodes))
                    }
                    None => Err(self.error_at(at, "a `\"` string without its closing `\"`")),
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.i += 1;
                self.deeper(at)?;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.expr()?;
                if self.sym("..") {
                    let last = self.expr()?;
                    if !self.sym("]") {
                        return Err(self.error_at(at, "a range `[a..b]` without its `]`"));
                    }
                    self.depth -= 1;
                    return Ok(Expr::Range(Box::new(first), Box::new(last)));
                }
                let mut items = vec![first];
                loop {
                    if self.sym("]") {
                        break;
                    }
                    if !self.sym(",") {
                        return Err(self.error_at(at, "a list `[` without its `]`"));
                    }
                    items.push(self.expr()?);
                }
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Some(b'{') => {
                self.i += 1;
                self.deeper(at)?;
                let mut entries = Vec::new();
                if !self.sym("}") {
                    loop {
                        let k = self.expr()?;
                        if !self.sym(":") {
                            return Err(self.error_at(self.i, "a map entry needs `:`"));
                        }
                        let v = self.expr()?;
                        entries.push((k, v));
                        if self.sym("}") {
                            break;
                        }
                        if !self.sym(",") {
                            return Err(self.error_at(at, "a map `{` without its `}`"));
                        }
                    }
                }
                self.depth -= 1;
                Ok(Expr::Map(entries))
            }
            Some(b'(') => {
                self.i += 1;
                let e = self.expr()?;
                if !self.sym(")") {
                    return Err(self.error_at(at, "a `(` without its `)`"));
                }
                Ok(e)
            }
            _ => {
                if self.word("true") {
                    Ok(Expr::Lit(Lit::Bool(true)))
                } else if self.word("false") {
                    Ok(Expr::Lit(Lit::Bool(false)))
                } else if self.i >= self.b.len() {
                    Err(self.error_at(at, "the template ends inside a directive"))
                } else {
                    let c = self.src[self.i..].chars().next().unwrap_or(' ');
                    Err(self.error_at(at, format!("unexpected `{c}` in an expression")))
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let mut float = false;
        // `1..5` is a range, not a float.
        if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.i += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E'))
            && (self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek_at(1), Some(b'-' | b'+'))
                    && self.peek_at(2).is_some_and(|c| c.is_ascii_digit())))
        {
            float = true;
            self.i += 2;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        let s = &self.src[at..self.i];
        if s == "-" {
            return Err(self.error_at(at, "`-` without a number"));
        }
        if float {
            s.parse()
                .map(|d| Expr::Lit(Lit::Double(d)))
                .map_err(|_| self.error_at(at, format!("`{s}` is not a number")))
        } else {
            // Past 64 bits a literal is a double.
            match s.parse() {
                Ok(i) => Ok(Expr::Lit(Lit::Int(i))),
                Err(_) => s
                    .parse()
                    .map(|d| Expr::Lit(Lit::Double(d)))
                    .map_err(|_| self.error_at(at, format!("`{s}` is not a number"))),
            }
        }
    }
}

/// The byte offset of a (line, column) position in `s`.
fn byte_offset(s: &str, line: u32, column: u32) -> usize {
    let mut offset = 0;
    for (n, l) in s.split_inclusive('\n').enumerate() {
        if n + 1 == line as usize {
            return offset
                + l.char_indices()
                    .nth(column.saturating_sub(1) as usize)
                    .map_or(l.len(), |(i, _)| i);
        }
        offset += l.len();
    }
    s.len()
}
