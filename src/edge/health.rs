//! `GET /health` (the process is up) and `GET /health/ready` (and its backends answer).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::state::AppState;
use crate::config::MissingKey;

/// Liveness: answers as long as the process serves HTTP. Never touches a backend.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: probes every endpoint of every backend at once (`GET {url}/models`), or
/// takes the probes of a round that is running or just ran, and reports each backend's
/// status, latency and endpoints. `ready` when all are up,
/// `degraded` (200) when something is down but the fallback route's backend, which
/// answers every chat the classifier cannot place, is up, or session logs cannot be
/// written; `unavailable` (503) when that backend is down. `draining` (503) once
/// shutdown has begun, at once and without probing: the load balancer must stop sending
/// new work here while the requests running finish.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.is_draining() {
        let reply = json!({
            "status": "draining",
            "detail": "shutting down: finishing the requests in flight, taking no new ones",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(reply)).into_response();
    }
    let backends: Vec<_> = state.backends.iter().collect();
    let reports = state.readiness.reports(&state.backends).await;
    let essential = state
        .routing
        .table
        .get(&state.routing.table.fallback)
        .map(|route| route.backend.clone());
    let mut body = Map::new();
    let mut all_up = true;
    let mut essential_up = true;
    // A backend without its key is never called: with `missing_key = "fallback"` its
    // routes are answered elsewhere, as designed (the demo, a homelab without a cloud
    // key), so it does not make the router degraded; its own status still says so.
    let answered_elsewhere = state.config.routing.missing_key == MissingKey::Fallback;
    for (backend, report) in backends.iter().zip(reports) {
        let up = report.status == "up";
        let fine = up || (report.status == "unconfigured" && answered_elsewhere);
        all_up &= fine && (!up || report.endpoints_up == report.endpoints.len());
        if essential.as_ref() == Some(&backend.id) {
            essential_up = up;
        }
        body.insert(
            backend.id.to_string(),
            serde_json::to_value(report).unwrap_or(Value::Null),
        );
    }
    // Chats are still answered when their records cannot be written, so a failing
    // session-log folder degrades the router; it never makes it unavailable.
    let disk = state.sessions.disk_problem();
    let (status, overall) = match (essential_up, all_up && disk.is_none()) {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let sessions = match disk {
        Some(error) => json!({"status": "failing", "error": error}),
        None if !state.config.sessions.enabled => json!({"status": "disabled"}),
        None => json!({"status": "ok"}),
    };
    let reply = json!({"status": overall, "backends": body, "sessions": sessions});
    (status, Json(reply)).into_response()
}
