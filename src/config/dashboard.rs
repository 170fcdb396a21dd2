//! `[dashboard]`: the web dashboard the router serves under `/dashboard`. It shows user
//! conversations, so it is reachable from loopback only unless an admin key is set.

use serde::{Deserialize, Serialize};

/// `[dashboard]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at all.
    pub enabled: bool,
    /// The variable holding the admin key; empty for none. Without a key the dashboard
    /// answers only loopback peers; with one, every request needs the key (from
    /// anywhere). It must not be a client key.
    pub admin_key_env: String,
    /// Live feeds (`/dashboard/api/live`) open at once; beyond it, 503.
    pub max_live_feeds: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            admin_key_env: String::new(),
            // A few admins with a tab or two each; every feed costs a tick a second.
            max_live_feeds: 8,
        }
    }
}
