//! Time, read in one place.
//!
//! Every layer that needs the time (throttle buckets, quota periods, cache
//! expiry, SigV4 skew checks, latency) asks a [`Clock`]. Production uses
//! [`SystemClock`]; tests use a [`ManualClock`], whose clones share one time, so
//! a test can move time forward by exactly the amount it needs.
//!
//! ```
//! use std::time::Duration;
//! use tollgate::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix_secs(1_700_000_000);
//! let shared = clock.clone();
//! clock.advance(Duration::from_millis(1500));
//! assert_eq!(shared.unix_nanos(), 1_700_000_001_500_000_000);
//! ```
//!
//! This module is the only one allowed to call `SystemTime::now` or
//! `Instant::now`; `clippy.toml` forbids it everywhere else (smithy-rs's
//! `TimeSource` rule). A layer that read the system time itself could not be
//! tested without sleeping, and its tests would be flaky under load.
//!
//! Times are `u64` nanoseconds since the Unix epoch throughout: one word,
//! cheap to store in an atomic and to compare, and enough for dates up to
//! the year 2554. Times before 1970 read as the epoch rather than panic.
//!
//! A [`Gateway`](crate::Gateway) takes its clock from
//! [`GatewayBuilder::clock`](crate::GatewayBuilder::clock) and hands
//! the same one to every layer, so a test that advances a [`ManualClock`]
//! moves throttle buckets, quota periods, key expiry and cache entries
//! together.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A source of wall-clock time.
///
/// The one required method returns nanoseconds since the Unix epoch; the
/// provided methods convert. Implementations must be cheap (the throttle layer
/// reads the clock on every request) and safe to share between threads.
///
/// Nothing requires the clock to be monotonic: tollgate takes differences
/// of times with saturating arithmetic (an entry "stored in the future" is
/// simply fresh; a latency across a step back is 0), so a wall-clock step
/// backwards does not underflow. A
/// clock of your own (a simulation, a replay of recorded traffic) needs only
/// [`unix_nanos`](Self::unix_nanos).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    fn unix_nanos(&self) -> u64;

    /// The current time as a [`SystemTime`].
    fn system_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_nanos())
    }

    /// The current time as a UTC [`OffsetDateTime`], for calendar arithmetic.
    fn utc(&self) -> OffsetDateTime {
        // u64 nanoseconds reach the year 2554, well inside OffsetDateTime's range.
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.unix_nanos()))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Layers hold their clock as `Arc<dyn Clock>`; this lets such a handle be
/// passed wherever an `impl Clock` is asked for, sharing one clock.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn unix_nanos(&self) -> u64 {
        (**self).unix_nanos()
    }
}

/// The wall clock, read cheaply.
///
/// `SystemTime::now` costs a `clock_gettime` call (about 30 ns on a virtual
/// machine); the throttle layer reads the time on every request. So this clock
/// reads the CPU's time-stamp counter through [`quanta`] (about 9 ns) and adds
/// an offset to the wall clock, taken from `SystemTime::now` at most once a
/// second, so it never drifts from the wall clock by more than a second's
/// worth of counter calibration error. Between two re-anchorings it is
/// monotonic; a wall-clock step (NTP) shows up within a second.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How often the counter is re-anchored to the wall clock, in nanoseconds of
/// counter time (one second): the worst case for noticing an NTP step, and
/// one `clock_gettime` per second per process, whatever the request rate.
const ANCHOR_EVERY: u64 = 1_000_000_000;

/// The process-wide state behind [`SystemClock`] (a zero-sized type: every
/// value shares this one).
///
/// Lock-free because every request reads it: `offset` and `anchored` are
/// one word each, so a reader sees either the old offset or the new one,
/// never half of each, and both are within a second's drift of the wall
/// clock. Relaxed ordering suffices: no other memory is published through
/// these words.
struct Counter {
    /// quanta's calibrated reader of the CPU's time-stamp counter (quanta
    /// falls back to the operating system's monotonic clock where the
    /// counter is not usable).
    clock: quanta::Clock,
    /// The counter's raw reading at start.
    base: u64,
    /// Wall-clock nanoseconds minus counter nanoseconds (wrapping).
    offset: AtomicU64,
    /// Counter nanoseconds at the last anchoring. Starts at 0 with `offset`
    /// taken at the same moment, so the first re-anchoring comes a second
    /// after start.
    anchored: AtomicU64,
}

/// Made on the first read (or by [`SystemClock::warm_up`]) and kept for the
/// life of the process.
static COUNTER: OnceLock<Counter> = OnceLock::new();

/// The system's wall clock in Unix nanoseconds: saturates at `u64::MAX`
/// (the year 2554), and reads 0 for a clock set before 1970.
fn wall_nanos() -> u64 {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the system time
    let now = SystemTime::now();
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        // A clock set before 1970: report the epoch rather than panic.
        Err(_) => 0,
    }
}

impl Counter {
    fn new() -> Self {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        Self {
            clock,
            base,
            offset: AtomicU64::new(wall_nanos()),
            anchored: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since start: a multiply and a shift on the raw counter.
    fn since_base(&self) -> u64 {
        self.clock.delta_as_nanos(self.base, self.clock.raw())
    }
}

impl SystemClock {
    /// Calibrates the counter now rather than on the first request (quanta
    /// may take a moment the first time).
    pub fn warm_up() {
        let _ = SystemClock.unix_nanos();
    }
}

impl Clock for SystemClock {
    fn unix_nanos(&self) -> u64 {
        let c = COUNTER.get_or_init(Counter::new);
        let mono = c.since_base();
        let anchored = c.anchored.load(Ordering::Relaxed);
        if mono.saturating_sub(anchored) > ANCHOR_EVERY
            && c.anchored
                .compare_exchange(anchored, mono, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // One thread re-anchors; the offset is one word, never torn.
            let offset = wall_nanos().wrapping_sub(c.since_base());
            c.offset.store(offset, Ordering::Relaxed);
        }
        mono.wrapping_add(c.offset.load(Ordering::Relaxed))
    }
}

/// A clock that moves only when told to. Clones share one time.
///
/// Give one clone to the code under test (a layer, a
/// [`GatewayBuilder`](crate::GatewayBuilder), a
/// [`CachingKeyStore`](crate::keys::CachingKeyStore)) and keep another to
/// move time: nothing sleeps, so a test of a 300 s TTL or a monthly quota
/// takes microseconds and never flakes. [`advance`](Self::advance)
/// saturates at the largest time rather than wrapping; [`set`](Self::set)
/// may also move time backwards, to test a wall-clock step.
///
/// ```
/// use std::time::Duration;
/// use tollgate::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// assert_eq!(clock.unix_nanos(), 0);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.unix_nanos(), 2_000_000_000);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    /// Unix nanoseconds, shared by every clone. Written with `Release` and
    /// read with `Acquire`, so a time set on a test's thread is seen by the
    /// runtime's worker threads that read it next.
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at the Unix epoch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock at `secs` seconds after the Unix epoch (saturating at the
    /// largest time a `u64` of nanoseconds can hold).
    pub fn at_unix_secs(secs: u64) -> Self {
        let clock = Self::new();
        clock.set_unix_nanos(secs.saturating_mul(1_000_000_000));
        clock
    }

    /// A clock at the given time (the epoch for times before it).
    pub fn at(time: SystemTime) -> Self {
        let clock = Self::new();
        clock.set(time);
        clock
    }

    /// Moves every clone of this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets every clone of this clock to `time`.
    pub fn set(&self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.set_unix_nanos(nanos);
    }

    /// Sets every clone of this clock to `nanos` nanoseconds after the epoch.
    pub fn set_unix_nanos(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn unix_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix_nanos", &self.unix_nanos())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::at_unix_secs(10);
        let b = a.clone();
        b.advance(Duration::from_nanos(7));
        assert_eq!(a.unix_nanos(), 10_000_000_007);
        a.set(UNIX_EPOCH + Duration::from_secs(3));
        assert_eq!(b.unix_nanos(), 3_000_000_000);
    }

    #[test]
    fn advance_saturates_instead_of_wrapping() {
        let c = ManualClock::new();
        c.set_unix_nanos(u64::MAX - 1);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.unix_nanos(), u64::MAX);
    }

    #[test]
    fn utc_conversion_is_calendar_correct() {
        let c = ManualClock::at_unix_secs(1_700_000_000);
        let t = c.utc();
        assert_eq!((t.year(), u8::from(t.month()), t.day()), (2023, 11, 14));
        assert_eq!(
            c.system_time(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }

    #[test]
    fn system_clock_follows_the_wall_clock() {
        let ours = SystemClock.unix_nanos();
        let wall = wall_nanos();
        assert!(ours > 1_577_836_800_000_000_000);
        assert!(ours.abs_diff(wall) < 50_000_000, "{ours} vs {wall}");
        let later = SystemClock.unix_nanos();
        assert!(later >= ours);
    }
}
