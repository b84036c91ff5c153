//! The dates of SigV4: `X-Amz-Date`'s `YYYYMMDDTHHMMSSZ` (ISO 8601 basic
//! format, UTC), and the `Date` header it may stand in for (RFC 2822 form, as
//! AWS's "Elements of an AWS API request signature" allows).

use std::borrow::Cow;

use http::HeaderMap;
use time::OffsetDateTime;

/// Unix seconds as `YYYYMMDDTHHMMSSZ`, for AWS's messages and for a `Date`
/// header's time; the plain number when out of range.
pub(super) fn amz(secs: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

/// `yyyyMMdd'T'HHmmss'Z'` to Unix seconds.
pub(super) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { s.get(r)?.parse().ok() };
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(t).assume_utc().unix_timestamp())
}

/// The request's date: `X-Amz-Date`, else `Date` (RFC 7231 or the same ISO form).
pub(super) fn header_date(headers: &HeaderMap) -> Option<(Cow<'_, str>, i64)> {
    if let Some(v) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) {
        return parse_amz_date(v).map(|t| (Cow::Borrowed(v), t));
    }
    let v = headers.get(http::header::DATE)?.to_str().ok()?;
    let t = parse_amz_date(v).or_else(|| {
        OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822)
            .ok()
            .map(|t| t.unix_timestamp())
    })?;
    Some((Cow::Owned(amz(t)), t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(amz(1_440_938_160), "20150830T123600Z");
        for bad in [
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150830T256000Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
