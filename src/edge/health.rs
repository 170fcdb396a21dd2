//! `GET /health` (the process is up) and `GET /health/ready` (and its backends answer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::edge::state::AppState;
use crate::record::session::millis;
use crate::upstream::backend::Upstream;

/// Longest a readiness probe waits for one backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Liveness: answers as long as the process serves HTTP. Never touches a backend.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: probes every backend at once (`GET {base_url}/models`) and reports each
/// one's status and latency. 503 when the primary, which answers every chat, is down.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (primary, classifier, xai) = tokio::join!(
        probe(&state, &state.primary),
        probe(&state, &state.classifier),
        probe(&state, &state.xai),
    );
    let primary_up = primary["status"] == "up";
    let all_up = [&primary, &classifier, &xai]
        .iter()
        .all(|b| b["status"] == "up");
    let (status, overall) = match (primary_up, all_up) {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = json!({
        "status": overall,
        "backends": {"primary": primary, "classifier": classifier, "xai": xai},
    });
    (status, Json(body)).into_response()
}

async fn probe(state: &AppState, upstream: &Upstream) -> Value {
    let base = json!({"url": upstream.base_url, "model": upstream.model});
    if let Some(variable) = upstream.missing_key() {
        let error = format!("no API key: {variable} is not set");
        return merge(base, json!({"status": "unconfigured", "error": error}));
    }
    let started = Instant::now();
    let wait = PROBE_TIMEOUT.min(upstream.timeout);
    let result = upstream.get("/models", wait).await;
    let latency_ms = millis(started.elapsed());
    let board = state.sessions.health();
    let probed = match result {
        Ok(_) => {
            board.success(upstream.name);
            json!({"status": "up", "latency_ms": latency_ms})
        }
        Err(error) => {
            board.failure(upstream.name, &error.to_string());
            json!({"status": "down", "latency_ms": latency_ms, "error": error.to_string()})
        }
    };
    // What the background probes and real calls have seen, besides this probe.
    let watched = json!({"watch": board.snapshot(upstream.name)});
    merge(merge(base, probed), watched)
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}
