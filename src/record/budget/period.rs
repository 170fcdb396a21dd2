//! A budget's periods (the UTC day and the UTC month) and what each has spent so far.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::config::BudgetConfig;

/// A budget's two periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
}

impl Period {
    pub(super) const BOTH: [Period; 2] = [Period::Day, Period::Month];

    /// `day` or `month`, as `/stats` and `/metrics` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The period `at` falls in, as a number that grows with time (`20261205`,
    /// `202612`): counted on every request, so no string is made.
    pub(super) fn key(self, at: DateTime<Utc>) -> u32 {
        let date = at.date_naive();
        let month = u32::try_from(date.year()).unwrap_or(0) * 100 + date.month();
        match self {
            Period::Day => month * 100 + date.day(),
            Period::Month => month,
        }
    }

    /// The period `at` falls in, for people: `2026-12-05` or `2026-12`.
    pub(super) fn label(self, at: DateTime<Utc>) -> String {
        match self {
            Period::Day => at.format("%Y-%m-%d").to_string(),
            Period::Month => at.format("%Y-%m").to_string(),
        }
    }

    /// When the period holding `at` ends.
    pub(super) fn end(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let date = at.date_naive();
        let next = match self {
            Period::Day => date.succ_opt(),
            Period::Month => {
                let (year, month) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                NaiveDate::from_ymd_opt(year, month, 1)
            }
        };
        next.and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(at + Duration::days(1), |t| Utc.from_utc_datetime(&t))
    }

    pub(super) fn ceiling(self, budget: &BudgetConfig) -> f64 {
        match self {
            Period::Day => budget.daily_usd,
            Period::Month => budget.monthly_usd,
        }
    }
}

/// What one period has cost so far.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    /// The period it counts (`Period::key`); another key means a new period began.
    pub(super) key: u32,
    pub(super) usd: f64,
    /// The part of `usd` priced from estimated usage.
    pub(super) estimated_usd: f64,
    /// The warning threshold and the ceiling were logged (once per period each).
    pub(super) warned: bool,
    pub(super) spent_logged: bool,
}

impl Tally {
    /// What the tally holds for the period with `key` (0 once the period has turned).
    pub(super) fn spent_in(&self, key: u32) -> f64 {
        if self.key == key { self.usd } else { 0.0 }
    }
}

/// A day's and a month's tally.
#[derive(Clone, Debug, Default)]
pub(super) struct Periods {
    pub(super) day: Tally,
    pub(super) month: Tally,
}

impl Periods {
    pub(super) fn tally(&mut self, period: Period) -> &mut Tally {
        match period {
            Period::Day => &mut self.day,
            Period::Month => &mut self.month,
        }
    }

    pub(super) fn get(&self, period: Period) -> &Tally {
        match period {
            Period::Day => &self.day,
            Period::Month => &self.month,
        }
    }
}

/// A ceiling for people: cents, or every digit of one set below a cent.
pub(super) fn dollars(usd: f64) -> String {
    if usd >= 0.01 {
        format!("${usd:.2}")
    } else {
        format!("${usd}")
    }
}

/// 00:00 UTC on the first of `now`'s month.
pub(super) fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let first =
        NaiveDate::from_ymd_opt(now.year(), now.month(), 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    first.map_or(now, |t| Utc.from_utc_datetime(&t))
}
