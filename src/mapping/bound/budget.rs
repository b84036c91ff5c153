//! The run-time half: what one render may hold and spend, and how values
//! are measured without being built.

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
    visits: AtomicUsize,
    /// What filters, calls and slices produced, in bytes as rendered.
    produced: AtomicUsize,
    limit: usize,
}

impl Object for Budget {}

impl Budget {
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

pub(crate) fn too_large() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "a value would grow past the mapping's size limit (mapping_limits.max_output)",
    )
}

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
    deadline: u64,
    tripped: AtomicBool,
}

thread_local! {
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

fn too_slow() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "the render took longer than the mapping's limit (mapping_limits.max_render_ms)",
    )
}
