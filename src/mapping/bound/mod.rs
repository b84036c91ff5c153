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
//!   of a call, a slice or a filter that may copy through `__tollgate_output`;
//! - the long strings (64 KiB and more) a render holds are accounted for while
//!   they live, and may add up to 4 times the limit; what filters, calls and
//!   slices produce may add up to 8 times; measuring has a budget of 10
//!   million item visits a render, as minijinja's fuel does not count it;
//! - each loop's iterable passes through `__tollgate_loop`, which looks at
//!   the render's deadline (`max_render_ms`) on every item, as checked
//!   operations do: a cheap instruction on a long string is not cheap;
//! - `a * b` becomes `__tollgate_mul(a, b)`, which refuses a repeated string
//!   over the limit before building it;
//! - filters whose output grows with an argument (`join`, `replace`,
//!   `indent`, `tojson`, `format`, `batch`, `slice`) are replaced by versions
//!   that compute their output's size first.
//!
//! So no value is built larger than the limit (`mapping_limits.max_output`),
//! and a render holds and spends a bounded multiple of it. What cannot be bounded this way is refused
//! when the template is compiled: block captures (`{% set x %}…{% endset %}`,
//! `{% filter %}`), macros and `{% call %}`, recursive loops, and templates
//! that include or extend others. Each of those accumulates output in a
//! buffer of minijinja's own that the limit never sees.
//!
//! The two halves meet in the mapping: `CompiledMapping::compile` passes
//! every template through [`rewrite()`] before minijinja compiles it, and
//! [`register`]s the checked functions in the same environment; every
//! render then runs inside [`Pace::run`], and the `input` and `util`
//! helpers account for their own results with [`hold`]. A template the
//! rewrite cannot parse is handed to minijinja unchanged, so that the
//! syntax error is minijinja's, with its line.

mod budget;
mod functions;
mod rewrite;

pub(crate) use self::budget::{Pace, too_large};
pub(crate) use self::functions::{hold, register};
pub(crate) use self::rewrite::{Rewritten, Unbounded, rewrite};

/// The most items a list or map a template builds may hold: minijinja's
/// own cap on `range`.
const MAX_ITEMS: usize = 100_000;
/// How deep a value is measured; a deeper one (or one that holds itself)
/// counts as over the limit.
const MAX_DEPTH: usize = 64;

#[cfg(test)]
mod tests;
