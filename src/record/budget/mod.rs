//! The budget ledger: what each paid backend has cost this UTC day and this UTC month,
//! and what the same traffic would have cost all-cloud. Every finished record adds to it
//! (it is a record observer), it is rebuilt from the session logs at start-up, and the
//! answering routes ask it whether a budgeted backend may still be called.
//!
//! Spend is counted when a request ends, against the period it started in. A request is
//! checked when it is routed, so requests already running when a budget is reached still
//! finish: spend can pass a ceiling by what those cost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::cost::{Cloud, StepCost};
use super::log::SessionRecord;
use super::sink::Observer;
use super::store::{self, Detail, LoggedSession};
use super::summary::round;
use crate::config::{BudgetConfig, Config, WhenSpent};

mod period;
mod report;

pub use period::Period;
use period::{Periods, Tally, dollars, month_start};
pub use report::SpendReading;

/// A budgeted backend that may not be called now.
#[derive(Clone, Debug, PartialEq)]
pub struct Spent {
    /// What its budget says to do.
    pub when_spent: WhenSpent,
    /// `daily` or `monthly`.
    pub per: &'static str,
    /// Which ceiling, how much, and when it renews, for a person.
    pub why: String,
    /// Seconds until the spent period turns.
    pub retry_after_secs: u64,
}

/// The name the all-cloud estimate goes by in readings.
pub const ALL_CLOUD: &str = "all-cloud";

/// The ledger. `Default` has no paid backends and no budgets.
#[derive(Debug, Default)]
pub struct Budgets {
    cloud: Cloud,
    limits: BTreeMap<String, BudgetConfig>,
    /// Per paid backend, and the all-cloud estimate under [`ALL_CLOUD`].
    tallies: Mutex<BTreeMap<String, Periods>>,
    /// Sessions already counted (`timestamp id`, in time order), so no file counts
    /// twice: those read in the last scan, and with a shared folder this replica's own
    /// as they finish (its later reads find their files). Kept only as far back as a
    /// read of the shared folder looks.
    seen: Mutex<BTreeSet<String>>,
    /// Whether other replicas' folders are read again while running (`shared_dir`).
    shared: bool,
}

/// How far back, by request start, the ledger remembers which sessions it counted:
/// twice as far as a read of the shared folder looks (an hour).
const REMEMBER_COUNTED: Duration = Duration::hours(2);

impl Budgets {
    /// The ledger for `config`'s paid backends and `[budget]` tables, empty.
    pub fn new(config: &Config) -> Self {
        Budgets {
            cloud: Cloud::of(config),
            limits: config.budget.clone(),
            tallies: Mutex::default(),
            seen: Mutex::default(),
            shared: config.sessions.enabled && !config.sessions.shared_dir.as_os_str().is_empty(),
        }
    }

    /// Whether any budget is set.
    pub fn any(&self) -> bool {
        !self.limits.is_empty()
    }

    /// Adds what the sessions logged in `dirs` (each with its replica sub-folders) since
    /// `since` cost, skipping any already counted; returns how many were new.
    pub fn read_logs(&self, dirs: &[PathBuf], since: DateTime<Utc>) -> Result<usize, String> {
        let present: Vec<PathBuf> = dirs.iter().filter(|d| d.is_dir()).cloned().collect();
        if present.is_empty() {
            return Ok(0); // nothing logged yet
        }
        let dirs = super::folders::expand(&present)?;
        let scan = store::scan(&dirs, Some(since), Detail::Brief).map_err(|e| e.to_string())?;
        let added = self.add_logged(&scan.sessions);
        self.forget_before(Utc::now() - REMEMBER_COUNTED);
        Ok(added)
    }

    /// [`Budgets::read_logs`] since the start of this UTC month.
    pub fn read_month(&self, dirs: &[PathBuf]) -> Result<usize, String> {
        self.read_logs(dirs, month_start(Utc::now()))
    }

    /// Adds what the logged `sessions` cost, skipping those already counted; returns
    /// how many were new.
    pub fn add_logged(&self, sessions: &[LoggedSession]) -> usize {
        let mut added = 0;
        for session in sessions {
            if !self.first_sight(&session.timestamp, &session.id) {
                continue;
            }
            added += 1;
            let steps = session.steps.iter().map(|s| StepCost {
                step: &s.step,
                provider: &s.provider,
                model: &s.model,
                usage: s.usage.as_ref(),
            });
            self.add(started(&session.timestamp), steps);
        }
        added
    }

    /// Whether the session that started at `timestamp` with `id` is new to the ledger
    /// (and from now on, counted).
    fn first_sight(&self, timestamp: &str, id: &str) -> bool {
        match self.seen.lock() {
            Ok(mut seen) => seen.insert(format!("{timestamp} {id}")),
            Err(_) => true,
        }
    }

    /// Lets go of the sessions that started before `cutoff`: no later read looks back
    /// that far, so the memory stays bounded by a few hours of traffic.
    fn forget_before(&self, cutoff: DateTime<Utc>) {
        if let Ok(mut seen) = self.seen.lock() {
            let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            *seen = seen.split_off(&cutoff);
        }
    }

    /// Adds one request's steps, against the periods that hold `at`.
    fn add<'a>(&self, at: DateTime<Utc>, steps: impl Iterator<Item = StepCost<'a>>) {
        let mut costs: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for step in steps {
            let priced = self.cloud.step(&step);
            let estimated = step
                .usage
                .is_some_and(|u| u.get("estimated") == Some(&Value::Bool(true)));
            let mut put = |name, usd: f64| {
                let entry = costs.entry(name).or_default();
                entry.0 += usd;
                if estimated {
                    entry.1 += usd;
                }
            };
            if let Some(Some(usd)) = priced.paid {
                put(step.provider, usd);
            }
            put(ALL_CLOUD, priced.all_cloud_usd());
        }
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        for (name, (usd, estimated)) in costs {
            if usd == 0.0 && name != ALL_CLOUD {
                continue;
            }
            let periods = tallies.entry(name.to_string()).or_default();
            for period in Period::BOTH {
                let key = period.key(at);
                let tally = periods.tally(period);
                if tally.key < key {
                    *tally = Tally {
                        key,
                        ..Tally::default()
                    };
                } else if tally.key > key {
                    continue; // a period already over: it no longer counts
                }
                tally.usd += usd;
                tally.estimated_usd += estimated;
                if let Some(budget) = self.limits.get(name) {
                    warn_once(name, period, tally, period.ceiling(budget), budget.warn_at);
                }
            }
        }
    }

    /// Whether `backend`'s budget is spent now, and what to do.
    pub fn check(&self, backend: &str) -> Option<Spent> {
        self.check_at(backend, Utc::now())
    }

    /// [`Budgets::check`] at `now`.
    pub fn check_at(&self, backend: &str, now: DateTime<Utc>) -> Option<Spent> {
        let budget = self.limits.get(backend)?;
        let tallies = self.tallies.lock().ok()?;
        let periods = tallies.get(backend)?;
        // The month first: it renews later, so it is the wait that matters.
        [Period::Month, Period::Day].into_iter().find_map(|period| {
            let ceiling = period.ceiling(budget);
            let key = period.key(now);
            let spent = periods.get(period).spent_in(key);
            if ceiling <= 0.0 || spent < ceiling {
                return None;
            }
            let end = period.end(now);
            let renews = match period {
                Period::Day => "00:00 UTC".to_string(),
                Period::Month => format!("{} 00:00 UTC", end.format("%Y-%m-%d")),
            };
            let per = match period {
                Period::Day => "daily",
                Period::Month => "monthly",
            };
            Some(Spent {
                when_spent: budget.when_spent,
                per,
                why: format!(
                    "its {per} budget of {} is spent (${:.4} in {}, UTC); it renews at {renews}",
                    dollars(ceiling),
                    round(spent, 4),
                    period.label(now),
                ),
                retry_after_secs: u64::try_from((end - now).num_seconds().max(1)).unwrap_or(1),
            })
        })
    }
}

impl Observer for Budgets {
    fn finished(&self, record: &SessionRecord) {
        // Its file, read back from the shared folder later, is not counted again.
        if self.shared {
            self.first_sight(&record.timestamp, &record.id);
        }
        let steps = record.steps.iter().map(|s| StepCost {
            step: s.step.as_str(),
            provider: s.provider.as_str(),
            model: &s.model,
            usage: s.usage.as_ref(),
        });
        self.add(started(&record.timestamp), steps);
    }
}

/// When a request started, from its record's timestamp (now, if it cannot be read).
fn started(timestamp: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(timestamp).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

/// Logs, once per period, that `name`'s spend passed its warning share, then its ceiling.
fn warn_once(name: &str, period: Period, tally: &mut Tally, ceiling: f64, warn_at: f64) {
    if ceiling <= 0.0 {
        return;
    }
    let spent_usd = round(tally.usd, 4);
    if tally.usd >= ceiling && !tally.spent_logged {
        tally.spent_logged = true;
        tally.warned = true;
        tracing::warn!(
            backend = name,
            period = period.as_str(),
            spent_usd,
            limit_usd = ceiling,
            "cloud budget spent: routes that need this backend fall back or are refused until the period turns"
        );
    } else if tally.usd >= ceiling * warn_at && !tally.warned {
        tally.warned = true;
        tracing::warn!(
            backend = name,
            period = period.as_str(),
            spent_usd,
            limit_usd = ceiling,
            "cloud budget nearly spent"
        );
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::Price;
    use serde_json::json;

    pub(super) fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// xAI at $1 per million tokens in and out, with a daily and a monthly ceiling.
    pub(super) fn ledger(daily: f64, monthly: f64) -> Budgets {
        let mut config = Config::default();
        config.prices.insert(
            "grok-test".into(),
            Price {
                input_per_million: 1.0,
                output_per_million: 1.0,
            },
        );
        if let Some(xai) = config.backends.get_mut("xai") {
            xai.model = "grok-test".into();
        }
        config.budget.insert(
            "xai".into(),
            BudgetConfig {
                daily_usd: daily,
                monthly_usd: monthly,
                ..BudgetConfig::default()
            },
        );
        Budgets::new(&config)
    }

    /// One xAI answer costing `usd` at `when`.
    pub(super) fn spend(ledger: &Budgets, when: &str, usd: f64) {
        let usage = json!({"prompt_tokens": (usd * 1_000_000.0) as u64});
        let step = StepCost {
            step: "answer",
            provider: "xai",
            model: "grok-test",
            usage: Some(&usage),
        };
        ledger.add(at(when), std::iter::once(step));
    }

    #[test]
    fn a_daily_ceiling_is_reached_mid_day_and_renews_at_midnight_utc() {
        let ledger = ledger(1.0, 0.0);
        spend(&ledger, "2026-12-05T09:00:00Z", 0.6);
        assert_eq!(ledger.check_at("xai", at("2026-12-05T09:01:00Z")), None);
        spend(&ledger, "2026-12-05T10:00:00Z", 0.5);
        let spent = ledger.check_at("xai", at("2026-12-05T22:00:00Z")).unwrap();
        assert_eq!(
            spent.retry_after_secs,
            2 * 3600,
            "two hours to midnight UTC"
        );
        assert!(spent.why.contains("daily budget of $1.00"), "{}", spent.why);
        assert!(spent.why.contains("$1.1000 in 2026-12-05"), "{}", spent.why);
        assert_eq!(
            ledger.check_at("xai", at("2026-12-06T00:00:01Z")),
            None,
            "a new day, a new budget"
        );
        // The new day's first spend starts its tally from zero.
        spend(&ledger, "2026-12-06T08:00:00Z", 0.2);
        assert_eq!(ledger.check_at("xai", at("2026-12-06T08:00:01Z")), None);
    }

    #[test]
    fn a_monthly_ceiling_holds_across_days_until_the_first_of_the_next_month() {
        let ledger = ledger(0.0, 2.0);
        spend(&ledger, "2026-12-01T12:00:00Z", 1.0);
        spend(&ledger, "2026-12-20T12:00:00Z", 1.5);
        let spent = ledger.check_at("xai", at("2026-12-31T23:00:00Z")).unwrap();
        assert!(spent.why.contains("monthly"), "{}", spent.why);
        assert!(spent.why.contains("2027-01-01 00:00 UTC"), "{}", spent.why);
        assert_eq!(spent.retry_after_secs, 3600);
        assert_eq!(ledger.check_at("xai", at("2027-01-01T00:00:00Z")), None);
    }

    #[test]
    fn spend_from_a_period_already_over_does_not_count_now() {
        let ledger = ledger(1.0, 0.0);
        spend(&ledger, "2026-12-05T08:00:00Z", 0.5);
        // A request that started yesterday, finishing after today's first one.
        spend(&ledger, "2026-12-04T23:59:59Z", 5.0);
        assert_eq!(ledger.check_at("xai", at("2026-12-05T09:00:00Z")), None);
    }

    #[test]
    fn counted_sessions_are_remembered_for_hours_not_the_month() {
        let ledger = ledger(1.0, 0.0);
        let now = Utc::now();
        for (i, hours_ago) in [30, 3, 1, 0].into_iter().enumerate() {
            let at = (now - Duration::hours(hours_ago))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert!(ledger.first_sight(&at, &format!("{i:08x}")));
            assert!(
                !ledger.first_sight(&at, &format!("{i:08x}")),
                "counted twice"
            );
        }
        ledger.forget_before(now - REMEMBER_COUNTED);
        assert_eq!(
            ledger.seen.lock().unwrap().len(),
            2,
            "the last two hours' only"
        );
    }
}
