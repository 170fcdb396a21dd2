//! Whether each backend is up: background probes (`GET {base_url}/models` every
//! `health.probe_interval_secs`) and passive signals (calls that failed without an
//! answer, or with a 5xx) mark a backend down after `health.failure_threshold` failures
//! in a row, and up again on the next success. Requests never wait on a probe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::edge::state::AppState;

const BACKENDS: [&str; 3] = ["primary", "classifier", "xai"];

#[derive(Clone, Debug, Default)]
struct Health {
    /// `None` until the first probe or call.
    up: Option<bool>,
    failures_in_a_row: u32,
    last_error: Option<String>,
    since: Option<String>,
}

/// The health of every backend.
#[derive(Debug)]
pub struct HealthBoard {
    threshold: u32,
    backends: [Mutex<Health>; 3],
}

impl Default for HealthBoard {
    fn default() -> Self {
        Self::new(3)
    }
}

impl HealthBoard {
    /// A board that marks a backend down after `threshold` failures in a row.
    pub fn new(threshold: u32) -> Self {
        HealthBoard {
            threshold: threshold.max(1),
            backends: Default::default(),
        }
    }

    fn slot(&self, backend: &str) -> Option<&Mutex<Health>> {
        BACKENDS
            .iter()
            .position(|b| *b == backend)
            .map(|i| &self.backends[i])
    }

    /// A call or probe to `backend` succeeded.
    pub fn success(&self, backend: &str) {
        self.update(backend, |h| {
            h.failures_in_a_row = 0;
            Some(true)
        });
    }

    /// A call or probe to `backend` failed in a way that says it is unwell.
    pub fn failure(&self, backend: &str, error: &str) {
        let threshold = self.threshold;
        self.update(backend, |h| {
            h.failures_in_a_row = h.failures_in_a_row.saturating_add(1);
            h.last_error = Some(error.to_string());
            (h.failures_in_a_row >= threshold).then_some(false)
        });
    }

    /// Applies `change`, which says the new state (or `None`: no change).
    fn update(&self, backend: &str, change: impl FnOnce(&mut Health) -> Option<bool>) {
        let Some(Ok(mut health)) = self.slot(backend).map(Mutex::lock) else {
            return;
        };
        let Some(up) = change(&mut health) else {
            return;
        };
        if health.up != Some(up) {
            health.up = Some(up);
            health.since =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let error = health.last_error.clone().unwrap_or_default();
            if up {
                tracing::info!(backend, "backend is up");
            } else {
                tracing::warn!(backend, %error, "backend is down");
            }
        }
    }

    /// Whether `backend` is known to be down.
    pub fn is_down(&self, backend: &str) -> bool {
        self.slot(backend)
            .and_then(|m| m.lock().ok().map(|h| h.up == Some(false)))
            .unwrap_or(false)
    }

    /// The backends known to be down, for the session log.
    pub fn down(&self) -> Vec<&'static str> {
        BACKENDS.into_iter().filter(|b| self.is_down(b)).collect()
    }

    /// Each backend's state, for `/health/ready`: up, down or unknown, failures in a
    /// row, the last error and since when.
    pub fn snapshot(&self, backend: &str) -> Value {
        let health = self
            .slot(backend)
            .and_then(|m| m.lock().ok().map(|h| h.clone()))
            .unwrap_or_default();
        let state = match health.up {
            Some(true) => "up",
            Some(false) => "down",
            None => "unknown",
        };
        json!({
            "state": state,
            "failures_in_a_row": health.failures_in_a_row,
            "last_error": health.last_error,
            "since": health.since,
        })
    }

    /// 1 for up, 0 for down, for each backend that has been seen.
    pub fn gauges(&self) -> Vec<(&'static str, i64)> {
        BACKENDS
            .into_iter()
            .filter_map(|b| {
                let up = self.slot(b)?.lock().ok()?.up?;
                Some((b, i64::from(up)))
            })
            .collect()
    }
}

/// Probes every configured backend now and then, off the request path.
pub fn spawn_probes(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(state.config.health.probe_interval_secs);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let board = state.sessions.health();
            let probes =
                [&state.primary, &state.classifier, &state.xai].map(|upstream| async move {
                    if upstream.missing_key().is_some() {
                        return;
                    }
                    let wait = Duration::from_secs(5).min(upstream.timeout);
                    match upstream.get("/models", wait).await {
                        Ok(_) => board.success(upstream.name),
                        Err(e) => board.failure(upstream.name, &e.to_string()),
                    }
                });
            futures_util::future::join_all(probes).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_the_threshold_and_up_on_the_next_success() {
        let board = HealthBoard::new(2);
        assert_eq!(board.snapshot("primary")["state"], "unknown");
        board.failure("primary", "refused");
        assert!(!board.is_down("primary"), "one failure is not enough");
        assert_eq!(board.snapshot("primary")["state"], "unknown");
        board.failure("primary", "refused again");
        assert!(board.is_down("primary"));
        assert_eq!(board.down(), ["primary"]);
        assert_eq!(board.snapshot("primary")["last_error"], "refused again");
        board.success("primary");
        assert_eq!(board.snapshot("primary")["state"], "up");
        assert_eq!(board.gauges(), [("primary", 1)]);
    }
}
