//! The generic cell rate algorithm: a token bucket kept as one number.
//!
//! A bucket of `burst` tokens refilled at `rate` per second is the same as a
//! *theoretical arrival time* (TAT): the time at which the bucket would be
//! full again. A request at `now` is admitted when `max(tat, now) - now` is at
//! most `(burst - 1)` emission intervals, and then moves the TAT one interval
//! further. One `u64` of nanoseconds per key, no timer, no refill loop.
//!
//! GCRA comes from ATM traffic policing (the ATM Forum's Traffic Management
//! specification, ITU-T I.371), where it decides whether a cell conforms to
//! a contract; `governor` and Redis's `redis-cell` use it for rate limits.
//! It is the token bucket API Gateway describes ("Throttle requests to your
//! REST APIs", [`api-gateway-request-throttling`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html)) computed from one
//! timestamp instead of a count and a last-refill time, so a check is a
//! compare and an add, and a store (a map of atomics, a Redis script)
//! needs one compare-and-swap of one number.
//!
//! With `T` the interval and `τ` the tolerance `(burst - 1) × T`:
//!
//! ```text
//! ahead = max(tat - now, 0)
//! ahead > τ  →  reject; retry after ahead - τ
//! otherwise  →  admit;  tat' = now + ahead + T
//! ```
//!
//! A key never seen has TAT 0, which is a full bucket at any time. A bucket
//! idle long enough falls behind `now` and counts as full again, so it
//! never holds more than `burst`.

use super::Rate;

/// A rate, in the form the algorithm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Nanoseconds between two tokens (1/rate); 0 means "blocks everything".
    interval: u64,
    /// `(burst - 1) * interval`: how far ahead of `now` the TAT may run.
    tolerance: u64,
    /// `burst - 1`: tokens left after one request on a full bucket.
    spare: u32,
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Admitted: the new TAT to store, tokens left, nanoseconds until full.
    /// `remaining` and `reset` are the `r` and `t` of the `RateLimit` field.
    Admit {
        tat: u64,
        remaining: u32,
        reset: u64,
    },
    /// Rejected: nanoseconds until a token is available, and until full.
    /// The stored TAT is left as it was: a rejection costs nothing.
    Reject { retry: u64, reset: u64 },
}

impl Gcra {
    /// The algorithm's constants for `rate`, computed once per limit, not
    /// per request. A rate that admits nothing has interval 0.
    pub(crate) fn new(rate: Rate) -> Self {
        let interval = rate.interval_nanos();
        let spare = rate.burst().saturating_sub(1);
        Self {
            interval,
            // At most half the clock's range: a tolerance that saturated to
            // `u64::MAX` would admit a bucket whose TAT has saturated too.
            tolerance: interval.saturating_mul(u64::from(spare)).min(u64::MAX / 2),
            spare,
        }
    }

    /// Decides a request at `now` against a bucket whose TAT is `tat` (0 for
    /// a key never seen). Both are nanoseconds on the same clock; the
    /// caller stores the admitted TAT only if the bucket still holds `tat`
    /// (compare-and-swap), and decides again otherwise.
    pub(crate) fn decide(&self, tat: u64, now: u64) -> Verdict {
        if self.interval == 0 {
            return Verdict::Reject {
                retry: u64::MAX,
                reset: u64::MAX,
            };
        }
        let ahead = tat.saturating_sub(now);
        if ahead > self.tolerance {
            return Verdict::Reject {
                retry: ahead - self.tolerance,
                reset: ahead,
            };
        }
        // Saturating: a rate so small its interval is near `u64::MAX`
        // nanoseconds (1e-10 a second) must block, not wrap around to admit.
        let reset = ahead.saturating_add(self.interval);
        // A full bucket (the usual case for most keys) needs no division.
        let remaining = if ahead == 0 {
            self.spare
        } else {
            u32::try_from((self.tolerance - ahead) / self.interval).unwrap_or(u32::MAX)
        };
        Verdict::Admit {
            tat: now.saturating_add(reset),
            remaining,
            reset,
        }
    }

    /// Nanoseconds between tokens (0: blocked).
    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn run(g: &Gcra, tat: &mut u64, now: u64) -> bool {
        match g.decide(*tat, now) {
            Verdict::Admit { tat: t, .. } => {
                *tat = t;
                true
            }
            Verdict::Reject { .. } => false,
        }
    }

    #[test]
    fn a_tiny_rate_never_wraps_around_to_admit() {
        // Intervals of about 317 years and of u64::MAX nanoseconds: the
        // first request passes, and never more than the burst of two.
        for rate in [1e-10, 5e-324] {
            let g = Gcra::new(Rate::new(rate, 2));
            let (mut tat, now) = (0, 1_800_000_000 * S);
            let admitted = (0..5).filter(|_| run(&g, &mut tat, now)).count();
            assert!((1..=2).contains(&admitted), "{rate}: {admitted} admitted");
        }
    }

    #[test]
    fn burst_at_once_then_one_per_interval() {
        let g = Gcra::new(Rate::new(2.0, 3));
        let mut tat = 0;
        let now = 100 * S;
        assert!((0..3).all(|_| run(&g, &mut tat, now)));
        assert!(!run(&g, &mut tat, now));
        assert!(!run(&g, &mut tat, now + S / 2 - 1));
        assert!(run(&g, &mut tat, now + S / 2));
        assert!(!run(&g, &mut tat, now + S / 2));
    }

    #[test]
    fn remaining_reset_and_retry() {
        let g = Gcra::new(Rate::new(1.0, 2));
        let now = 10 * S;
        assert_eq!(
            g.decide(0, now),
            Verdict::Admit {
                tat: now + S,
                remaining: 1,
                reset: S
            }
        );
        assert_eq!(
            g.decide(now + S, now),
            Verdict::Admit {
                tat: now + 2 * S,
                remaining: 0,
                reset: 2 * S
            }
        );
        assert_eq!(
            g.decide(now + 2 * S, now),
            Verdict::Reject {
                retry: S,
                reset: 2 * S
            }
        );
    }

    #[test]
    fn zero_blocks_everything() {
        let g = Gcra::new(Rate::new(0.0, 0));
        assert!(matches!(g.decide(0, S), Verdict::Reject { .. }));
    }

    #[test]
    fn idle_time_refills_to_burst_and_no_further() {
        let g = Gcra::new(Rate::new(10.0, 5));
        let mut tat = 0;
        let now = 50 * S;
        assert!((0..5).all(|_| run(&g, &mut tat, now)));
        let later = now + 3600 * S;
        assert_eq!((0..7).filter(|_| run(&g, &mut tat, later)).count(), 5);
    }
}
