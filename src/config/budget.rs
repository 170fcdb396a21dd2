//! `[budget.BACKEND]`: a ceiling on what a paid backend may cost per UTC day and per UTC
//! month, in USD from `[prices]` and the usage each answer reports. When one is spent,
//! the routes that need that backend fall back to another route (or answer 429).

use serde::{Deserialize, Serialize};

use super::validate::invalid;
use super::{Config, ConfigError};

/// What a route whose backend's budget is spent does.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WhenSpent {
    /// Answered by the route's first failover route that can, else the fallback
    /// label's, with `route_fallback` saying why (the search hop is skipped).
    #[default]
    Fallback,
    /// Refused with a 429 `budget_exceeded` and a `Retry-After` until the period turns.
    Error,
}

/// One paid backend's budget.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// USD per UTC day; 0 = no daily ceiling.
    pub daily_usd: f64,
    /// USD per UTC calendar month; 0 = no monthly ceiling.
    pub monthly_usd: f64,
    /// What happens once a ceiling is reached.
    pub when_spent: WhenSpent,
    /// The share of a ceiling at which a warning is logged, once per period.
    pub warn_at: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            daily_usd: 0.0,
            monthly_usd: 0.0,
            when_spent: WhenSpent::Fallback,
            warn_at: 0.8,
        }
    }
}

/// Every budget names a backend that exists and whose model has a price (else its spend
/// would always read 0 and the ceiling would never be reached), with sane amounts.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    for (name, budget) in &config.budget {
        let key = |field: &str| format!("budget.{name}.{field}");
        let Some(backend) = config.backends.get(name) else {
            return invalid(
                &format!("budget.{name}"),
                "names no backend (the table is keyed by backend name, e.g. [budget.xai])",
            );
        };
        if !config.prices.contains_key(&backend.model) {
            return invalid(
                &format!("budget.{name}"),
                &format!(
                    "needs a price for the backend's model: add [prices.\"{}\"]",
                    backend.model
                ),
            );
        }
        for (field, usd) in [
            ("daily_usd", budget.daily_usd),
            ("monthly_usd", budget.monthly_usd),
        ] {
            if !usd.is_finite() || usd < 0.0 {
                return invalid(
                    &key(field),
                    "must be a number of USD, 0 (no ceiling) or more",
                );
            }
        }
        if budget.daily_usd == 0.0 && budget.monthly_usd == 0.0 {
            return invalid(
                &format!("budget.{name}"),
                "sets no ceiling: give daily_usd, monthly_usd or both",
            );
        }
        if !(budget.warn_at > 0.0 && budget.warn_at <= 1.0) {
            return invalid(
                &key("warn_at"),
                "must be a share above 0 and at most 1 (0.8 = 80 %)",
            );
        }
    }
    Ok(())
}
