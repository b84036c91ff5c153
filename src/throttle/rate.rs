/// A token-bucket limit: `rate` requests per second with room for `burst` at once.
///
/// `Rate::new(0.0, 0)` blocks every request. The config validator rejects
/// other limits that could never admit anything (rate 0 with a burst, a rate
/// with burst 0).
///
/// ```
/// use tollgate::throttle::Rate;
///
/// let r = Rate::new(0.5, 3);
/// assert_eq!((r.rate(), r.burst()), (0.5, 3));
/// assert_eq!(r.interval_nanos(), 2_000_000_000);
/// assert_eq!(r.window_secs(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, as given.
    rate: f64,
    /// Bucket size, as given.
    burst: u32,
    /// Nanoseconds between tokens, rounded; 0 when nothing is ever admitted.
    interval: u64,
    /// Reported, not enforced (`mode: shadow`).
    shadow: bool,
}

impl Rate {
    /// A limit of `rate` requests per second (fractions allowed) with a
    /// bucket of `burst`. A rate that is not positive, or a burst of 0,
    /// admits nothing.
    pub const fn new(rate: f64, burst: u32) -> Self {
        let interval = if rate > 0.0 && burst > 0 {
            // Rounded to the nearest nanosecond, at least 1; `as` saturates
            // for rates so small the interval would overflow.
            let ns = 1e9 / rate + 0.5;
            if ns < 1.0 { 1 } else { ns as u64 }
        } else {
            0
        };
        Self {
            rate,
            burst,
            interval,
            shadow: false,
        }
    }

    /// The same limit in `mode: shadow`: evaluated and reported, never
    /// refusing (see [`LimitMode`](super::LimitMode)).
    pub const fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }

    /// Whether the limit is in `mode: shadow`.
    pub const fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Requests per second.
    pub const fn rate(&self) -> f64 {
        self.rate
    }

    /// Bucket size: requests admitted at once after an idle period.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// Nanoseconds between two tokens (0: the limit admits nothing).
    pub const fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// Seconds a full bucket takes to refill from empty, rounded up: the
    /// window `w` of `RateLimit-Policy`.
    pub fn window_secs(&self) -> u64 {
        let total = (self.interval as u128) * (self.burst as u128);
        let secs = total.div_ceil(1_000_000_000);
        u64::try_from(secs).unwrap_or(u64::MAX)
    }
}
