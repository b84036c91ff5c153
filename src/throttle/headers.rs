//! `Retry-After` and the IETF draft `RateLimit-Policy` / `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers, structured-field form).

use std::fmt::Write as _;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{LimitScope, Rate};

/// `RateLimit-Policy: "method";q=500;w=1`: the binding limit's quota (the
/// burst) and window (seconds to refill from empty).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit: "method";r=499;t=1`: tokens remaining and seconds until the bucket is full.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub(crate) fn insert(
    headers: &mut HeaderMap,
    scope: LimitScope,
    rate: Rate,
    remaining: u32,
    reset: Duration,
) {
    let name = scope.as_str();
    let mut buf = String::with_capacity(48);
    let _ = write!(buf, "\"{name}\";q={};w={}", rate.burst, rate.window_secs());
    if let Ok(v) = HeaderValue::from_str(&buf) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    buf.clear();
    let _ = write!(buf, "\"{name}\";r={remaining};t={}", ceil_secs(reset));
    if let Ok(v) = HeaderValue::from_str(&buf) {
        headers.insert(RATELIMIT, v);
    }
}

/// `Retry-After` in whole seconds, rounded up, never 0.
pub(crate) fn retry_after(headers: &mut HeaderMap, wait: Duration) {
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(ceil_secs(wait).max(1)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_structured_fields() {
        let mut h = HeaderMap::new();
        insert(
            &mut h,
            LimitScope::Method,
            Rate::new(0.5, 3),
            2,
            Duration::from_millis(2001),
        );
        assert_eq!(h[RATELIMIT_POLICY], "\"method\";q=3;w=6");
        assert_eq!(h[RATELIMIT], "\"method\";r=2;t=3");
        retry_after(&mut h, Duration::from_nanos(1));
        assert_eq!(h[http::header::RETRY_AFTER], "1");
        retry_after(&mut h, Duration::ZERO);
        assert_eq!(h[http::header::RETRY_AFTER], "1");
        retry_after(&mut h, Duration::from_millis(1500));
        assert_eq!(h[http::header::RETRY_AFTER], "2");
    }
}
