//! `GET /stats`: live counters since start-up and the last 24 hours' summary (the same as
//! `ai-router sessions stats --since 24h`), read from the session logs on a blocking
//! thread and cached briefly, so request handling never waits on it; and `GET /metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::state::AppState;
use crate::observe::EndpointReading;
use crate::record::store::{self, Detail};
use crate::record::summary;

/// How long a computed 24-hour summary is served before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// Longest a summary may take to read the session logs.
const READ_FOR_AT_MOST: Duration = Duration::from_secs(20);

/// The last computed summary.
#[derive(Debug, Default)]
pub struct SummaryCache {
    last: Mutex<Option<(Instant, Arc<Value>)>>,
    /// A scan still running (one that outlived `READ_FOR_AT_MOST` on a hung disk): no
    /// second one starts, so stuck threads cannot pile up.
    scanning: Arc<std::sync::atomic::AtomicBool>,
}

/// `GET /stats`.
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    let live = state.live.snapshot();
    let day = last_day(&state).await;
    let cloud = state.budgets.snapshot();
    Json(json!({"since_start": live, "cloud_spend": cloud, "last_24h": *day}))
}

async fn last_day(state: &Arc<AppState>) -> Arc<Value> {
    // Held across the computation on purpose: concurrent callers wait for one scan
    // instead of starting their own.
    let mut last = state.day_summary.last.lock().await;
    if let Some((at, value)) = last.as_ref()
        && at.elapsed() < FRESH_FOR
    {
        return value.clone();
    }
    let value = Arc::new(compute(state.clone()).await);
    *last = Some((Instant::now(), value.clone()));
    value
}

async fn compute(state: Arc<AppState>) -> Value {
    if !state.config.sessions.enabled {
        return json!({"error": "session logs are disabled (sessions.enabled = false)"});
    }
    let scanning = state.day_summary.scanning.clone();
    if scanning.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return json!({"error": "the previous read of the session logs has not finished (a slow or hung disk?)"});
    }
    let work = tokio::task::spawn_blocking(move || {
        // Cleared however the scan ends, when it ends.
        struct Done(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Release);
            }
        }
        let _done = Done(scanning);
        let since = chrono::Utc::now() - chrono::Duration::hours(24);
        let scan = store::scan(
            std::slice::from_ref(&state.config.sessions.dir),
            Some(since),
            Detail::Brief,
        )?;
        let summary = summary::summarise(&scan.sessions, &state.cloud);
        let mut value = serde_json::to_value(summary).unwrap_or(Value::Null);
        value["skipped_files"] = Value::from(scan.skipped.len());
        Ok::<_, std::io::Error>(value)
    });
    // A folder on a hung network filesystem must not hold `/stats` (and its lock) for
    // ever: the answer gives up; the blocking thread ends when the read does.
    match tokio::time::timeout(READ_FOR_AT_MOST, work).await {
        Ok(Ok(Ok(value))) => value,
        Ok(Ok(Err(e))) => json!({"error": format!("cannot read the session logs: {e}")}),
        Ok(Err(e)) => json!({"error": format!("the summary failed: {e}")}),
        Err(_) => json!({"error": format!(
            "reading the session logs took longer than {} s", READ_FOR_AT_MOST.as_secs()
        )}),
    }
}

/// `GET /metrics`, with every backend endpoint's state read now.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let readings: Vec<EndpointReading> = state
        .backends
        .iter()
        .flat_map(|backend| {
            backend.pool.endpoints().iter().map(|endpoint| {
                let status = endpoint.status();
                EndpointReading {
                    backend: backend.id.to_string(),
                    endpoint: status.url,
                    up: match status.state {
                        "up" => Some(true),
                        "down" => Some(false),
                        _ => None,
                    },
                    in_flight: status.in_flight,
                    latency_seconds: status.latency_ms.map(|ms| ms as f64 / 1000.0),
                }
            })
        })
        .collect();
    state.metrics.endpoints(&readings);
    state.metrics.spend(&state.budgets.readings());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
