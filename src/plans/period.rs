//! Quota periods: calendar-aligned in UTC.
//!
//! A period is a calendar unit, not a sliding window: a daily quota starts
//! afresh at 00:00 UTC whenever the key was first used, a monthly one on
//! the 1st. API Gateway's usage plans know `DAY`, `WEEK` and `MONTH`;
//! tollgate adds `minute`, `hour`, `year` and `eternity`. Times are Unix
//! seconds, so a [`Window`] is two integers and the meter can key a
//! counter by its start.
//!
//! ```
//! use tollgate::plans::Period;
//!
//! // 2023-11-14T22:13:20Z, a Tuesday.
//! let w = Period::Week.window_at(1_700_000_000);
//! assert_eq!(w.start, 1_699_833_600); // Monday 2023-11-13T00:00:00Z
//! assert_eq!(w.end - w.start, 7 * 86_400);
//! ```

use serde::Deserialize;
use time::{Date, Duration, Month, OffsetDateTime, Time};

/// A quota period, calendar-aligned in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Period {
    /// A calendar minute.
    Minute,
    /// A calendar hour.
    Hour,
    /// A UTC day.
    Day,
    /// A week starting Monday 00:00 UTC.
    Week,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
    /// Never resets.
    Eternity,
}

/// The first and the last-plus-one second (Unix time) of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// The period's first second.
    pub start: i64,
    /// The first second after the period (`i64::MAX` for eternity).
    pub end: i64,
}

impl Period {
    /// The period that contains `t`, whatever `t`'s offset (it is taken to
    /// UTC first).
    pub fn window(self, t: OffsetDateTime) -> Window {
        let t = t.to_offset(time::UtcOffset::UTC);
        let date = t.date();
        let (start, end) = match self {
            Period::Minute => {
                let s = t.replace_time(
                    Time::from_hms(t.hour(), t.minute(), 0).unwrap_or(Time::MIDNIGHT),
                );
                (s, s + Duration::MINUTE)
            }
            Period::Hour => {
                let s = t.replace_time(Time::from_hms(t.hour(), 0, 0).unwrap_or(Time::MIDNIGHT));
                (s, s + Duration::HOUR)
            }
            Period::Day => {
                let s = midnight(date);
                (s, s + Duration::DAY)
            }
            Period::Week => {
                let monday =
                    date - Duration::days(i64::from(date.weekday().number_days_from_monday()));
                let s = midnight(monday);
                (s, s + Duration::WEEK)
            }
            Period::Month => {
                let first = date.replace_day(1).unwrap_or(date);
                let next = match first.month() {
                    Month::December => {
                        Date::from_calendar_date(first.year() + 1, Month::January, 1)
                    }
                    m => Date::from_calendar_date(first.year(), m.next(), 1),
                }
                .unwrap_or(first);
                (midnight(first), midnight(next))
            }
            Period::Year => {
                let first =
                    Date::from_calendar_date(date.year(), Month::January, 1).unwrap_or(date);
                let next =
                    Date::from_calendar_date(date.year() + 1, Month::January, 1).unwrap_or(first);
                (midnight(first), midnight(next))
            }
            Period::Eternity => {
                return Window {
                    start: 0,
                    end: i64::MAX,
                };
            }
        };
        Window {
            start: start.unix_timestamp(),
            end: end.unix_timestamp(),
        }
    }

    /// The period that contains Unix second `secs`; minutes, hours, days
    /// and weeks without calendar arithmetic.
    ///
    /// This is the meter's path, run on every counted request, so the fixed
    /// periods are integer division; months and years go through
    /// [`window`](Self::window). A time outside the calendar's range falls
    /// in one window from 0 to `i64::MAX`, as eternity does.
    pub fn window_at(self, secs: i64) -> Window {
        const DAY: i64 = 86_400;
        let floor = |unit: i64| secs - secs.rem_euclid(unit);
        match self {
            Period::Minute => Window {
                start: floor(60),
                end: floor(60) + 60,
            },
            Period::Hour => Window {
                start: floor(3600),
                end: floor(3600) + 3600,
            },
            Period::Day => Window {
                start: floor(DAY),
                end: floor(DAY) + DAY,
            },
            Period::Week => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let day = floor(DAY);
                let start = day - (day / DAY + 3).rem_euclid(7) * DAY;
                Window {
                    start,
                    end: start + 7 * DAY,
                }
            }
            Period::Eternity => Window {
                start: 0,
                end: i64::MAX,
            },
            Period::Month | Period::Year => match OffsetDateTime::from_unix_timestamp(secs) {
                Ok(t) => self.window(t),
                Err(_) => Window {
                    start: 0,
                    end: i64::MAX,
                },
            },
        }
    }

    /// The period's name as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
            Period::Eternity => "eternity",
        }
    }
}

/// 00:00 UTC of `d`.
fn midnight(d: Date) -> OffsetDateTime {
    d.midnight().assume_utc()
}
