//! Evaluating a parsed template against API Gateway's variables.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::jsonpath::{JsonPath, Selection};
use super::parse::{Access, BinOp, Expr, Lit, Node, Ref};
use super::value::{Builtin, LoopState, Map, Num, Style, Value};
use super::{Limits, MAX_FOREACH, RenderError, Template, Variables};
use crate::clock::{Clock, SystemClock};

/// How a run of nodes ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Stop,
}

type Res<T> = Result<T, RenderError>;

/// How deep node lists may nest while rendering (each `#if`, `#foreach`,
/// macro body, block and interpolated string is one level): bounds the
/// evaluator's recursion whatever `max_depth` and the template's nesting.
const MAX_NEST: usize = 96;

/// One render's state.
pub(super) struct Eval<'a> {
    t: &'a Template,
    vars: &'a Variables<'a>,
    limits: &'a Limits,
    scope: HashMap<Rc<str>, Value>,
    out: String,
    steps: u64,
    deadline: u64,
    /// The body parsed as JSON, once a template selects from it.
    json: OnceCell<Result<Rc<serde_json::Value>, String>>,
    /// Every list and map made during the render: emptied at its end, so
    /// that a list holding itself is not leaked.
    heap: Vec<Value>,
    /// Elements in the lists and maps made so far.
    items: usize,
    foreach: Option<Rc<LoopState>>,
    depth: usize,
    /// Nesting of node lists being rendered (blocks, bodies, strings).
    nest: usize,
    regexes: HashMap<String, Rc<regex::Regex>>,
}

impl Drop for Eval<'_> {
    fn drop(&mut self) {
        for v in self.heap.drain(..) {
            match v {
                Value::List(l, _) => l.borrow_mut().clear(),
                Value::Map(m, _) => m.borrow_mut().clear(),
                _ => {}
            }
        }
    }
}

impl<'a> Eval<'a> {
    pub(super) fn new(t: &'a Template, vars: &'a Variables<'a>, limits: &'a Limits) -> Self {
        let now = SystemClock.unix_nanos();
        Self {
            t,
            vars,
            limits,
            scope: HashMap::new(),
            out: String::new(),
            steps: limits.max_steps,
            deadline: now
                .saturating_add(u64::try_from(limits.max_time.as_nanos()).unwrap_or(u64::MAX)),
            json: OnceCell::new(),
            heap: Vec::new(),
            items: 0,
            foreach: None,
            depth: 0,
            nest: 0,
            regexes: HashMap::new(),
        }
    }

    pub(super) fn run(mut self) -> Res<(String, super::Overrides)> {
        let t = self.t;
        self.nodes(&t.parsed.nodes)?;
        let overrides = self.overrides();
        Ok((std::mem::take(&mut self.out), overrides))
    }

    /// What the template set under `$context.requestOverride` and
    /// `$context.responseOverride` (only a `#set` or a `put` into
    /// `$context` makes it a value of its own; otherwise nothing was set).
    fn overrides(&self) -> super::Overrides {
        let mut o = super::Overrides::default();
        let Some(Value::Map(context, _)) = self.scope.get("context") else {
            return o;
        };
        let context = context.borrow();
        let entries = |v: Option<&Value>, name: &str| -> Vec<(String, String)> {
            let Some(Value::Map(m, _)) = v else {
                return Vec::new();
            };
            let Some(Value::Map(inner, _)) = m.borrow().get(name).cloned() else {
                return Vec::new();
            };
            let inner = inner.borrow();
            inner
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_string(), v.to_java_string()))
                .collect()
        };
        let request = context.get("requestOverride");
        o.request_header = entries(request, "header");
        o.request_querystring = entries(request, "querystring");
        o.request_path = entries(request, "path");
        let response = context.get("responseOverride");
        o.response_header = entries(response, "header");
        if let Some(Value::Map(m, _)) = response {
            o.response_status = match m.borrow().get("status") {
                Some(Value::Int(i)) => u16::try_from(*i).ok(),
                Some(Value::Str(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .filter(|s| (100..=599).contains(s));
        }
        o
    }

    fn fail(&self, at: usize, message: impl Into<String>) -> RenderError {
        RenderError {
            position: Some(super::parse::position(&self.t.source, at)),
            message: message.into(),
        }
    }

    fn step(&mut self, at: usize) -> Res<()> {
        if self.steps == 0 {
            return Err(self.fail(at, "the template ran out of steps (mapping_limits.fuel)"));
        }
        self.steps -= 1;
        if self.steps.is_multiple_of(1024) && SystemClock.unix_nanos() > self.deadline {
            return Err(self.fail(at, "the template ran past mapping_limits.max_render_ms"));
        }
        Ok(())
    }

    /// Spends `n` steps at once (work proportional to a value's size).
    fn spend(&mut self, at: usize, n: usize) -> Res<()> {
        let n = n as u64 / 16;
        if n > self.steps {
            self.steps = 0;
            return Err(self.fail(at, "the template ran out of steps (mapping_limits.fuel)"));
        }
        self.steps -= n;
        self.step(at)
    }

    fn keep(&mut self, v: Value) -> Value {
        if matches!(v, Value::List(..) | Value::Map(..)) {
            self.heap.push(v.clone());
        }
        v
    }

    /// Accounts for `n` more collection elements.
    fn grow(&mut self, at: usize, n: usize) -> Res<()> {
        self.items = self.items.saturating_add(n);
        if self.items > self.limits.max_items() {
            return Err(self.fail(
                at,
                "the template built more values than mapping_limits.max_output allows",
            ));
        }
        self.spend(at, n)
    }

    fn new_list(&mut self, at: usize, items: Vec<Value>) -> Res<Value> {
        self.grow(at, items.len())?;
        Ok(self.keep(Value::list(items)))
    }

    fn new_map(&mut self, at: usize, m: Map) -> Res<Value> {
        self.grow(at, m.len())?;
        Ok(self.keep(Value::map(m)))
    }

    fn new_str(&mut self, at: usize, s: String) -> Res<Value> {
        if s.len() > self.limits.max_output {
            return Err(self.fail(at, "a string grew past mapping_limits.max_output"));
        }
        self.spend(at, s.len())?;
        Ok(Value::string(s))
    }

    fn make_json(&mut self, v: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Array(items) => {
                let list: Vec<Value> = items.iter().map(|i| self.make_json(i)).collect();
                self.items += list.len();
                self.keep(Value::List(Rc::new(RefCell::new(list)), Style::Json))
            }
            J::Object(m) => {
                let map: Map = m
                    .iter()
                    .map(|(k, v)| (Rc::from(k.as_str()), self.make_json(v)))
                    .collect();
                self.items += map.len();
                self.keep(Value::Map(Rc::new(RefCell::new(map)), Style::Java))
            }
            other => Value::from_json(other),
        }
    }

    fn emit(&mut self, at: usize, s: &str) -> Res<()> {
        if self.out.len() + s.len() > self.limits.max_output {
            return Err(self.fail(at, "the output grew past mapping_limits.max_output"));
        }
        self.out.push_str(s);
        Ok(())
    }

    /// The value as a string (a `#define` block rendered), bounded.
    fn stringify(&mut self, at: usize, v: &Value) -> Res<String> {
        if let Value::Builtin(Builtin::Block(id)) = v {
            return self.capture(at, |e| {
                let t = e.t;
                e.nested(at, |e| e.nodes(&t.parsed.blocks[*id]).map(|_| ()))
            });
        }
        let mut s = String::new();
        if !v.java_bounded(&mut s, self.limits.max_output) {
            return Err(self.fail(at, "a value too large (mapping_limits.max_output) or nested too deeply (64 levels) to print"));
        }
        self.spend(at, s.len())?;
        Ok(s)
    }

    /// Renders into a string of its own (string interpolation, blocks).
    fn capture(&mut self, at: usize, f: impl FnOnce(&mut Self) -> Res<()>) -> Res<String> {
        let saved = std::mem::take(&mut self.out);
        let r = f(self);
        let inner = std::mem::replace(&mut self.out, saved);
        r?;
        if inner.len() > self.limits.max_output {
            return Err(self.fail(at, "a string grew past mapping_limits.max_output"));
        }
        Ok(inner)
    }

    fn nested<T>(&mut self, at: usize, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        if self.depth >= self.limits.max_depth {
            return Err(self.fail(at, "macros or blocks nested past mapping_limits.max_depth"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// `==` (`java`: Java's `equals`), its work spent as steps; a
    /// comparison that would take more than a million values fails.
    fn equal(&mut self, at: usize, a: &Value, b: &Value, java: bool) -> Res<bool> {
        const BUDGET: usize = 1_000_000;
        let mut budget = BUDGET;
        let r = if java {
            a.java_equals(b, &mut budget)
        } else {
            a.velocity_eq(b, &mut budget)
        };
        self.spend(at, BUDGET - budget)?;
        r.ok_or_else(|| self.fail(at, "a comparison of values too large to compare"))
    }

    /// The position of the first item `equals` to `x`.
    fn position(&mut self, at: usize, items: &[Value], x: &Value) -> Res<Option<usize>> {
        for (i, v) in items.iter().enumerate() {
            if self.equal(at, v, x, true)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    fn nodes(&mut self, nodes: &[Node]) -> Res<Flow> {
        // Blocks inside macros inside blocks: however they nest, the
        // evaluator's own recursion stays within MAX_NEST.
        if self.nest >= MAX_NEST {
            return Err(self.fail(
                0,
                "blocks, macros and strings nested too deeply while rendering",
            ));
        }
        self.nest += 1;
        let mut r = Ok(Flow::Normal);
        for n in nodes {
            match self.node(n) {
                Ok(Flow::Normal) => {}
                other => {
                    r = other;
                    break;
                }
            }
        }
        self.nest -= 1;
        r
    }

    fn node(&mut self, n: &Node) -> Res<Flow> {
        match n {
            Node::Text(t) => self.emit(0, t)?,
            Node::Ref(r) => {
                self.step(r.at)?;
                match self.reference(r)? {
                    Value::Null => {}
                    Value::Str(s) => self.emit(r.at, &s)?,
                    v @ (Value::Int(_) | Value::Double(_) | Value::Bool(_)) => {
                        let mut s = String::new();
                        super::value::scalar(&v, &mut s);
                        self.emit(r.at, &s)?;
                    }
                    v => {
                        let s = self.stringify(r.at, &v)?;
                        self.emit(r.at, &s)?;
                    }
                }
            }
            Node::Escaped {
                backslashes,
                reference,
                source,
            } => {
                self.step(reference.at)?;
                let defined = !self.reference(reference)?.is_null();
                let mut s = String::new();
                if defined {
                    s.extend(std::iter::repeat_n('\\', backslashes / 2));
                    if backslashes % 2 == 1 {
                        s.push_str(source);
                        self.emit(reference.at, &s)?;
                    } else {
                        self.emit(reference.at, &s)?;
                        let v = self.reference(reference)?;
                        let text = self.stringify(reference.at, &v)?;
                        self.emit(reference.at, &text)?;
                    }
                } else {
                    // Velocity keeps every backslash of an undefined reference.
                    s.extend(std::iter::repeat_n('\\', *backslashes));
                    s.push_str(source);
                    self.emit(reference.at, &s)?;
                }
            }
            Node::Set(lhs, e) => {
                self.step(lhs.at)?;
                let v = self.expr(e)?;
                self.assign(lhs, v)?;
            }
            Node::If(branches, otherwise) => {
                for (cond, body) in branches {
                    if self.expr(cond)?.truthy() {
                        return self.nodes(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.nodes(body);
                }
            }
            Node::Foreach {
                var,
                iterable,
                body,
                at,
            } => return self.foreach(var, iterable, body, *at),
            Node::Break => return Ok(Flow::Break),
            Node::Stop => return Ok(Flow::Stop),
            Node::Define(name, id) => {
                self.scope
                    .insert(Rc::from(&**name), Value::Builtin(Builtin::Block(*id)));
            }
            Node::Call {
                name,
                args,
                source,
                at,
            } => {
                self.step(*at)?;
                let t = self.t;
                let Some(m) = t.parsed.macros.iter().rev().find(|m| m.name == *name) else {
                    self.emit(*at, source)?;
                    return Ok(Flow::Normal);
                };
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.expr(a)?);
                }
                let mut saved = Vec::with_capacity(m.params.len());
                for (i, p) in m.params.iter().enumerate() {
                    let v = values.get(i).cloned().unwrap_or(Value::Null);
                    let key: Rc<str> = Rc::from(&**p);
                    saved.push((key.clone(), self.scope.insert(key, v)));
                }
                let flow = self.nested(*at, |e| e.nodes(&m.body));
                for (k, old) in saved {
                    match old {
                        Some(v) => self.scope.insert(k, v),
                        None => self.scope.remove(&k),
                    };
                }
                if flow? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        Ok(Flow::Normal)
    }

    fn foreach(&mut self, var: &str, iterable: &Expr, body: &[Node], at: usize) -> Res<Flow> {
        let over = self.expr(iterable)?;
        let items: Vec<Value> = match &over {
            Value::List(l, _) => l.borrow().clone(),
            // A map's values, as Velocity iterates a Map.
            Value::Map(m, _) => m.borrow().values().cloned().collect(),
            _ => Vec::new(),
        };
        self.spend(at, items.len())?;
        // API Gateway's limit: at most 1,000 iterations.
        let len = items.len().min(MAX_FOREACH);
        let state = Rc::new(LoopState {
            index: std::cell::Cell::new(0),
            len,
            parent: self.foreach.clone(),
        });
        let key: Rc<str> = Rc::from(var);
        let saved_var = self.scope.get(&key).cloned();
        let saved_loop = self.foreach.replace(state.clone());
        let mut flow = Flow::Normal;
        for (i, item) in items.into_iter().take(len).enumerate() {
            self.step(at)?;
            state.index.set(i);
            self.scope.insert(key.clone(), item);
            match self.nodes(body) {
                Ok(Flow::Normal) => {}
                Ok(Flow::Break) => break,
                Ok(Flow::Stop) => {
                    flow = Flow::Stop;
                    break;
                }
                Err(e) => {
                    self.foreach = saved_loop;
                    return Err(e);
                }
            }
        }
        self.foreach = saved_loop;
        match saved_var {
            Some(v) => self.scope.insert(key, v),
            None => self.scope.remove(&key),
        };
        Ok(flow)
    }

    fn assign(&mut self, lhs: &Ref, v: Value) -> Res<()> {
        // Velocity 1.7: a null right-hand side leaves the reference as it was.
        if v.is_null() {
            return Ok(());
        }
        let Some((last, init)) = lhs.chain.split_last() else {
            self.scope.insert(Rc::from(&*lhs.root), v);
            return Ok(());
        };
        let target = self.walk(lhs, init)?;
        match (last, &target) {
            (Access::Property(name), Value::Map(m, _)) => {
                self.grow(lhs.at, 1)?;
                m.borrow_mut().insert(Rc::from(&**name), v);
            }
            (Access::Index(i), _) => {
                let i = self.expr(i)?;
                match (&target, i) {
                    (Value::List(l, _), Value::Int(i)) => {
                        let mut l = l.borrow_mut();
                        if let Some(slot) = usize::try_from(i).ok().and_then(|i| l.get_mut(i)) {
                            *slot = v;
                        }
                    }
                    (Value::Map(m, _), k) if !k.is_null() => {
                        let k = self.stringify(lhs.at, &k)?;
                        self.grow(lhs.at, 1)?;
                        m.borrow_mut().insert(Rc::from(k), v);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn reference(&mut self, r: &Ref) -> Res<Value> {
        self.walk(r, &r.chain)
    }

    /// `$context` and `$stageVariables` as values, made the first time a
    /// template needs them whole (a method call, a `#set` into them);
    /// reading `$context.a.b` walks the variables without making them.
    fn materialize(&mut self, name: &str) {
        if self.scope.contains_key(name) {
            return;
        }
        let v = match name {
            "context" => self.make_json(self.vars.context),
            "stageVariables" => {
                let stage: Map = self
                    .vars
                    .stage_variables
                    .iter()
                    .map(|(k, v)| (Rc::from(k.as_str()), Value::str(v)))
                    .collect();
                self.keep(Value::map(stage))
            }
            _ => return,
        };
        self.scope.insert(Rc::from(name), v);
    }

    /// `$context.a.b...` and `$stageVariables.x` read without making the
    /// whole map: the value, and how many accesses it took.
    fn shortcut(&mut self, r: &Ref, chain: &[Access]) -> Option<(Value, usize)> {
        if self.scope.contains_key(&*r.root) {
            return None;
        }
        match &*r.root {
            "context" => {
                let mut v = self.vars.context;
                let mut n = 0;
                for a in chain {
                    let key: &str = match a {
                        Access::Property(p) => p,
                        Access::Index(Expr::Lit(Lit::Str(k))) => k,
                        _ => break,
                    };
                    v = v.get(key).unwrap_or(&serde_json::Value::Null);
                    n += 1;
                }
                // A map is made whole (its methods may be called on it).
                if n == 0 || v.is_object() || v.is_array() {
                    return None;
                }
                Some((Value::from_json(v), n))
            }
            "stageVariables" => match chain.first() {
                Some(Access::Property(k)) | Some(Access::Index(Expr::Lit(Lit::Str(k)))) => Some((
                    self.vars
                        .stage_variables
                        .get(&**k)
                        .map_or(Value::Null, |v| Value::str(v)),
                    1,
                )),
                _ => None,
            },
            _ => None,
        }
    }

    fn root(&self, name: &str) -> Value {
        if let Some(v) = self.scope.get(name) {
            return v.clone();
        }
        match name {
            "input" => Value::Builtin(Builtin::Input),
            "util" => Value::Builtin(Builtin::Util),
            "foreach" => self
                .foreach
                .clone()
                .map_or(Value::Null, |s| Value::Builtin(Builtin::Foreach(s))),
            "velocityCount" => self
                .foreach
                .as_ref()
                .map_or(Value::Null, |s| Value::Int(s.index.get() as i64 + 1)),
            _ => Value::Null,
        }
    }

    fn walk(&mut self, r: &Ref, chain: &[Access]) -> Res<Value> {
        let (mut v, skip) = match self.shortcut(r, chain) {
            Some(found) => found,
            None => {
                self.materialize(&r.root);
                (self.root(&r.root), 0)
            }
        };
        for a in &chain[skip..] {
            if v.is_null() {
                return Ok(Value::Null);
            }
            self.step(r.at)?;
            v = match a {
                Access::Property(name) => self.property(r.at, &v, name)?,
                Access::Index(i) => {
                    let i = self.expr(i)?;
                    match (&v, &i) {
                        (Value::List(l, _), Value::Int(i)) => usize::try_from(*i)
                            .ok()
                            .and_then(|i| l.borrow().get(i).cloned())
                            .unwrap_or(Value::Null),
                        (Value::Map(m, _), k) if !k.is_null() => {
                            let k = self.stringify(r.at, k)?;
                            m.borrow().get(k.as_str()).cloned().unwrap_or(Value::Null)
                        }
                        _ => Value::Null,
                    }
                }
                Access::Method(name, args) => {
                    let mut values = Vec::with_capacity(args.len());
                    for a in args {
                        values.push(self.expr(a)?);
                    }
                    self.method(r.at, &v, name, values)?
                }
            };
        }
        Ok(v)
    }

    /// `$v.name`: Velocity looks for `getName()`, then (on a map)
    /// `get("name")`, then `isName()`.
    fn property(&mut self, at: usize, v: &Value, name: &str) -> Res<Value> {
        Ok(match v {
            Value::Map(m, _) => m.borrow().get(name).cloned().unwrap_or(Value::Null),
            Value::Entry(e) => match name {
                "key" => e.0.clone(),
                "value" => e.1.clone(),
                _ => Value::Null,
            },
            Value::Builtin(Builtin::Input) => match name {
                "body" => self.body(at)?,
                _ => Value::Null,
            },
            Value::Builtin(Builtin::Foreach(s)) => foreach_property(s, name),
            Value::List(l, _) if name == "empty" => Value::Bool(l.borrow().is_empty()),
            Value::Str(s) if name == "empty" => Value::Bool(s.is_empty()),
            Value::Str(s) if name == "bytes" => {
                let bytes = s.bytes().map(|b| Value::Int(i64::from(b as i8))).collect();
                self.new_list(at, bytes)?
            }
            _ => Value::Null,
        })
    }

    fn body(&mut self, at: usize) -> Res<Value> {
        let text = if self.vars.body.is_empty() {
            "{}".to_owned()
        } else {
            String::from_utf8_lossy(self.vars.body).into_owned()
        };
        self.new_str(at, text)
    }

    /// The body as JSON (`{}` when empty), parsed once.
    fn document(&mut self, at: usize) -> Res<Rc<serde_json::Value>> {
        let body = self.vars.body;
        let limit = self.limits.max_output;
        let parsed = self.json.get_or_init(|| {
            if body.is_empty() {
                return Ok(Rc::new(serde_json::Value::Object(Default::default())));
            }
            // API Gateway's parser (json-smart, permissive) reads a body
            // that does not start like an object or array as one string.
            let starts = body.iter().find(|b| !b.is_ascii_whitespace());
            match crate::mapping::parse_json_for_template(body, limit) {
                Err(_) if !matches!(starts, Some(b'{' | b'[')) => Ok(serde_json::Value::String(
                    String::from_utf8_lossy(body).trim().to_owned(),
                )),
                parsed => parsed,
            }
            .map(Rc::new)
        });
        match parsed {
            Ok(doc) => Ok(doc.clone()),
            Err(e) => Err(RenderError {
                position: Some(super::parse::position(&self.t.source, at)),
                message: format!("$input: the body is not JSON ({e})"),
            }),
        }
    }

    fn compiled_path(&self, at: usize, path: &str) -> Res<std::sync::Arc<JsonPath>> {
        if let Some(p) = self.t.paths.get(path) {
            return Ok(p.clone());
        }
        JsonPath::parse(path)
            .map(std::sync::Arc::new)
            .map_err(|e| self.fail(at, format!("invalid JSONPath: {e}")))
    }

    fn input_method(&mut self, at: usize, name: &str, args: &[Value]) -> Res<Value> {
        match (name, args) {
            ("json" | "path", [p]) => {
                let Value::Str(p) = p else {
                    return Ok(Value::Null);
                };
                let path = self.compiled_path(at, p)?;
                let doc = self.document(at)?;
                let selection = path.select(&doc).map_err(|e| RenderError {
                    position: Some(super::parse::position(&self.t.source, at)),
                    message: e,
                })?;
                if name == "json" {
                    let mut text = String::new();
                    let ok = match &selection {
                        Selection::One(Some(v)) => {
                            bounded_json(v, &mut text, self.limits.max_output)
                        }
                        // API Gateway writes `""` for a path that selects nothing.
                        Selection::One(None) => {
                            text.push_str("\"\"");
                            true
                        }
                        Selection::Many(vs) => {
                            text.push('[');
                            let mut ok = true;
                            for (i, v) in vs.iter().enumerate() {
                                if i > 0 {
                                    text.push(',');
                                }
                                ok = ok && bounded_json(v, &mut text, self.limits.max_output);
                            }
                            text.push(']');
                            ok
                        }
                    };
                    if !ok {
                        return Err(self.fail(
                            at,
                            "a JSONPath selection is larger than mapping_limits.max_output",
                        ));
                    }
                    return self.new_str(at, text);
                }
                let size = match &selection {
                    Selection::One(Some(v)) => json_size(v, self.limits.max_items()),
                    Selection::One(None) => Some(0),
                    Selection::Many(vs) => vs.iter().try_fold(vs.len(), |n, v| {
                        json_size(v, self.limits.max_items()).map(|m| n + m)
                    }),
                };
                let Some(size) = size.filter(|n| self.items + n <= self.limits.max_items()) else {
                    return Err(self.fail(
                        at,
                        "a JSONPath selection is larger than mapping_limits.max_output",
                    ));
                };
                self.spend(at, size)?;
                let value = match selection {
                    Selection::One(Some(v)) => {
                        let v = v.clone();
                        self.make_json(&v)
                    }
                    Selection::One(None) => Value::Null,
                    Selection::Many(vs) => {
                        let vs: Vec<serde_json::Value> = vs.into_iter().cloned().collect();
                        let items = vs.iter().map(|v| self.make_json(v)).collect();
                        self.new_list(at, items)?
                    }
                };
                Ok(value)
            }
            ("params", []) => {
                let p = self.vars.params;
                let mut all = Map::new();
                for (name, m) in [
                    ("path", p.path),
                    ("querystring", p.querystring),
                    ("header", p.header),
                ] {
                    let inner: Map = m
                        .iter()
                        .map(|(k, v)| (Rc::from(k.as_str()), Value::str(v)))
                        .collect();
                    let inner = self.new_map(at, inner)?;
                    all.insert(Rc::from(name), inner);
                }
                self.new_map(at, all)
            }
            ("params", [name]) => {
                let Value::Str(name) = name else {
                    return Ok(Value::Null);
                };
                // A parameter the request does not have is `""`.
                Ok(Value::str(self.vars.params.lookup(name).unwrap_or("")))
            }
            _ => Ok(Value::Null),
        }
    }

    fn util_method(&mut self, at: usize, name: &str, args: &[Value]) -> Res<Value> {
        let [arg] = args else {
            return Ok(Value::Null);
        };
        if arg.is_null() {
            return Ok(Value::Null);
        }
        let s = self.stringify(at, arg)?;
        let limit = self.limits.max_output;
        match name {
            "escapeJavaScript" => {
                if s.len().saturating_mul(12) > limit
                    && crate::mapping::escape_javascript(&s).len() > limit
                {
                    return Err(self.fail(at, "$util.escapeJavaScript: the result is larger than mapping_limits.max_output"));
                }
                let out = crate::mapping::escape_javascript(&s);
                self.new_str(at, out)
            }
            "urlEncode" => {
                let out = crate::mapping::url_encode(&s);
                self.new_str(at, out)
            }
            "urlDecode" => {
                let out = crate::mapping::url_decode(&s);
                self.new_str(at, out)
            }
            "base64Encode" => {
                let out = STANDARD.encode(s.as_bytes());
                self.new_str(at, out)
            }
            "base64Decode" => match STANDARD.decode(s.trim().as_bytes()) {
                Ok(bytes) => {
                    let out = String::from_utf8_lossy(&bytes).into_owned();
                    self.new_str(at, out)
                }
                Err(_) => Err(self.fail(at, "$util.base64Decode: the argument is not base64")),
            },
            "parseJson" => {
                let parsed = crate::mapping::parse_json_for_template(s.as_bytes(), limit)
                    .map_err(|e| self.fail(at, format!("$util.parseJson: {e}")))?;
                let size = json_size(&parsed, self.limits.max_items())
                    .filter(|n| self.items + n <= self.limits.max_items())
                    .ok_or_else(|| {
                        self.fail(
                            at,
                            "$util.parseJson: the value is larger than mapping_limits.max_output",
                        )
                    })?;
                self.spend(at, size)?;
                Ok(self.make_json(&parsed))
            }
            _ => Ok(Value::Null),
        }
    }

    fn regex(&mut self, at: usize, pattern: &str, whole: bool) -> Res<Rc<regex::Regex>> {
        let key = if whole {
            format!("^(?:{pattern})$")
        } else {
            pattern.to_owned()
        };
        if let Some(r) = self.regexes.get(&key) {
            return Ok(r.clone());
        }
        self.spend(at, pattern.len() * 64)?;
        let r = regex::RegexBuilder::new(&key)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| self.fail(at, format!("a regular expression tollgate cannot run: {e}")))?;
        let r = Rc::new(r);
        if self.regexes.len() < 64 {
            self.regexes.insert(key, r.clone());
        }
        Ok(r)
    }

    fn method(&mut self, at: usize, v: &Value, name: &str, args: Vec<Value>) -> Res<Value> {
        match v {
            Value::Builtin(Builtin::Input) => self.input_method(at, name, &args),
            Value::Builtin(Builtin::Util) => self.util_method(at, name, &args),
            Value::Builtin(Builtin::Foreach(s)) => Ok(match (name, args.as_slice()) {
                ("hasNext", []) => foreach_property(s, "hasNext"),
                ("getIndex", []) => foreach_property(s, "index"),
                ("getCount", []) => foreach_property(s, "count"),
                ("isFirst", []) => foreach_property(s, "first"),
                ("isLast", []) => foreach_property(s, "last"),
                _ => Value::Null,
            }),
            Value::Str(s) => self.string_method(at, s, name, &args),
            Value::List(l, _) => self.list_method(at, l, name, args),
            Value::Map(m, _) => self.map_method(at, m, name, args),
            Value::Entry(e) => Ok(match (name, args.as_slice()) {
                ("getKey", []) => e.0.clone(),
                ("getValue", []) => e.1.clone(),
                ("toString", []) => {
                    let s = self.stringify(at, v)?;
                    Value::string(s)
                }
                _ => Value::Null,
            }),
            Value::Int(_) | Value::Double(_) | Value::Bool(_) => {
                Ok(match (name, args.as_slice()) {
                    ("toString", []) => {
                        let s = self.stringify(at, v)?;
                        Value::string(s)
                    }
                    ("equals", [o]) => Value::Bool(self.equal(at, v, o, true)?),
                    ("intValue" | "longValue", []) => match v.number() {
                        Some(n) => Value::Int(n.as_f64() as i64),
                        None => Value::Null,
                    },
                    ("doubleValue" | "floatValue", []) => match v.number() {
                        Some(n) => Value::Double(n.as_f64()),
                        None => Value::Null,
                    },
                    ("booleanValue", []) => match v {
                        Value::Bool(b) => Value::Bool(*b),
                        _ => Value::Null,
                    },
                    _ => Value::Null,
                })
            }
            Value::Builtin(Builtin::Block(_)) => {
                let s = self.stringify(at, v)?;
                let s = Rc::from(s.as_str());
                self.string_method(at, &s, name, &args)
            }
            Value::Null => Ok(Value::Null),
        }
    }

    fn string_method(&mut self, at: usize, s: &Rc<str>, name: &str, args: &[Value]) -> Res<Value> {
        self.spend(at, s.len())?;
        let text = |v: &Value| match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        };
        let int = |v: &Value| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        };
        // Java indexes strings in UTF-16 units; these count characters,
        // which is the same for text in the Basic Multilingual Plane.
        let chars = || s.chars().count() as i64;
        let char_offset = |n: i64| s.char_indices().nth(n as usize).map_or(s.len(), |(i, _)| i);
        Ok(match (name, args) {
            ("length", []) => Value::Int(chars()),
            ("isEmpty", []) => Value::Bool(s.is_empty()),
            ("toString" | "trim" | "toLowerCase" | "toUpperCase" | "strip", []) => {
                let out = match name {
                    "toString" => s.to_string(),
                    "trim" => s.trim_matches(|c: char| c <= ' ').to_owned(),
                    "strip" => s.trim().to_owned(),
                    "toLowerCase" => s.to_lowercase(),
                    _ => s.to_uppercase(),
                };
                self.new_str(at, out)?
            }
            ("equals", [o]) => Value::Bool(matches!(o, Value::Str(o) if o == s)),
            ("equalsIgnoreCase", [o]) => {
                Value::Bool(text(o).is_some_and(|o| o.to_lowercase() == s.to_lowercase()))
            }
            ("contains", [o]) => match text(o) {
                Some(o) => Value::Bool(s.contains(&*o)),
                None => Value::Null,
            },
            ("startsWith", [o]) => match text(o) {
                Some(o) => Value::Bool(s.starts_with(&*o)),
                None => Value::Null,
            },
            ("endsWith", [o]) => match text(o) {
                Some(o) => Value::Bool(s.ends_with(&*o)),
                None => Value::Null,
            },
            ("indexOf" | "lastIndexOf", [o, rest @ ..]) => {
                let Some(o) = text(o) else {
                    return Ok(Value::Null);
                };
                let from = rest.first().and_then(int).unwrap_or(0).clamp(0, chars());
                let found = if name == "indexOf" {
                    let start = char_offset(from);
                    s[start..].find(&*o).map(|b| start + b)
                } else {
                    // Java: the last occurrence starting at or before `from`.
                    let end = match rest.first().and_then(int) {
                        Some(f) if f < 0 => return Ok(Value::Int(-1)),
                        Some(f) => (char_offset(f.min(chars())) + o.len()).min(s.len()),
                        None => s.len(),
                    };
                    let end = (0..=end)
                        .rev()
                        .find(|i| s.is_char_boundary(*i))
                        .unwrap_or(0);
                    s[..end].rfind(&*o)
                };
                Value::Int(found.map_or(-1, |b| s[..b].chars().count() as i64))
            }
            ("charAt", [i]) => match int(i).and_then(|i| s.chars().nth(usize::try_from(i).ok()?)) {
                Some(c) => Value::string(c.to_string()),
                None => return Err(self.fail(at, "charAt: index out of range")),
            },
            ("substring", [a, rest @ ..]) => {
                let (Some(a), b) = (int(a), rest.first().map(int)) else {
                    return Ok(Value::Null);
                };
                let n = chars();
                let b = match b {
                    None => n,
                    Some(Some(b)) => b,
                    Some(None) => return Ok(Value::Null),
                };
                if a < 0 || b > n || a > b {
                    // Java throws StringIndexOutOfBoundsException.
                    return Err(
                        self.fail(at, format!("substring({a}, {b}) of a {n}-character string"))
                    );
                }
                let out = s[char_offset(a)..char_offset(b)].to_owned();
                self.new_str(at, out)?
            }
            ("concat", [o]) => match text(o) {
                Some(o) => {
                    let out = format!("{s}{o}");
                    self.new_str(at, out)?
                }
                None => Value::Null,
            },
            ("replace", [a, b]) => {
                let (Some(a), Some(b)) = (self.char_or_text(a), self.char_or_text(b)) else {
                    return Ok(Value::Null);
                };
                let grown = if a.is_empty() {
                    s.len() + (chars() as usize + 1) * b.len()
                } else {
                    s.len() / a.len() * b.len().max(a.len()) + s.len()
                };
                if grown > self.limits.max_output.saturating_mul(2) {
                    return Err(self.fail(
                        at,
                        "replace: the result is larger than mapping_limits.max_output",
                    ));
                }
                let out = s.replace(&*a, &b);
                self.new_str(at, out)?
            }
            ("replaceAll" | "replaceFirst", [re, rep]) => {
                let (Some(re), Some(rep)) = (text(re), text(rep)) else {
                    return Ok(Value::Null);
                };
                let r = self.regex(at, &re, false)?;
                let rep = java_replacement(&rep);
                // Expanded match by match: `$0` repeated in the replacement
                // copies the whole match each time, so the size is checked
                // as it grows.
                let limit = self.limits.max_output;
                let mut out = String::new();
                let mut last = 0;
                for caps in r.captures_iter(s) {
                    let Some(m) = caps.get(0) else { continue };
                    out.push_str(&s[last..m.start()]);
                    caps.expand(&rep, &mut out);
                    last = m.end();
                    if out.len() > limit {
                        return Err(self.fail(
                            at,
                            format!("{name}: the result is larger than mapping_limits.max_output"),
                        ));
                    }
                    if name == "replaceFirst" {
                        break;
                    }
                }
                out.push_str(&s[last..]);
                self.new_str(at, out)?
            }
            ("matches", [re]) => {
                let Some(re) = text(re) else {
                    return Ok(Value::Null);
                };
                Value::Bool(self.regex(at, &re, true)?.is_match(s))
            }
            ("split", [re, rest @ ..]) => {
                let Some(re) = text(re) else {
                    return Ok(Value::Null);
                };
                let limit = rest.first().and_then(int).unwrap_or(0);
                let r = self.regex(at, &re, false)?;
                let mut parts: Vec<&str> = if limit > 0 {
                    r.splitn(s, limit as usize).collect()
                } else {
                    r.split(s).collect()
                };
                // Java drops a leading empty string made by a match at 0
                // of width > 0, and (limit 0) every trailing empty string.
                if parts.len() > 1
                    && parts.first() == Some(&"")
                    && r.find(s).is_some_and(|m| m.start() == 0)
                {
                    parts.remove(0);
                }
                if limit == 0 {
                    while parts.len() > 1 && parts.last() == Some(&"") {
                        parts.pop();
                    }
                    if parts == [""] && !s.is_empty() {
                        parts.clear();
                    }
                }
                let items = parts.into_iter().map(Value::str).collect();
                self.new_list(at, items)?
            }
            ("compareTo", [o]) => match text(o) {
                Some(o) => Value::Int(match s.cmp(&o) {
                    std::cmp::Ordering::Less => -1,
                    std::cmp::Ordering::Equal => 0,
                    std::cmp::Ordering::Greater => 1,
                }),
                None => Value::Null,
            },
            ("hashCode", []) => {
                let mut h: i32 = 0;
                for u in s.encode_utf16() {
                    h = h.wrapping_mul(31).wrapping_add(i32::from(u));
                }
                Value::Int(i64::from(h))
            }
            _ => Value::Null,
        })
    }

    fn char_or_text(&self, v: &Value) -> Option<String> {
        match v {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    fn list_method(
        &mut self,
        at: usize,
        l: &Rc<RefCell<Vec<Value>>>,
        name: &str,
        args: Vec<Value>,
    ) -> Res<Value> {
        let len = l.borrow().len();
        let index = |v: &Value| match v {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        };
        Ok(match (name, args.as_slice()) {
            ("size", []) => Value::Int(len as i64),
            ("isEmpty", []) => Value::Bool(len == 0),
            ("get", [i]) => match index(i).and_then(|i| l.borrow().get(i).cloned()) {
                Some(v) => v,
                None => return Err(self.fail(at, format!("get({i}) of a list of {len}"))),
            },
            ("contains", [x]) => {
                let items = l.borrow().clone();
                Value::Bool(self.position(at, &items, x)?.is_some())
            }
            ("indexOf", [x]) => {
                let items = l.borrow().clone();
                Value::Int(self.position(at, &items, x)?.map_or(-1, |i| i as i64))
            }
            ("add", [x]) => {
                self.grow(at, 1)?;
                l.borrow_mut().push(x.clone());
                Value::Bool(true)
            }
            ("add", [i, x]) => {
                match index(i).filter(|i| *i <= len) {
                    Some(i) => {
                        self.grow(at, 1)?;
                        l.borrow_mut().insert(i, x.clone());
                    }
                    None => return Err(self.fail(at, format!("add({i}, ..) to a list of {len}"))),
                }
                Value::Null
            }
            ("addAll", [Value::List(other, _)]) => {
                let items = other.borrow().clone();
                self.grow(at, items.len())?;
                let changed = !items.is_empty();
                l.borrow_mut().extend(items);
                Value::Bool(changed)
            }
            ("set", [i, x]) => match index(i).filter(|i| *i < len) {
                Some(i) => std::mem::replace(&mut l.borrow_mut()[i], x.clone()),
                None => return Err(self.fail(at, format!("set({i}, ..) in a list of {len}"))),
            },
            ("remove", [Value::Int(i)]) => match usize::try_from(*i).ok().filter(|i| *i < len) {
                Some(i) => l.borrow_mut().remove(i),
                None => return Err(self.fail(at, format!("remove({i}) from a list of {len}"))),
            },
            ("remove", [x]) => {
                let items = l.borrow().clone();
                let pos = self.position(at, &items, x)?;
                match pos {
                    Some(p) => {
                        l.borrow_mut().remove(p);
                        Value::Bool(true)
                    }
                    None => Value::Bool(false),
                }
            }
            ("clear", []) => {
                l.borrow_mut().clear();
                Value::Null
            }
            ("subList", [a, b]) => match (index(a), index(b)) {
                (Some(a), Some(b)) if a <= b && b <= len => {
                    let items = l.borrow()[a..b].to_vec();
                    self.new_list(at, items)?
                }
                _ => return Err(self.fail(at, format!("subList({a}, {b}) of a list of {len}"))),
            },
            ("toString", []) => {
                let s = self.stringify(at, &Value::List(l.clone(), super::value::Style::Java))?;
                Value::string(s)
            }
            ("equals", [o]) => {
                Value::Bool(self.equal(at, &Value::List(l.clone(), Style::Java), o, true)?)
            }
            _ => Value::Null,
        })
    }

    fn map_method(
        &mut self,
        at: usize,
        m: &Rc<RefCell<Map>>,
        name: &str,
        args: Vec<Value>,
    ) -> Res<Value> {
        let len = m.borrow().len();
        let key = |e: &mut Self, v: &Value| -> Res<Option<String>> {
            if v.is_null() {
                Ok(None)
            } else {
                e.stringify(at, v).map(Some)
            }
        };
        Ok(match (name, args.as_slice()) {
            ("size", []) => Value::Int(len as i64),
            ("isEmpty", []) => Value::Bool(len == 0),
            ("get", [k]) => match key(self, k)? {
                Some(k) => m.borrow().get(k.as_str()).cloned().unwrap_or(Value::Null),
                None => Value::Null,
            },
            ("getOrDefault", [k, d]) => match key(self, k)? {
                Some(k) => m
                    .borrow()
                    .get(k.as_str())
                    .cloned()
                    .unwrap_or_else(|| d.clone()),
                None => d.clone(),
            },
            ("containsKey", [k]) => match key(self, k)? {
                Some(k) => Value::Bool(m.borrow().contains_key(k.as_str())),
                None => Value::Bool(false),
            },
            ("containsValue", [x]) => {
                let values: Vec<Value> = m.borrow().values().cloned().collect();
                Value::Bool(self.position(at, &values, x)?.is_some())
            }
            ("put", [k, v]) => match key(self, k)? {
                Some(k) => {
                    self.grow(at, 1)?;
                    m.borrow_mut()
                        .insert(Rc::from(k), v.clone())
                        .unwrap_or(Value::Null)
                }
                None => Value::Null,
            },
            ("putAll", [Value::Map(other, _)]) => {
                let entries: Vec<(Rc<str>, Value)> = other
                    .borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.grow(at, entries.len())?;
                m.borrow_mut().extend(entries);
                Value::Null
            }
            ("remove", [k]) => match key(self, k)? {
                Some(k) => m
                    .borrow_mut()
                    .shift_remove(k.as_str())
                    .unwrap_or(Value::Null),
                None => Value::Null,
            },
            ("clear", []) => {
                m.borrow_mut().clear();
                Value::Null
            }
            ("keySet", []) => {
                let keys = m.borrow().keys().map(|k| Value::Str(k.clone())).collect();
                self.new_list(at, keys)?
            }
            ("values", []) => {
                let values = m.borrow().values().cloned().collect();
                self.new_list(at, values)?
            }
            ("entrySet", []) => {
                let entries = m
                    .borrow()
                    .iter()
                    .map(|(k, v)| Value::Entry(Rc::new((Value::Str(k.clone()), v.clone()))))
                    .collect();
                self.new_list(at, entries)?
            }
            ("toString", []) => {
                let s = self.stringify(at, &Value::Map(m.clone(), Style::Java))?;
                Value::string(s)
            }
            ("equals", [o]) => {
                Value::Bool(self.equal(at, &Value::Map(m.clone(), Style::Java), o, true)?)
            }
            _ => Value::Null,
        })
    }

    fn expr(&mut self, e: &Expr) -> Res<Value> {
        Ok(match e {
            Expr::Lit(l) => match l {
                Lit::Bool(b) => Value::Bool(*b),
                Lit::Int(i) => Value::Int(*i),
                Lit::Double(d) => Value::Double(*d),
                Lit::Str(s) => Value::str(s),
            },
            Expr::Interpolated(nodes) => {
                let s = self.capture(0, |e| e.nodes(nodes).map(|_| ()))?;
                Value::string(s)
            }
            Expr::Ref(r) => {
                self.step(r.at)?;
                self.reference(r)?
            }
            Expr::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for i in items {
                    values.push(self.expr(i)?);
                }
                self.new_list(0, values)?
            }
            Expr::Range(a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                let (Some(a), Some(b)) = (range_end(&a), range_end(&b)) else {
                    return Ok(Value::Null);
                };
                let n = a.abs_diff(b).saturating_add(1);
                if n > self.limits.max_items() as u64 {
                    return Err(
                        self.fail(0, "a range larger than mapping_limits.max_output allows")
                    );
                }
                let items = if a <= b {
                    (a..=b).map(Value::Int).collect()
                } else {
                    (b..=a).rev().map(Value::Int).collect()
                };
                self.new_list(0, items)?
            }
            Expr::Map(entries) => {
                let mut m = Map::new();
                for (k, v) in entries {
                    let k = self.expr(k)?;
                    let k = self.stringify(0, &k)?;
                    let v = self.expr(v)?;
                    m.insert(Rc::from(k), v);
                }
                self.new_map(0, m)?
            }
            Expr::Not(e) => Value::Bool(!self.expr(e)?.truthy()),
            Expr::Neg(e) => match self.expr(e)?.number() {
                Some(Num::Int(i)) => i
                    .checked_neg()
                    .map_or(Value::Double(-(i as f64)), Value::Int),
                Some(Num::Double(d)) => Value::Double(-d),
                None => Value::Null,
            },
            Expr::Binary(op, a, b, at) => {
                self.step(*at)?;
                match op {
                    BinOp::Or => {
                        let v = self.expr(a)?.truthy() || self.expr(b)?.truthy();
                        Value::Bool(v)
                    }
                    BinOp::And => {
                        let v = self.expr(a)?.truthy() && self.expr(b)?.truthy();
                        Value::Bool(v)
                    }
                    _ => {
                        let (x, y) = (self.expr(a)?, self.expr(b)?);
                        self.binary(*op, x, y, *at)?
                    }
                }
            }
        })
    }

    fn binary(&mut self, op: BinOp, x: Value, y: Value, at: usize) -> Res<Value> {
        use std::cmp::Ordering;
        let order = |x: &Value, y: &Value| -> Option<Ordering> {
            match (x.number(), y.number()) {
                (Some(Num::Int(a)), Some(Num::Int(b))) => Some(a.cmp(&b)),
                (Some(a), Some(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                _ => match (x, y) {
                    (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
                    _ => None,
                },
            }
        };
        Ok(match op {
            BinOp::Eq => Value::Bool(self.equal(at, &x, &y, false)?),
            BinOp::Ne => Value::Bool(!self.equal(at, &x, &y, false)?),
            BinOp::Lt => Value::Bool(order(&x, &y) == Some(Ordering::Less)),
            BinOp::Le => Value::Bool(matches!(
                order(&x, &y),
                Some(Ordering::Less | Ordering::Equal)
            )),
            BinOp::Gt => Value::Bool(order(&x, &y) == Some(Ordering::Greater)),
            BinOp::Ge => Value::Bool(matches!(
                order(&x, &y),
                Some(Ordering::Greater | Ordering::Equal)
            )),
            BinOp::Add if matches!(x, Value::Str(_)) || matches!(y, Value::Str(_)) => {
                if x.is_null() || y.is_null() {
                    return Ok(Value::Null);
                }
                let mut s = self.stringify(at, &x)?;
                s.push_str(&self.stringify(at, &y)?);
                self.new_str(at, s)?
            }
            _ => {
                let (Some(a), Some(b)) = (x.number(), y.number()) else {
                    return Ok(Value::Null);
                };
                arithmetic(op, a, b)
            }
        })
    }
}

/// Integer arithmetic stays integer (Java's `int` and `long`; past 64 bits
/// it becomes a double), anything with a double is a double; division or
/// remainder by zero is null, as Velocity answers it.
fn arithmetic(op: BinOp, a: Num, b: Num) -> Value {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => {
            let r = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div if b == 0 => return Value::Null,
                BinOp::Rem if b == 0 => return Value::Null,
                // Java: MIN % -1 is 0 (only the division overflows).
                BinOp::Rem if b == -1 => Some(0),
                BinOp::Div => a.checked_div(b),
                BinOp::Rem => a.checked_rem(b),
                _ => return Value::Null,
            };
            match r {
                Some(r) => Value::Int(r),
                None => arithmetic(op, Num::Double(a as f64), Num::Double(b as f64)),
            }
        }
        (a, b) => {
            let (a, b) = (a.as_f64(), b.as_f64());
            Value::Double(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div if b == 0.0 => return Value::Null,
                BinOp::Rem if b == 0.0 => return Value::Null,
                BinOp::Div => a / b,
                BinOp::Rem => a % b,
                _ => return Value::Null,
            })
        }
    }
}

fn range_end(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn foreach_property(s: &LoopState, name: &str) -> Value {
    let i = s.index.get();
    match name {
        "index" => Value::Int(i as i64),
        "count" => Value::Int(i as i64 + 1),
        "hasNext" => Value::Bool(i + 1 < s.len),
        "first" => Value::Bool(i == 0),
        "last" => Value::Bool(i + 1 == s.len),
        "parent" => s
            .parent
            .clone()
            .map_or(Value::Null, |p| Value::Builtin(Builtin::Foreach(p))),
        _ => Value::Null,
    }
}

/// A Java replacement string (`$1` a group, `\$` a dollar) in the `regex`
/// crate's syntax (`${1}`, `$$`).
fn java_replacement(rep: &str) -> String {
    let mut out = String::with_capacity(rep.len());
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(o) => out.push(o),
                None => {}
            },
            '$' if chars.peek() == Some(&'{') => {
                // `${name}`: a named group, the same in both syntaxes.
                out.push('$');
            }
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str("${");
                    out.push_str(&digits);
                    out.push('}');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A JSON document as compact text (json-smart's), false past `limit`.
fn bounded_json(v: &serde_json::Value, out: &mut String, limit: usize) -> bool {
    use serde_json::Value as J;
    if out.len() > limit {
        return false;
    }
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => match n.as_i64() {
            Some(i) => out.push_str(&i.to_string()),
            None => super::value::java_double(n.as_f64().unwrap_or(f64::NAN), out),
        },
        J::String(s) => super::value::json_string(s, out),
        J::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !bounded_json(x, out, limit) {
                    return false;
                }
            }
            out.push(']');
        }
        J::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                super::value::json_string(k, out);
                out.push(':');
                if !bounded_json(x, out, limit) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    out.len() <= limit
}

/// How many values `v` holds, `None` past `budget`.
fn json_size(v: &serde_json::Value, budget: usize) -> Option<usize> {
    use serde_json::Value as J;
    let mut n = 1usize;
    match v {
        J::Array(items) => {
            for i in items {
                n = n.checked_add(json_size(i, budget.checked_sub(n)?)?)?;
            }
        }
        J::Object(m) => {
            for i in m.values() {
                n = n.checked_add(json_size(i, budget.checked_sub(n)?)?)?;
            }
        }
        _ => {}
    }
    (n <= budget).then_some(n)
}
