//! The last minutes of finished requests, for the dashboard's live overview: requests
//! per route and minute, and latency, time-to-first-token and classifier figures over a
//! short window. Bounded: old and surplus entries are dropped as new ones arrive.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};

use crate::names::Step;
use crate::record::log::{Outcome, SessionRecord};
use crate::record::sink::Observer;
use crate::record::summary::percentiles;

/// Minutes shown as requests per minute.
const MINUTES: i64 = 15;
/// The window the percentiles cover.
const PERCENTILE_SECS: i64 = 300;
/// At most this many requests are kept, whatever the rate: ~100 a second for the
/// 15 minutes would be 90,000; the oldest go first, the per-minute counts of the
/// oldest minutes are then low, which a busy router's admin reads in `/metrics`.
const MAX_ENTRIES: usize = 20_000;

/// One finished request, as the overview needs it.
#[derive(Clone, Debug)]
struct Entry {
    at: DateTime<Utc>,
    route: String,
    total_ms: u64,
    ttft_ms: Option<u64>,
    classify_ms: Option<u64>,
    classifier_fallback: bool,
    error: bool,
}

/// The window of recent requests.
#[derive(Debug, Default)]
pub struct Recent {
    entries: Mutex<VecDeque<Entry>>,
}

impl Recent {
    /// The overview's figures at `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Value {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let first_minute = minute(now) - chrono::Duration::minutes(MINUTES - 1);
        let mut per_minute: BTreeMap<DateTime<Utc>, BTreeMap<&str, u64>> = (0..MINUTES)
            .map(|m| (first_minute + chrono::Duration::minutes(m), BTreeMap::new()))
            .collect();
        let since = now - chrono::Duration::seconds(PERCENTILE_SECS);
        let (mut total, mut ttft, mut classify) = (Vec::new(), Vec::new(), Vec::new());
        let (mut fallbacks, mut errors, mut requests) = (0u64, 0u64, 0u64);
        for entry in entries.iter() {
            if let Some(routes) = per_minute.get_mut(&minute(entry.at)) {
                *routes.entry(entry.route.as_str()).or_default() += 1;
            }
            if entry.at < since {
                continue;
            }
            requests += 1;
            total.push(entry.total_ms);
            ttft.extend(entry.ttft_ms);
            classify.extend(entry.classify_ms);
            fallbacks += u64::from(entry.classifier_fallback);
            errors += u64::from(entry.error);
        }
        let per_minute: Vec<Value> = per_minute
            .into_iter()
            .map(|(at, routes)| json!({"minute": at.format("%H:%M").to_string(), "routes": routes}))
            .collect();
        json!({
            "per_minute": per_minute,
            "window_secs": PERCENTILE_SECS,
            "requests": requests,
            "errors": errors,
            "total_ms": percentiles(total),
            "ttft_ms": percentiles(ttft),
            "classifier": {
                "calls": classify.len(),
                "fallbacks": fallbacks,
                "ms": percentiles(classify),
            },
        })
    }

    fn push(&self, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = entry.at - chrono::Duration::minutes(MINUTES);
        while entries.front().is_some_and(|e| e.at < oldest) || entries.len() >= MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(entry);
    }
}

/// The start of `at`'s minute.
fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

impl Observer for Recent {
    fn finished(&self, record: &SessionRecord) {
        let step = |step: Step| record.steps.iter().find(|s| s.step == step);
        self.push(Entry {
            at: Utc::now(),
            route: record
                .decision
                .route
                .as_ref()
                .map_or_else(|| "rejected".to_string(), ToString::to_string),
            total_ms: record.total_ms,
            ttft_ms: step(Step::Answer).and_then(|s| s.ttft_ms),
            classify_ms: step(Step::Classify).map(|s| s.duration_ms),
            classifier_fallback: record.decision.classification_fallback.is_some(),
            error: record.outcome == Outcome::Error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: DateTime<Utc>, route: &str, total_ms: u64) -> Entry {
        Entry {
            at,
            route: route.into(),
            total_ms,
            ttft_ms: Some(total_ms / 2),
            classify_ms: None,
            classifier_fallback: false,
            error: false,
        }
    }

    #[test]
    fn counts_per_minute_and_percentiles_over_the_window() {
        let recent = Recent::default();
        let now = Utc::now();
        recent.push(entry(now - chrono::Duration::minutes(20), "primary", 9)); // too old
        recent.push(entry(now - chrono::Duration::minutes(10), "xai", 1000));
        recent.push(entry(now, "primary", 100));
        recent.push(entry(now, "primary", 300));
        let snap = recent.snapshot(now);
        let minutes = snap["per_minute"].as_array().unwrap();
        assert_eq!(minutes.len(), MINUTES as usize);
        assert_eq!(minutes.last().unwrap()["routes"]["primary"], 2);
        let xai: u64 = minutes
            .iter()
            .filter_map(|m| m["routes"]["xai"].as_u64())
            .sum();
        assert_eq!(xai, 1);
        // The percentile window (5 min) holds only the two recent ones.
        assert_eq!(snap["requests"], 2);
        assert_eq!(snap["total_ms"]["p99"], 300);
        assert_eq!(
            recent.entries.lock().unwrap().len(),
            3,
            "the 20-minute-old one dropped"
        );
    }
}
