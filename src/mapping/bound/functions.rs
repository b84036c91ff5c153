//! The functions and filters the rewritten templates call.
//!
//! [`register`] adds them to a mapping's environment, each closing over the
//! mapping's `max_output` (the limit below):
//!
//! | function | stands for | refuses |
//! |---|---|---|
//! | `__tollgate_concat(a, b)` | `a ~ b` | a result over the limit, before it is built |
//! | `__tollgate_add(a, b)` | `a + b` | two strings as `~` does; otherwise either side over the limit |
//! | `__tollgate_mul(a, b)` | `a * b` | a string repeated past the limit; a repeated list over it |
//! | `__tollgate_sized(v)` | a call's or filter's argument, a list or map item | `v` over the limit |
//! | `__tollgate_input(v, "f")` | the input of filter `f` | an input `f` could grow past the limit ([`expansion`]); a string `f` would split into more than 100,000 items |
//! | `__tollgate_output(v)` | a call's, a copying filter's or a slice's result | the render's output of these past 8 × the limit ([`hold`]) |
//! | `__tollgate_loop(v)` | a `for` loop's iterable | nothing itself; every item looks at the deadline ([`Paced`]) |
//!
//! It also replaces minijinja's `join`, `replace`, `indent`, `tojson`,
//! `format`, `batch` and `slice` with filters that work out their output's
//! size from their arguments first, then call minijinja's own: what a
//! template renders is byte for byte what it renders without the bound, or
//! an error.

use std::sync::{Arc, OnceLock};

use minijinja::value::{
    Enumerator, Kwargs, Object, ObjectRepr, Rest, StringInput, Value, ValueKind,
};
use minijinja::{Environment, Error, ErrorKind, Expression, State};

use super::MAX_ITEMS;
use super::budget::{
    Budget, ITEMIZING, KEEP_MIN, Pace, SHRINKING, check, expansion, json_len, too_large,
};

/// Concatenates two values as minijinja's `~` does, the result measured
/// before it is built and accounted for while it lives.
///
/// Both sides are measured with [`Budget::size`] (their rendered length),
/// so the buffer is allocated once, at its final size, and only when that
/// size is within `limit`.
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
///
/// Every string counts towards what the render produced; one of 64 KiB or
/// more is also tracked while the template holds it ([`Budget::keep`]). A
/// list or map is measured and its size counted as produced. Numbers and
/// other scalars pass free. Besides `__tollgate_output`, the `input.json`,
/// `input.path` and `util` helpers call this for their own results.
pub(crate) fn hold(state: &State<'_, '_>, v: Value, limit: usize) -> Result<Value, Error> {
    Pace::check_now()?;
    // The budget is looked up only when there is something to account for:
    // a string is counted as produced (and tracked while it lives when
    // long), a list or map measured and counted.
    match v.as_str() {
        Some("") => Ok(v),
        Some(s) => {
            let budget = Budget::of(state, limit);
            budget.produce(s.len())?;
            if s.len() >= KEEP_MIN {
                budget.keep(s)
            } else {
                Ok(v)
            }
        }
        None => {
            if matches!(
                v.kind(),
                ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
            ) {
                let budget = Budget::of(state, limit);
                let n = budget.size(&v)?;
                budget.produce(n)?;
            }
            Ok(v)
        }
    }
}

/// Registers the functions the rewritten templates call and the bounded
/// filters, for values of at most `limit` bytes and renders whose long
/// strings alive add up to at most 4 times that.
///
/// The functions are only safe to call as the rewrite calls them; a
/// template cannot call them itself, since the rewrite refuses any name
/// that starts with `__tollgate`. The replaced filters keep minijinja's
/// names and signatures, so a template written for minijinja needs no
/// change.
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
        move |state: &State<'_, '_>, v: Value| hold(state, v, limit),
    );
    env.add_function("__tollgate_loop", |v: Value| {
        Pace::check_now()?;
        // What cannot be iterated is left for minijinja to refuse as usual.
        if v.try_iter().is_err() {
            return Ok(v);
        }
        Ok(Value::from_object(Paced(v)))
    });
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
    // `batch` and `slice` pad with `fill` up to `count` items.
    type Splitter = fn(&State<'_, '_>, Value, usize, Option<Value>) -> Result<Value, Error>;
    let splitters: [(&str, Splitter); 2] = [
        ("batch", minijinja::filters::batch),
        ("slice", minijinja::filters::slice),
    ];
    for (name, split) in splitters {
        env.add_filter(
            name,
            move |state: &State<'_, '_>, value: Value, count: usize, fill: Option<Value>| {
                if count > MAX_ITEMS {
                    return Err(too_large());
                }
                split(state, value, count, fill)
            },
        );
    }
}

/// The widest width or precision in a printf-style format string.
///
/// `format` pads to a field's width, so `"%999999999s"|format(x)` builds a
/// gigabyte from a template of a few bytes; a precision lengthens a number
/// the same way (`%.999999f`). Digits after a flag (`-`, `+`, space, `#`)
/// or a `.` start a new number; `%%` opens and closes a field at once and
/// counts nothing.
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
    /// `a + b`: numbers added, lists joined.
    Add,
    /// `a * b`: numbers multiplied, a list repeated.
    Mul,
}

/// `a + b` or `a * b` as minijinja computes it (numbers, lists), evaluated
/// by minijinja itself; repeated strings are checked by the caller.
///
/// minijinja's operators are not public, so the expression `a + b` (or
/// `a * b`) is compiled once per process, in an environment of its own, and
/// evaluated with the operands as variables: number promotion, overflow
/// errors and lazy lists come out exactly as in the unrewritten template.
/// The compiled expressions cannot fail for these fixed sources; were they
/// to, the operator is an error rather than a panic.
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

/// A loop's iterable, looking at the render's deadline on every item.
///
/// It enumerates the same items as the value it wraps and reports the same
/// length, but stops at the first item past the deadline. The loop then
/// ends quietly, and [`Pace::run`] fails the render because the deadline
/// was tripped. Fuel alone would not do: it counts one instruction per
/// iteration however long the iteration's comparisons of long strings take.
#[derive(Debug)]
struct Paced(Value);

impl Object for Paced {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.0.try_iter() {
            // Past the deadline the loop ends, and the render fails
            // (`Pace::run` sees the deadline was passed).
            Ok(items) => {
                Enumerator::Iter(Box::new(items.take_while(|_| Pace::check_now().is_ok())))
            }
            Err(_) => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.0.len()
    }
}
