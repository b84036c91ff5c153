/// A token-bucket limit: `rate` requests per second with room for `burst` at once.
///
/// `Rate::new(0.0, 0)` blocks every request. The config validator rejects
/// other limits that could never admit anything (rate 0 with a burst, a rate
/// with burst 0).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Rate {
    /// Requests per second (`0 ..= 1e9`; fractions allowed).
    pub rate: f64,
    /// Bucket size: requests admitted at once after an idle period.
    pub burst: u32,
}

impl Rate {
    /// A limit of `rate` requests per second with a bucket of `burst`.
    pub const fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst }
    }

    /// Seconds a full bucket takes to refill from empty, rounded up: the
    /// window `w` of `RateLimit-Policy`.
    pub fn window_secs(&self) -> u64 {
        if self.rate > 0.0 {
            let w = (f64::from(self.burst) / self.rate).ceil();
            if w >= 1.0 {
                w.min(u64::MAX as f64) as u64
            } else {
                1
            }
        } else {
            0
        }
    }
}
