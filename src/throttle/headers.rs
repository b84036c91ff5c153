//! `Retry-After` and the IETF draft `RateLimit-Policy` / `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers, structured-field form).
//!
//! `Retry-After` is RFC 9110's (section 10.2.3), in delay-seconds; RFC
//! 6585 defines the 429 it comes with. The RateLimit fields describe one
//! limit, named by its [`LimitScope`] (`"method"`, `"plan"`, ...): `q` is
//! the burst, `w` the seconds the bucket takes to refill from empty, `r`
//! the tokens left and `t` the seconds until the bucket is full. Seconds
//! are whole and rounded up, so a client that waits `t` is never early.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{LimitScope, Rate};

/// `RateLimit-Policy: "method";q=500;w=1`: the binding limit's quota (the
/// burst) and window (seconds to refill from empty).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit: "method";r=499;t=1`: tokens remaining and seconds until the bucket is full.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// A limit as the layer applies it: its rate, and its `RateLimit-Policy`
/// value rendered once.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) rate: Rate,
    /// `"SCOPE";q=BURST;w=WINDOW`, interned: cloning it onto a response
    /// copies a pointer.
    pub(crate) policy: HeaderValue,
}

impl Spec {
    /// The spec of a limit of `scope` at `rate`: built when the limits are,
    /// never per request.
    pub(crate) fn new(scope: LimitScope, rate: Rate) -> Self {
        Self {
            rate,
            policy: policy_value(scope, rate),
        }
    }
}

/// The `RateLimit-Policy` value of a limit. Values are interned: a process
/// keeps one copy of each distinct value (there are as many as distinct
/// limits in its configs), and cloning one never touches a reference count.
fn policy_value(scope: LimitScope, rate: Rate) -> HeaderValue {
    static INTERNED: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let text = format!(
        "\"{}\";q={};w={}",
        scope.as_str(),
        rate.burst(),
        rate.window_secs()
    );
    let mut set = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let interned: &'static str = match set.get(text.as_str()) {
        Some(s) => s,
        None => {
            let leaked: &'static str = Box::leak(text.into_boxed_str());
            set.insert(leaked);
            leaked
        }
    };
    HeaderValue::from_maybe_shared(Bytes::from_static(interned.as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Sets `RateLimit-Policy` and `RateLimit` for the binding limit.
///
/// `policy` is the limit's prebuilt value; the `RateLimit` value is
/// written into a stack buffer, with no intermediate `String`.
pub(crate) fn insert(
    headers: &mut HeaderMap,
    policy: &HeaderValue,
    scope: LimitScope,
    remaining: u32,
    reset: Duration,
) {
    headers.insert(RATELIMIT_POLICY, policy.clone());
    let mut buf = Buf::default();
    let mut num = itoa::Buffer::new();
    buf.push(b"\"");
    buf.push(scope.as_str().as_bytes());
    buf.push(b"\";r=");
    buf.push(num.format(remaining).as_bytes());
    buf.push(b";t=");
    buf.push(num.format(ceil_secs(reset)).as_bytes());
    // Cut from the thread's chunk: no allocation of its own.
    if let Ok(v) = HeaderValue::from_maybe_shared(crate::slab::copy(&[buf.as_slice()])) {
        headers.insert(RATELIMIT, v);
    }
}

/// A stack buffer long enough for any `RateLimit` value: the longest scope
/// name, and a `u32` and a `u64` in decimal, take well under 64 bytes.
/// A push that would not fit is dropped rather than panicking.
struct Buf {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl Buf {
    fn push(&mut self, s: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s);
            self.len += s.len();
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
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
        let spec = Spec::new(LimitScope::Method, Rate::new(0.5, 3));
        insert(
            &mut h,
            &spec.policy,
            LimitScope::Method,
            2,
            Duration::from_millis(2001),
        );
        assert_eq!(h[RATELIMIT_POLICY], "\"method\";q=3;w=6");
        assert_eq!(h[RATELIMIT], "\"method\";r=2;t=3");
        insert(
            &mut h,
            &spec.policy,
            LimitScope::ApiKeyMethod,
            u32::MAX,
            Duration::from_secs(u64::MAX),
        );
        assert_eq!(
            h[RATELIMIT],
            "\"plan-method\";r=4294967295;t=18446744073709551615"
        );
        retry_after(&mut h, Duration::from_nanos(1));
        assert_eq!(h[http::header::RETRY_AFTER], "1");
        retry_after(&mut h, Duration::ZERO);
        assert_eq!(h[http::header::RETRY_AFTER], "1");
        retry_after(&mut h, Duration::from_millis(1500));
        assert_eq!(h[http::header::RETRY_AFTER], "2");
    }

    #[test]
    fn equal_policies_share_one_interned_value() {
        let a = Spec::new(LimitScope::Gateway, Rate::new(10.0, 20));
        let b = Spec::new(LimitScope::Gateway, Rate::new(10.0, 20));
        assert_eq!(a.policy.as_bytes().as_ptr(), b.policy.as_bytes().as_ptr());
    }
}
