//! Prometheus metrics, one registry per router. Labels are low-cardinality only: route,
//! label, status class, outcome, backend, endpoint (each from the config), result.
//! Almost everything is read off the finished session record, so there is one place
//! where a request is counted.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::labels::*;
use super::spend::SpendMetrics;
use crate::names::Step;
use crate::record::budget::SpendReading;
use crate::record::log::SessionRecord;
use crate::record::sink::Observer;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Requests and backend calls: 5 ms … ~3 min.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// The router's own share of a request: 50 µs … ~1.6 s.
fn overhead() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the router exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histograms<RouteLabel>,
    ttft: Histograms<RouteLabel>,
    overhead: Histograms<RouteLabel>,
    classification: Histograms<ResultLabel>,
    confidence: Histogram,
    backend_duration: Histograms<BackendLabel>,
    backend_errors: Family<BackendErrorLabel, Counter>,
    in_flight: Gauge,
    backend_up: Family<BackendLabel, Gauge>,
    endpoint_up: Family<EndpointLabel, Gauge>,
    endpoint_in_flight: Family<EndpointLabel, Gauge>,
    endpoint_latency: Family<EndpointLabel, Gauge<f64, AtomicU64>>,
    session_writes: Family<ResultLabel, Counter>,
    prompt_reloads: Family<ResultLabel, Counter>,
    meta_suspects: Family<SuspectLabel, Counter>,
    sticky_raises: Counter,
    spend: SpendMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ai_router");
        let requests = Family::default();
        let duration: Histograms<RouteLabel> = Family::new_with_constructor(latency);
        let ttft: Histograms<RouteLabel> = Family::new_with_constructor(latency);
        let overhead: Histograms<RouteLabel> = Family::new_with_constructor(overhead);
        let classification: Histograms<ResultLabel> = Family::new_with_constructor(latency);
        // Tenths, each computed, not summed (0.1 + 0.2 prints as 0.30000000000000004):
        // enough to see where an unsure threshold would cut.
        let confidence = Histogram::new((1..=10).map(|tenth| f64::from(tenth) / 10.0));
        let backend_duration: Histograms<BackendLabel> = Family::new_with_constructor(latency);
        let backend_errors = Family::default();
        let in_flight = Gauge::default();
        let backend_up = Family::default();
        let endpoint_up = Family::default();
        let endpoint_in_flight = Family::default();
        let endpoint_latency = Family::default();
        let session_writes = Family::default();
        let prompt_reloads = Family::default();
        let meta_suspects = Family::default();
        let sticky_raises = Counter::default();
        registry.register(
            "requests",
            "Chat requests by route, label, status class and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Chat request time, end to end, by route",
            duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time to the first token of a stream, by route",
            ttft.clone(),
        );
        registry.register(
            "overhead_seconds",
            "Request time not spent waiting on backends, by route",
            overhead.clone(),
        );
        registry.register(
            "classification_duration_seconds",
            "Classification time by result (label, fallback, cached)",
            classification.clone(),
        );
        registry.register(
            "classification_confidence",
            "The classifier's probability for the label it gave (routing.logprobs)",
            confidence.clone(),
        );
        registry.register(
            "backend_request_duration_seconds",
            "Backend call time by backend",
            backend_duration.clone(),
        );
        registry.register(
            "backend_errors",
            "Failed backend calls by backend and kind",
            backend_errors.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Chat requests being answered now",
            in_flight.clone(),
        );
        registry.register(
            "backend_up",
            "1 when a backend has an endpoint up, 0 when all are down (probes and calls)",
            backend_up.clone(),
        );
        registry.register(
            "endpoint_up",
            "1 when a backend endpoint is up, 0 when ejected",
            endpoint_up.clone(),
        );
        registry.register(
            "endpoint_in_flight_requests",
            "Requests a backend endpoint is answering now",
            endpoint_in_flight.clone(),
        );
        registry.register(
            "endpoint_latency_seconds",
            "Running average of a backend endpoint's time to answer headers",
            endpoint_latency.clone(),
        );
        registry.register(
            "session_log_writes",
            "Session-log files written, by result: ok, error, or dropped (the writer stayed behind)",
            session_writes.clone(),
        );
        registry.register(
            "prompt_reloads",
            "Prompt-folder reloads, by result",
            prompt_reloads.clone(),
        );
        registry.register(
            "meta_suspects",
            "Requests that looked like a client's task but matched no META rule (a new template?), by suspect table",
            meta_suspects.clone(),
        );
        registry.register(
            "sticky_raises",
            "Follow-ups raised to their conversation's highest route (routing.sticky_secs)",
            sticky_raises.clone(),
        );
        let spend = SpendMetrics::register(&mut registry);
        Metrics {
            registry,
            requests,
            duration,
            ttft,
            overhead,
            classification,
            confidence,
            backend_duration,
            backend_errors,
            in_flight,
            backend_up,
            endpoint_up,
            endpoint_in_flight,
            endpoint_latency,
            session_writes,
            prompt_reloads,
            meta_suspects,
            sticky_raises,
            spend,
        }
    }
}

impl Observer for Metrics {
    fn started(&self) {
        self.in_flight.inc();
    }

    /// Counts the request and its backend calls from its record.
    fn finished(&self, record: &SessionRecord) {
        self.in_flight.dec();
        let decision = &record.decision;
        let route = decision
            .route
            .as_ref()
            .map_or_else(|| "rejected".to_string(), |r| r.to_string());
        let labels = RequestLabels {
            route: route.clone(),
            class: decision
                .classification
                .as_ref()
                .map_or_else(|| "none".to_string(), |l| l.to_string()),
            status: format!("{}xx", record.http_status / 100),
            outcome: record.outcome.as_str(),
        };
        self.requests.get_or_create(&labels).inc();
        let route = RouteLabel { route };
        self.duration
            .get_or_create(&route)
            .observe(seconds(record.total_ms));
        let mut backend_ms = 0;
        for step in &record.steps {
            backend_ms += step.duration_ms;
            let backend = BackendLabel {
                backend: step.provider.to_string(),
            };
            self.backend_duration
                .get_or_create(&backend)
                .observe(seconds(step.duration_ms));
            if step.error.is_some() {
                // A failed step with a 2xx status was answered, then went wrong: cut
                // off, stalled, too large or unreadable.
                let kind = match step.status {
                    None => "no_response".to_string(),
                    Some(200..=299) => "bad_answer".to_string(),
                    Some(s) => format!("{}xx", s / 100),
                };
                self.backend_errors
                    .get_or_create(&BackendErrorLabel {
                        backend: backend.backend,
                        kind,
                    })
                    .inc();
            }
            if step.step == Step::Answer
                && let Some(ttft) = step.ttft_ms
            {
                self.ttft.get_or_create(&route).observe(seconds(ttft));
            }
        }
        if record.steps.iter().any(|s| s.step == Step::Classify) || decision.classification_cached {
            let result = match (
                decision.classification_cached,
                &decision.classification_fallback,
            ) {
                (true, _) => "cached",
                (false, Some(_)) => "fallback",
                (false, None) => "label",
            };
            self.classification
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .observe(seconds(decision.classification_ms));
            if decision.sticky.is_some() {
                self.sticky_raises.inc();
            }
            if let Some(confidence) = &decision.classification_confidence {
                self.confidence.observe(confidence.p);
            }
        }
        if let Some(why) = &decision.meta_suspect {
            let suspect = why.strip_prefix("suspect ").unwrap_or(why).to_string();
            self.meta_suspects
                .get_or_create(&SuspectLabel { suspect })
                .inc();
        }
        let own_ms = record.total_ms.saturating_sub(backend_ms);
        self.overhead.get_or_create(&route).observe(seconds(own_ms));
    }

    fn written(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.session_writes
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    fn dropped(&self) {
        self.session_writes
            .get_or_create(&ResultLabel {
                result: "dropped".into(),
            })
            .inc();
    }
}

impl Metrics {
    /// A chat request was refused for a missing or wrong client key. It has no session
    /// record, but a key being guessed must show on the dashboard.
    pub fn unauthorized(&self) {
        self.requests
            .get_or_create(&RequestLabels {
                route: "rejected".into(),
                class: "none".into(),
                status: "4xx".into(),
                outcome: "unauthorized",
            })
            .inc();
    }

    /// The prompt folder was reloaded: `changed`, or `unchanged`.
    pub fn prompt_reload(&self, changed: bool) {
        let result = if changed { "changed" } else { "unchanged" };
        self.prompt_reloads
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// Sets the endpoint gauges, and `backend_up` for each backend whose state is
    /// known: 1 while any endpoint is up, 0 once every endpoint is down.
    pub fn endpoints(&self, readings: &[EndpointReading]) {
        let mut backends: std::collections::BTreeMap<&str, Vec<Option<bool>>> = Default::default();
        for reading in readings {
            let label = EndpointLabel {
                backend: reading.backend.clone(),
                endpoint: reading.endpoint.clone(),
            };
            if let Some(up) = reading.up {
                self.endpoint_up.get_or_create(&label).set(i64::from(up));
            }
            self.endpoint_in_flight
                .get_or_create(&label)
                .set(i64::from(reading.in_flight));
            if let Some(latency) = reading.latency_seconds {
                self.endpoint_latency.get_or_create(&label).set(latency);
            }
            backends
                .entry(&reading.backend)
                .or_default()
                .push(reading.up);
        }
        for (backend, states) in backends {
            let up = if states.contains(&Some(true)) {
                Some(true)
            } else if states.iter().all(|s| *s == Some(false)) {
                Some(false)
            } else {
                None
            };
            if let Some(up) = up {
                let label = BackendLabel {
                    backend: backend.to_string(),
                };
                self.backend_up.get_or_create(&label).set(i64::from(up));
            }
        }
    }

    /// Sets the cloud spend and budget gauges.
    pub fn spend(&self, readings: &[SpendReading]) {
        self.spend.set(readings);
    }

    /// Everything in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
