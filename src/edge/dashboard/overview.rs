//! The overview's figures in one JSON object: counters since start-up, the last minutes'
//! requests and percentiles, every backend endpoint's state, the route table, and the
//! last 24 hours' cloud spend (from `/stats`' cached summary).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::redacted_json;
use crate::edge::state::AppState;

/// `GET /dashboard/api/overview`: one snapshot, the same the live feed pushes.
pub(super) async fn overview(State(state): State<Arc<AppState>>) -> Response {
    let spend = spend(state.clone()).await;
    redacted_json(&state, snapshot(&state, &spend))
}

/// Everything the overview shows but the spend, read now; `spend` is added as given.
pub(super) fn snapshot(state: &AppState, spend: &Value) -> Value {
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
        "spend": spend,
    })
}

/// Cloud spend over the last 24 hours and what the same traffic would have cost
/// all-cloud, from the summary `/stats` keeps (read from the session logs, cached).
pub(super) async fn spend(state: Arc<AppState>) -> Value {
    let axum::Json(stats) = crate::edge::stats::stats(State(state)).await;
    let day = &stats["last_24h"];
    if let Some(error) = day.get("error") {
        return json!({"error": error});
    }
    let cost = |part: &str| day[part]["cost_usd"].as_f64().unwrap_or(0.0);
    let (cloud, all_cloud) = (cost("xai"), cost("all_cloud"));
    json!({
        "window": "last 24 h",
        "sessions": day["sessions"],
        "cloud_usd": cloud,
        "all_cloud_usd": all_cloud,
        "saving_usd": crate::record::summary::round(all_cloud - cloud, 4),
        "unpriced_models": day["xai"]["unpriced_models"],
    })
}
