//! What the ledger shows: `/stats`' snapshot, the lines of `ai-router sessions stats`,
//! and `/metrics`' readings.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::period::{Period, Periods, dollars};
use super::{ALL_CLOUD, Budgets};
use crate::config::BudgetConfig;
use crate::record::summary::round;

/// One backend's spend in one period, for `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpendReading {
    /// The backend, or `all-cloud` for the estimate.
    pub backend: String,
    pub period: Period,
    pub usd: f64,
    /// The ceiling, when one is set.
    pub limit_usd: Option<f64>,
}

impl Budgets {
    /// Spend, ceilings, what remains and the saving against all-cloud, for `/stats`.
    pub fn snapshot(&self) -> Value {
        self.snapshot_at(Utc::now())
    }

    fn snapshot_at(&self, now: DateTime<Utc>) -> Value {
        let Ok(tallies) = self.tallies.lock() else {
            return Value::Null;
        };
        let empty = Periods::default();
        let mut backends = Map::new();
        let mut paid_total = [0.0, 0.0];
        for name in &self.cloud.backends {
            let periods = tallies.get(name).unwrap_or(&empty);
            let budget = self.limits.get(name);
            let mut entry = Map::new();
            for (i, period) in Period::BOTH.into_iter().enumerate() {
                let key = period.key(now);
                let tally = periods.get(period);
                let spent = tally.spent_in(key);
                paid_total[i] += spent;
                let ceiling = budget.map(|b| period.ceiling(b)).filter(|c| *c > 0.0);
                let estimated = if tally.key == key {
                    tally.estimated_usd
                } else {
                    0.0
                };
                entry.insert(
                    period.as_str().into(),
                    json!({
                        "period": period.label(now),
                        "spent_usd": round(spent, 6),
                        "estimated_usd": round(estimated, 6),
                        "limit_usd": ceiling,
                        "remaining_usd": ceiling.map(|c| round((c - spent).max(0.0), 6)),
                    }),
                );
            }
            if let Some(budget) = budget {
                entry.insert("when_spent".into(), json!(budget.when_spent));
                let state = match self.state_of(budget, periods, now) {
                    Some(true) => "spent",
                    Some(false) => "warning",
                    None => "ok",
                };
                entry.insert("state".into(), state.into());
            }
            backends.insert(name.clone(), Value::Object(entry));
        }
        let all_cloud = tallies.get(ALL_CLOUD).unwrap_or(&empty);
        let mut estimate = Map::new();
        let mut saving = Map::new();
        for (i, period) in Period::BOTH.into_iter().enumerate() {
            let usd = all_cloud.get(period).spent_in(period.key(now));
            estimate.insert(period.as_str().into(), json!(round(usd, 6)));
            saving.insert(period.as_str().into(), json!(round(usd - paid_total[i], 6)));
        }
        json!({
            "backends": backends,
            "all_cloud_estimate_usd": estimate,
            "saving_usd": saving,
        })
    }

    /// The snapshot for people: each paid backend's spend this day and month against its
    /// budget, and the saving against all-cloud.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let snapshot = self.snapshot();
        let usd = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("${x:.4}"));
        let mut out = String::new();
        let backends = snapshot["backends"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (name, entry) in &backends {
            let mut line = format!("{name:<15}");
            for period in Period::BOTH {
                let p = &entry[period.as_str()];
                let _ = write!(line, " {} {}", period.as_str(), usd(&p["spent_usd"]));
                if let Some(limit) = p["limit_usd"].as_f64() {
                    let _ = write!(line, " of {}", dollars(limit));
                }
            }
            if let Some(state) = entry["state"].as_str() {
                let _ = write!(line, " ({state})");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let estimate = &snapshot["all_cloud_estimate_usd"];
        let saving = &snapshot["saving_usd"];
        let _ = writeln!(
            out,
            "{:<15} day {} month {}; saving day {} month {}",
            "all-cloud",
            usd(&estimate["day"]),
            usd(&estimate["month"]),
            usd(&saving["day"]),
            usd(&saving["month"]),
        );
        out
    }

    /// `Some(true)` when a ceiling is reached, `Some(false)` past the warning share.
    fn state_of(
        &self,
        budget: &BudgetConfig,
        periods: &Periods,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        let shares = Period::BOTH.into_iter().filter_map(|period| {
            let ceiling = period.ceiling(budget);
            (ceiling > 0.0).then(|| periods.get(period).spent_in(period.key(now)) / ceiling)
        });
        let top = shares.fold(0.0_f64, f64::max);
        if top >= 1.0 {
            Some(true)
        } else {
            (top >= budget.warn_at).then_some(false)
        }
    }

    /// Every paid backend's spend (and the all-cloud estimate) per period, for `/metrics`.
    pub fn readings(&self) -> Vec<SpendReading> {
        let now = Utc::now();
        let Ok(tallies) = self.tallies.lock() else {
            return Vec::new();
        };
        let empty = Periods::default();
        let names = self.cloud.backends.iter().map(String::as_str);
        names
            .chain([ALL_CLOUD])
            .flat_map(|name| {
                let periods = tallies.get(name).unwrap_or(&empty);
                let budget = self.limits.get(name);
                Period::BOTH.into_iter().map(move |period| SpendReading {
                    backend: name.to_string(),
                    period,
                    usd: periods.get(period).spent_in(period.key(now)),
                    limit_usd: budget.map(|b| period.ceiling(b)).filter(|c| *c > 0.0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, ledger, spend};
    use super::*;
    use crate::record::cost::StepCost;

    #[test]
    fn the_snapshot_shows_spend_remaining_and_the_saving_against_all_cloud() {
        let ledger = ledger(1.0, 10.0);
        spend(&ledger, "2026-12-05T08:00:00Z", 0.85);
        let local = json!({"prompt_tokens": 1_000_000});
        // A local answer: free here, $1 all-cloud (priced at the cloud model).
        ledger.add(
            at("2026-12-05T08:30:00Z"),
            std::iter::once(StepCost {
                step: "answer",
                provider: "primary",
                model: "nemotron",
                usage: Some(&local),
            }),
        );
        let snapshot = ledger.snapshot_at(at("2026-12-05T09:00:00Z"));
        let day = &snapshot["backends"]["xai"]["day"];
        assert_eq!(day["spent_usd"], 0.85);
        assert_eq!(day["limit_usd"], 1.0);
        assert_eq!(day["remaining_usd"], 0.15);
        assert_eq!(snapshot["backends"]["xai"]["state"], "warning", "past 80 %");
        assert_eq!(snapshot["all_cloud_estimate_usd"]["day"], 1.85);
        assert_eq!(snapshot["saving_usd"]["day"], 1.0);
    }

    #[test]
    fn estimated_spend_is_counted_and_shown_apart() {
        let ledger = ledger(1.0, 0.0);
        let usage = json!({"prompt_tokens": 400_000, "estimated": true});
        ledger.add(
            at("2026-12-05T08:00:00Z"),
            std::iter::once(StepCost {
                step: "answer",
                provider: "xai",
                model: "grok-test",
                usage: Some(&usage),
            }),
        );
        let snapshot = ledger.snapshot_at(at("2026-12-05T09:00:00Z"));
        assert_eq!(snapshot["backends"]["xai"]["day"]["spent_usd"], 0.4);
        assert_eq!(snapshot["backends"]["xai"]["day"]["estimated_usd"], 0.4);
    }
}
