//! Probes: `GET {endpoint}/models` on every endpoint of every backend with its key, in the
//! background every `health.probe_interval_secs` (so an ejected endpoint comes back
//! without a request paying for it) and for `/health/ready` (in rounds it shares, see
//! `readiness`). Requests never wait on a probe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::pool::{Endpoint, EndpointStatus};
use super::{Backend, Backends};
use crate::record::session::millis;

/// Longest a probe waits for one endpoint.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes every endpoint now and then, off the request path.
pub fn spawn(backends: Arc<Backends>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let probes = backends
                .iter()
                .filter(|backend| backend.missing_key().is_none())
                .flat_map(|backend| {
                    backend
                        .pool
                        .endpoints()
                        .iter()
                        .map(move |endpoint| probe(backend, endpoint))
                });
            futures_util::future::join_all(probes).await;
        }
    })
}

/// One probe of one endpoint: its health learns the result.
async fn probe(backend: &Backend, endpoint: &Endpoint) -> Probe {
    let started = Instant::now();
    let wait = PROBE_TIMEOUT.min(backend.timeout);
    let result = backend.get(endpoint, "/models", wait).await;
    let latency = started.elapsed();
    match result {
        Ok(_) => {
            endpoint.success(&backend.id, latency);
            Probe {
                status: "up",
                latency_ms: millis(latency),
                error: None,
            }
        }
        Err(error) => {
            let error = error.to_string();
            endpoint.failure(&backend.id, &error, backend.failure_threshold);
            Probe {
                status: "down",
                latency_ms: millis(latency),
                error: Some(error),
            }
        }
    }
}

/// What a probe of one endpoint found.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// `up` or `down`.
    pub status: &'static str,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One endpoint in `/health/ready`: what the probe found now, and what probes and real
/// calls have seen (`watch`).
#[derive(Clone, Debug, Serialize)]
pub struct EndpointReport {
    pub url: String,
    pub probe: Probe,
    pub watch: EndpointStatus,
}

/// One backend in `/health/ready`.
#[derive(Clone, Debug, Serialize)]
pub struct BackendReport {
    /// `up` (an endpoint answered), `down`, or `unconfigured` (no key).
    pub status: &'static str,
    /// The first endpoint's URL (all of them are under `endpoints`).
    pub url: String,
    pub model: String,
    /// The fastest answering endpoint's probe time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What probes and real calls have seen of the backend as a whole: `up` while any
    /// endpoint is, `down` when all are ejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Watch>,
    /// Endpoints up now, of all.
    pub endpoints_up: usize,
    pub endpoints: Vec<EndpointReport>,
}

/// The backend-wide view of its endpoints' health.
#[derive(Clone, Debug, Serialize)]
pub struct Watch {
    pub state: &'static str,
    /// The fewest failures in a row of any endpoint.
    pub failures_in_a_row: u32,
    pub last_error: Option<String>,
    pub since: Option<String>,
}

impl Watch {
    fn of(endpoints: &[EndpointStatus]) -> Option<Watch> {
        let state = if endpoints.iter().any(|e| e.state == "up") {
            "up"
        } else if !endpoints.is_empty() && endpoints.iter().all(|e| e.state == "down") {
            "down"
        } else {
            "unknown"
        };
        // A down endpoint's error says most; else the last one any endpoint had.
        let last_error = endpoints
            .iter()
            .filter(|e| e.state == "down")
            .chain(endpoints)
            .find_map(|e| e.last_error.clone());
        Some(Watch {
            state,
            failures_in_a_row: endpoints.iter().map(|e| e.failures_in_a_row).min()?,
            last_error,
            // The latest change of any endpoint (RFC 3339 times sort as text).
            since: endpoints.iter().filter_map(|e| e.since.clone()).max(),
        })
    }
}

/// Probes every endpoint of `backend` at once, in the pool's order; none when it has no
/// key (it would only be refused).
pub async fn endpoints(backend: &Backend) -> Vec<Probe> {
    if backend.missing_key().is_some() {
        return Vec::new();
    }
    let endpoints = backend.pool.endpoints();
    futures_util::future::join_all(endpoints.iter().map(|e| probe(backend, e))).await
}

/// The report on `backend`: what `probes` (from `endpoints`) found, and what probes and
/// real calls have seen until now.
pub fn report(backend: &Backend, probes: &[Probe]) -> BackendReport {
    let endpoints = backend.pool.endpoints();
    let url = endpoints
        .first()
        .map_or_else(String::new, |e| e.display.clone());
    let model = backend.model.clone();
    if let Some(variable) = backend.missing_key() {
        return BackendReport {
            status: "unconfigured",
            url,
            model,
            latency_ms: None,
            error: Some(format!("no API key: {variable} is not set")),
            watch: None,
            endpoints_up: 0,
            endpoints: Vec::new(),
        };
    }
    let reports: Vec<EndpointReport> = endpoints
        .iter()
        .zip(probes)
        .map(|(endpoint, probe)| EndpointReport {
            url: endpoint.display.clone(),
            probe: probe.clone(),
            watch: endpoint.status(),
        })
        .collect();
    let up: Vec<&EndpointReport> = reports.iter().filter(|r| r.probe.status == "up").collect();
    BackendReport {
        status: if up.is_empty() { "down" } else { "up" },
        url,
        model,
        latency_ms: up
            .iter()
            .map(|r| r.probe.latency_ms)
            .min()
            .or_else(|| reports.iter().map(|r| r.probe.latency_ms).max()),
        // The backend's error when none answered; each endpoint's is in `endpoints`.
        error: up
            .is_empty()
            .then(|| reports.iter().find_map(|r| r.probe.error.clone()))
            .flatten(),
        watch: Watch::of(&reports.iter().map(|r| r.watch.clone()).collect::<Vec<_>>()),
        endpoints_up: up.len(),
        endpoints: reports,
    }
}
