//! The cloud spend gauges: what each paid backend has cost this UTC day and month, its
//! budget, and the all-cloud estimate (the saving is the difference), read from the
//! budget ledger at each scrape.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{PeriodLabel, SpendLabel};
use crate::record::budget::{ALL_CLOUD, SpendReading};

type UsdGauges = Family<SpendLabel, Gauge<f64, AtomicU64>>;

/// The spend gauges, registered in the router's registry.
#[derive(Debug)]
pub struct SpendMetrics {
    spent: UsdGauges,
    budget: UsdGauges,
    all_cloud: Family<PeriodLabel, Gauge<f64, AtomicU64>>,
}

impl SpendMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = SpendMetrics {
            spent: Family::default(),
            budget: Family::default(),
            all_cloud: Family::default(),
        };
        registry.register(
            "cloud_spend_usd",
            "What a paid backend has cost this UTC day or month (period), from reported or estimated usage",
            metrics.spent.clone(),
        );
        registry.register(
            "cloud_budget_usd",
            "A paid backend's budget for the UTC day or month (period), when one is set",
            metrics.budget.clone(),
        );
        registry.register(
            "all_cloud_estimate_usd",
            "What this UTC day's or month's answers would have cost from the cloud model (the saving is this minus cloud_spend_usd)",
            metrics.all_cloud.clone(),
        );
        metrics
    }

    /// Sets every gauge from `readings`.
    pub fn set(&self, readings: &[SpendReading]) {
        for reading in readings {
            let period = reading.period.as_str();
            if reading.backend == ALL_CLOUD {
                let label = PeriodLabel { period };
                self.all_cloud.get_or_create(&label).set(reading.usd);
                continue;
            }
            let label = SpendLabel {
                backend: reading.backend.clone(),
                period,
            };
            self.spent.get_or_create(&label).set(reading.usd);
            if let Some(limit) = reading.limit_usd {
                self.budget.get_or_create(&label).set(limit);
            }
        }
    }
}
