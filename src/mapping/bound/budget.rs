//! The run-time half: what one render may hold and spend, and how values
//! are measured without being built.
//!
//! A render has five bounds. The first four live in one [`Budget`], made on
//! the render's first checked operation and dropped with the render; the
//! deadline lives in [`Pace`]:
//!
//! | what | bound | counted by |
//! |---|---|---|
//! | any one value | `max_output` bytes, as rendered | [`Budget::size`], [`measure`] |
//! | long strings alive at once | 4 × `max_output` ([`LIVE_FACTOR`]) | [`Budget::keep`] |
//! | what filters, calls and slices produce | 8 × `max_output` in all ([`PRODUCED_FACTOR`]) | [`Budget::produce`] |
//! | item visits while measuring | 10,000,000 ([`MAX_VISITS`]) | [`Budget::spend`] |
//! | wall time | `max_render_ms` | [`Pace::check_now`] |
//!
//! Sizes are computed by walking a value, so measuring has a cost of its
//! own that minijinja's fuel never sees (one call of `__tollgate_sized` on a
//! 100,000-item list is a few instructions of fuel and 100,000 visits): the
//! visit budget is what keeps a loop that measures the same large list over
//! and over from running for minutes.
//!
//! Every bound fails the same way: a minijinja `InvalidOperation` error that
//! ends the render. The mapping layer logs it under the request id and
//! answers 500 "Internal server error"; the message names the setting
//! (`mapping_limits.max_output`, `mapping_limits.max_render_ms`) for the log
//! reader, never for the client.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::{MAX_DEPTH, MAX_ITEMS};
use crate::clock::{Clock, SystemClock};

/// The most item visits a render may spend measuring values: measuring is
/// not counted by minijinja's fuel, so it has a budget of its own.
const MAX_VISITS: usize = 10_000_000;
/// What the strings a render keeps alive may add up to, as a multiple of
/// `max_output`: each value is bounded by the limit, and their sum by this.
const LIVE_FACTOR: usize = 4;
/// Strings at least this long are accounted for while they live.
pub(super) const KEEP_MIN: usize = 64 << 10;
/// What the filters, calls and slices of one render may produce in all, as
/// a multiple of `max_output`: their results are not all tracked while they
/// live (a list of small strings), so their sum is bounded instead.
const PRODUCED_FACTOR: usize = 8;

/// Filters that return their input, a part of it or a number, without a
/// copy of any size: their results are not accounted for.
pub(super) const NO_COPY: &[&str] = &[
    "length", "count", "first", "last", "default", "d", "int", "float", "abs", "round", "bool",
    "attr", "safe", "min", "max",
];

/// Filters whose output is never larger than their input (a part of it, a
/// number, a reordering): neither is measured again, unless the input is a
/// string they would explode into items.
pub(super) const SHRINKING: &[&str] = &[
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
pub(super) const ITEMIZING: &[&str] = &[
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
pub(super) fn expansion(filter: &str) -> usize {
    match filter {
        "escape" | "e" => 6,
        "pprint" | "urlencode" | "upper" | "lower" | "title" | "capitalize" => 4,
        _ => 1,
    }
}

/// What one render spends: the long strings it keeps alive and the items
/// it visits while measuring.
#[derive(Debug)]
pub(super) struct Budget {
    /// Long strings tollgate built or saw built; each is dropped from here
    /// once the template no longer holds it.
    live: Mutex<Vec<Arc<str>>>,
    /// Item visits spent measuring so far, against [`MAX_VISITS`].
    visits: AtomicUsize,
    /// What filters, calls and slices produced, in bytes as rendered.
    produced: AtomicUsize,
    /// `mapping_limits.max_output` in bytes: the largest any one value may
    /// be, and the unit of the two factors.
    limit: usize,
}

impl Object for Budget {}

impl Budget {
    /// The budget of the render `state` belongs to, made on first use.
    ///
    /// It is a minijinja temp object, which lives exactly as long as one
    /// render: every render starts from zero and nothing carries over from
    /// one request to the next. `limit` is read only when the budget is
    /// made; every caller passes the environment's own.
    pub(super) fn of(state: &State<'_, '_>, limit: usize) -> Arc<Self> {
        state.get_or_set_temp_object("__tollgate_budget", || Self {
            live: Mutex::new(Vec::new()),
            visits: AtomicUsize::new(0),
            produced: AtomicUsize::new(0),
            limit,
        })
    }

    /// Records `bytes` produced by a filter, a call or a slice.
    pub(super) fn produce(&self, bytes: usize) -> Result<(), Error> {
        let before = self.produced.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.limit.saturating_mul(PRODUCED_FACTOR) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a render produced more than the mapping's budget \
                 (8 times mapping_limits.max_output)",
            ));
        }
        Ok(())
    }

    /// Spends `visits` of the render's measuring budget.
    pub(super) fn spend(&self, visits: usize) -> Result<(), Error> {
        Pace::check_now()?;
        if self.visits.fetch_add(visits, Ordering::Relaxed) + visits > MAX_VISITS {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a render measured more values than the mapping's budget allows",
            ));
        }
        Ok(())
    }

    /// The rendered size of `v`, at most the limit, its visits spent.
    pub(super) fn size(&self, v: &Value) -> Result<usize, Error> {
        let mut visits = 0;
        let n = measure(v, self.limit, 0, &mut visits);
        self.spend(visits)?;
        n.ok_or_else(too_large)
    }

    /// Hands `s` to the template, accounting for it while it lives: the
    /// long strings alive may add up to `LIVE_FACTOR` times the limit.
    pub(super) fn keep(&self, s: &str) -> Result<Value, Error> {
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
///
/// Strings and bytes count their length. A list counts 2 for its brackets
/// and 2 more per item (the `, ` between items); a map 2, plus each key and
/// value and 4 for the `: ` and `, ` around them. Numbers, booleans, none
/// and opaque objects count a flat 40, an upper estimate rather than their
/// exact text. The walk stops at the first item that takes the total past
/// `limit`, so measuring a huge value costs no more than measuring one just
/// over the limit.
pub(super) fn measure(v: &Value, limit: usize, depth: usize, visits: &mut usize) -> Option<usize> {
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
///
/// Strings are counted as minijinja's `tojson` writes them: 2 for the
/// quotes, 2 for each `"`, `\` and short control escape (`\n`, `\t`, ...),
/// 6 for other control characters and for the HTML-sensitive `<`, `>`, `&`
/// and `'` (`\u003c`), which `tojson` escapes for safe use inside HTML. Each
/// item of a list or map adds 17: a newline and an indent of at most 16,
/// which is why the bounded `tojson` refuses a wider indent. `None` as for
/// [`measure`].
pub(super) fn json_len(v: &Value, limit: usize, depth: usize, visits: &mut usize) -> Option<usize> {
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

/// The error of every size check: the value would be larger than
/// `max_output`. Also used by the `input` and `util` helpers.
pub(crate) fn too_large() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "a value would grow past the mapping's size limit (mapping_limits.max_output)",
    )
}

/// [`too_large`] unless `n` is a size within `limit`; `None` stands for a
/// size whose checked arithmetic overflowed, which is over any limit.
pub(super) fn check(n: Option<usize>, limit: usize) -> Result<(), Error> {
    match n {
        Some(n) if n <= limit => Ok(()),
        _ => Err(too_large()),
    }
}

/// A render's deadline (`mapping_limits.max_render_ms`): minijinja's fuel
/// counts instructions, not what each costs (comparing two 10 MB strings is
/// one instruction), so every checked operation and every loop iteration
/// looks at the clock. Set for the thread while a render runs.
#[derive(Debug)]
pub(crate) struct Pace {
    /// When the render must be over, Unix nanoseconds from [`SystemClock`].
    deadline: u64,
    /// Set by the first check that found the deadline passed. A loop cut
    /// short ends without an error of its own (its iterator simply stops),
    /// so [`Pace::run`] reads this to fail the render all the same.
    tripped: AtomicBool,
}

thread_local! {
    /// The deadline of the render running on this thread. minijinja calls
    /// tollgate's functions synchronously, on the thread that renders, so a
    /// thread-local reaches every checked operation without a handle passed
    /// through each call. Outside a render it is `None` and no check fails.
    static PACE: std::cell::RefCell<Option<Arc<Pace>>> = const { std::cell::RefCell::new(None) };
}

impl Pace {
    /// Runs `render` with a deadline `budget` from now; an error if it was
    /// passed, even where the template could not be stopped at once (a loop
    /// cut short).
    pub(crate) fn run<T>(
        budget: std::time::Duration,
        render: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let now = SystemClock.unix_nanos();
        let nanos = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        let pace = Arc::new(Pace {
            deadline: now.saturating_add(nanos),
            tripped: AtomicBool::new(false),
        });
        let previous = PACE.with(|p| p.replace(Some(pace.clone())));
        let out = render();
        PACE.with(|p| *p.borrow_mut() = previous);
        if pace.tripped.load(Ordering::Relaxed) {
            return Err(too_slow());
        }
        out
    }

    /// An error once the running render's deadline has passed.
    pub(super) fn check_now() -> Result<(), Error> {
        PACE.with(|p| match &*p.borrow() {
            Some(pace) if SystemClock.unix_nanos() > pace.deadline => {
                pace.tripped.store(true, Ordering::Relaxed);
                Err(too_slow())
            }
            _ => Ok(()),
        })
    }
}

/// The error of a render past its deadline (`mapping_limits.max_render_ms`).
fn too_slow() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "the render took longer than the mapping's limit (mapping_limits.max_render_ms)",
    )
}
