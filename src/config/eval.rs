//! `[eval]`: what each of the classifier's mistakes costs, for `ai-router eval`'s
//! cost-weighted error (a MODERATE sent to the cloud costs money; a COMPLEX kept local
//! costs quality, and the two are not worth the same).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[eval]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The weight of a mistake `costs` does not list.
    pub default_cost: f64,
    /// `"TRUE>ROUTED" = weight`: a request whose right label is TRUE answered on ROUTED's
    /// route. Both are labels of the route table; a right answer costs 0.
    pub costs: BTreeMap<String, f64>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        // No built-in pairs: they would name labels an admin's own table may not have.
        EvalConfig {
            default_cost: 1.0,
            costs: BTreeMap::new(),
        }
    }
}

impl EvalConfig {
    /// What answering a `truth` request on `routed`'s route costs.
    pub fn cost(&self, truth: &str, routed: &str) -> f64 {
        if truth == routed {
            return 0.0;
        }
        self.costs
            .get(&format!("{truth}>{routed}"))
            .copied()
            .unwrap_or(self.default_cost)
    }
}
