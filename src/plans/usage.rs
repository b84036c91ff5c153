//! Usage records, like API Gateway's GetUsage and UpdateUsage.
//!
//! Nothing here is stored apart from the meter's counters: a record is
//! computed from them when asked. `used` for a day is that day's counter
//! ([`CounterKind::Day`], kept 90 days). `remaining` is what the quota
//! period had left at the end of that day: on the period's last day, the
//! limit less the period's own counter, which includes grants and resets;
//! on an earlier day of a longer period, the limit less the sum of the
//! period's daily counts so far, which does not; for a minute or hour
//! quota, which starts afresh within the day, the whole limit.
//! [`UsageRecords::remaining`] always reads the period's own counter.
//!
//! Errors are [`StoreError`]s: the store's own, or, of kind `Conflict`, a
//! plan without a quota, an unknown key id, or a range that runs backwards
//! or spans more than 366 days.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use time::{Date, Duration};

use super::{CounterKey, CounterKind, CounterStore, Period, PlanBook, Quota, Window};
use crate::clock::Clock;
use crate::keys::KeyStore;
use crate::store::{StoreError, StoreErrorKind};

/// Reads and adjusts what the meter counted.
#[derive(Clone)]
pub struct UsageRecords {
    /// The meter's counters, read and adjusted.
    counters: Arc<dyn CounterStore>,
    /// For each key's creation time (the offset's first period) and for
    /// the keys of a plan.
    keys: Arc<dyn KeyStore>,
    /// The plans' quotas, as the meter sees them.
    plans: PlanBook,
    /// Decides the current period for `remaining`, `grant` and `reset`.
    clock: Arc<dyn Clock>,
    /// Per-key daily counts from the usage pipeline, for plans without a
    /// quota (which the meter does not count).
    aggregate: Option<Arc<dyn crate::usage::UsageCounts>>,
}

/// Usage of one plan over a range of days, as GetUsage reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanUsage {
    /// The plan.
    pub plan: String,
    /// The first day.
    pub start: Date,
    /// The last day (inclusive).
    pub end: Date,
    /// Per key id, per day from `start` to `end`: `[used, remaining]`, where
    /// remaining is what was left of the quota period at the end of that day.
    pub items: BTreeMap<String, Vec<[i64; 2]>>,
}

impl fmt::Debug for UsageRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageRecords")
            .field("plans", &self.plans.load().len())
            .finish_non_exhaustive()
    }
}

/// A request the records cannot answer (no such plan quota or key, a bad
/// range), as a [`StoreErrorKind::Conflict`] with the reason.
fn not_found(what: String) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, what)
}

/// 00:00 UTC of `d`, Unix seconds: the `start` of its day counter.
fn day_start(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp()
}

impl UsageRecords {
    pub(crate) fn new(
        counters: Arc<dyn CounterStore>,
        keys: Arc<dyn KeyStore>,
        plans: PlanBook,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            counters,
            keys,
            plans,
            clock,
            aggregate: None,
        }
    }

    /// Answers `get_usage` for plans without a quota from `aggregate`'s
    /// per-key daily counts (remaining is then -1: no quota).
    pub(crate) fn with_aggregate(mut self, aggregate: Arc<dyn crate::usage::UsageCounts>) -> Self {
        self.aggregate = Some(aggregate);
        self
    }

    /// The quota of `plan`; an error when there is no such plan or it has
    /// no quota.
    fn quota(&self, plan: &str) -> Result<Quota, StoreError> {
        self.plans
            .load()
            .get(plan)
            .and_then(|p| p.quota)
            .ok_or_else(|| not_found(format!("no quota for plan `{plan}`")))
    }

    /// Per key and day `[used, remaining]` for `plan` from `start` to `end`
    /// (inclusive, at most 366 days), for one key or every key in the plan.
    /// A plan without a quota has usage only when the gateway reports to an
    /// [`AggregatingSink`](crate::usage::AggregatingSink) it was told of
    /// (`GatewayBuilder::usage_records_from`); remaining is then -1.
    pub async fn get_usage(
        &self,
        plan: &str,
        start: Date,
        end: Date,
        key_id: Option<&str>,
    ) -> Result<PlanUsage, StoreError> {
        let quota = match (self.quota(plan), &self.aggregate) {
            (Ok(q), _) => Some(q),
            (Err(_), Some(_)) if self.plans.load().get(plan).is_some() => None,
            (Err(e), _) => return Err(e),
        };
        if end < start || (end - start).whole_days() > 366 {
            return Err(not_found(
                "the range must run forward and span at most 366 days".into(),
            ));
        }
        let keys: Vec<(String, i64)> = match key_id {
            Some(id) => match self.keys.get_by_id(id).await? {
                Some((_, r)) => vec![(r.id.to_string(), r.created.unix_timestamp())],
                None => return Err(not_found(format!("no key with id `{id}`"))),
            },
            None => self
                .keys
                .list()
                .await?
                .iter()
                .filter(|r| r.plans.iter().any(|p| &**p == plan))
                .map(|r| (r.id.to_string(), r.created.unix_timestamp()))
                .collect(),
        };
        let mut items = BTreeMap::new();
        for (id, created) in keys {
            let mut days = Vec::new();
            let mut day = start;
            while day <= end {
                let Some(quota) = quota else {
                    let used = match &self.aggregate {
                        Some(a) => a.key_day(&id, day).await?,
                        None => 0,
                    };
                    days.push([i64::try_from(used).unwrap_or(i64::MAX), -1]);
                    day = day.next_day().unwrap_or(day);
                    if day == Date::MAX {
                        break;
                    }
                    continue;
                };
                let used = self.day_count(&id, plan, day).await?;
                let window = quota.period.window_at(day_start(day));
                let remaining = match quota.period {
                    // A period shorter than a day starts afresh within it.
                    Period::Minute | Period::Hour => quota.limit_in(window, Some(created)),
                    _ => {
                        let spent = self.spent_through(&id, plan, window, day).await?;
                        quota
                            .limit_in(window, Some(created))
                            .saturating_sub(spent)
                            .max(0)
                    }
                };
                days.push([used, remaining]);
                day = day.next_day().unwrap_or(day);
                if day == Date::MAX {
                    break;
                }
            }
            items.insert(id, days);
        }
        Ok(PlanUsage {
            plan: plan.to_owned(),
            start,
            end,
            items,
        })
    }

    /// Requests admitted for the key in `plan` on `day` (0 when none, or
    /// when the day is past the 90 days counters are kept).
    async fn day_count(&self, key_id: &str, plan: &str, day: Date) -> Result<i64, StoreError> {
        let key = CounterKey {
            key_id,
            plan,
            kind: CounterKind::Day,
            start: day_start(day),
        };
        self.counters.get(&key).await
    }

    /// Requests counted in `window` up to the end of `day`: the quota
    /// counter when the window ends with the day (it includes grants and
    /// resets), else the sum of the window's daily counts so far.
    async fn spent_through(
        &self,
        key_id: &str,
        plan: &str,
        window: Window,
        day: Date,
    ) -> Result<i64, StoreError> {
        let day_end = day_start(day) + 86_400;
        if window.end <= day_end {
            let key = CounterKey {
                key_id,
                plan,
                kind: CounterKind::Quota,
                start: window.start,
            };
            return self.counters.get(&key).await;
        }
        // Daily counts are kept 90 days: a longer window is summed over those.
        let earliest = day_start(day) - 90 * 86_400;
        let from = window.start.max(earliest);
        let mut d = time::OffsetDateTime::from_unix_timestamp(from).map_or(day, |t| t.date());
        let mut spent: i64 = 0;
        while d <= day {
            spent = spent.saturating_add(self.day_count(key_id, plan, d).await?);
            d += Duration::DAY;
        }
        Ok(spent)
    }

    /// The plan's quota, its current window, and the key's counter in it.
    fn current<'a>(
        &self,
        key_id: &'a str,
        plan: &'a str,
    ) -> Result<(Quota, Window, CounterKey<'a>), StoreError> {
        let quota = self.quota(plan)?;
        let now = i64::try_from(self.clock.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX);
        let window = quota.period.window_at(now);
        let key = CounterKey {
            key_id,
            plan,
            kind: CounterKind::Quota,
            start: window.start,
        };
        Ok((quota, window, key))
    }

    /// What is left of a key's quota in the current period.
    pub async fn remaining(&self, key_id: &str, plan: &str) -> Result<i64, StoreError> {
        let (quota, window, key) = self.current(key_id, plan)?;
        let created = self
            .keys
            .get_by_id(key_id)
            .await?
            .map(|(_, r)| r.created.unix_timestamp());
        let counted = self.counters.get(&key).await?;
        Ok(quota
            .limit_in(window, created)
            .saturating_sub(counted)
            .max(0))
    }

    /// Requests admitted for the key in `plan`'s current period, whatever
    /// was granted since (GetUsage's `used`, summed over the period's days
    /// so far; days past the 90 kept count 0). For a `minute` or `hour`
    /// period the quota counter is read, so there a grant (UpdateUsage)
    /// lowers it.
    pub async fn used(&self, key_id: &str, plan: &str) -> Result<i64, StoreError> {
        let (quota, window, key) = self.current(key_id, plan)?;
        if matches!(quota.period, Period::Minute | Period::Hour) {
            return Ok(self.counters.get(&key).await?.max(0));
        }
        let now = i64::try_from(self.clock.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX);
        let date = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map(|t| t.date());
        let (Ok(today), Ok(first)) = (date(now), date(window.start.max(now - 90 * 86_400))) else {
            return Ok(0);
        };
        let mut used = 0i64;
        let mut d = first;
        while d <= today {
            used = used.saturating_add(self.day_count(key_id, plan, d).await?);
            d += Duration::DAY;
        }
        Ok(used)
    }

    /// Gives a key `extra` more requests in the current period (UpdateUsage);
    /// returns what is left. A negative `extra` takes requests away. The
    /// grant lasts until the period ends: the next period starts from the
    /// plain limit.
    pub async fn grant(&self, key_id: &str, plan: &str, extra: i64) -> Result<i64, StoreError> {
        let (_, window, key) = self.current(key_id, plan)?;
        let delta = extra.checked_neg().unwrap_or(i64::MAX);
        self.counters.add(&key, delta, window.end).await?;
        self.remaining(key_id, plan).await
    }

    /// Starts a key's current period afresh: its counter back to zero, the
    /// whole limit available again. Past days' usage is unchanged.
    pub async fn reset(&self, key_id: &str, plan: &str) -> Result<(), StoreError> {
        let (_, _, key) = self.current(key_id, plan)?;
        self.counters.reset(&key).await
    }
}
