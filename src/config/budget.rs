//! `[budget.BACKEND]`: a ceiling on what a paid backend may cost per UTC day and per UTC
//! month, in USD from `[prices]` and the usage each answer reports. When one is spent,
//! the routes that need that backend fall back to another route (or answer 429).

use serde::{Deserialize, Serialize};

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
