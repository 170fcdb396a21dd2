//! The overview's figures in one JSON object: counters since start-up, the last minutes'
//! requests and percentiles, every backend endpoint's state, the route table, and this
//! UTC day's and month's cloud spend against all-cloud (the budgets' ledger).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::redacted_json;
use crate::edge::state::AppState;
use crate::record::summary::round;

/// `GET /dashboard/api/overview`: one snapshot, the same the live feed pushes.
pub(super) async fn overview(State(state): State<Arc<AppState>>) -> Response {
    redacted_json(&state, snapshot(&state))
}

/// Everything the overview shows, read now.
pub(super) fn snapshot(state: &AppState) -> Value {
    let now = chrono::Utc::now();
    let backends: Vec<Value> = state
        .backends
        .iter()
        .map(|backend| {
            let endpoints: Vec<Value> = backend
                .pool
                .endpoints()
                .iter()
                .map(|e| serde_json::to_value(e.status()).unwrap_or(Value::Null))
                .collect();
            json!({
                "name": backend.id.to_string(),
                "model": backend.model,
                "down": backend.pool.is_down(),
                "missing_key": backend.missing_key(),
                "endpoints": endpoints,
            })
        })
        .collect();
    let table = &state.routing.table;
    let routes: Vec<Value> = table
        .iter()
        .map(|route| {
            json!({
                "label": route.label.to_string(),
                "route": route.name.to_string(),
                "backend": route.backend.to_string(),
                "exposed_as": route.exposed_as,
            })
        })
        .collect();
    json!({
        "now": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "since_start": state.live.snapshot(),
        "recent": state.recent.snapshot(now),
        "classifier": state.routing.classifier.id.to_string(),
        "backends": backends,
        "routes": routes,
        "fallback_label": table.fallback.to_string(),
        "sessions": {
            "enabled": state.config.sessions.enabled,
            "problem": state.sessions.disk_problem(),
        },
        "spend": spend(state),
    })
}

/// Cloud spend this UTC day and month, what all-cloud would have cost and the saving,
/// and each paid backend's budget: the ledger the budgets keep in memory (`/stats`'
/// `cloud_spend`), so reading it costs no disk.
fn spend(state: &AppState) -> Value {
    let ledger = state.budgets.snapshot();
    let period = |name: &str| {
        let backends = ledger["backends"].as_object();
        // To the millionth, as the ledger rounds: cloud + saving = all-cloud on screen.
        let cloud: f64 = backends
            .into_iter()
            .flat_map(|map| map.values())
            .filter_map(|b| b[name]["spent_usd"].as_f64())
            .sum();
        json!({
            "cloud_usd": round(cloud, 6),
            "all_cloud_usd": ledger["all_cloud_estimate_usd"][name],
            "saving_usd": ledger["saving_usd"][name],
        })
    };
    json!({"day": period("day"), "month": period("month"), "backends": ledger["backends"]})
}
