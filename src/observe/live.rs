//! Counters since start-up for `GET /stats`: requests per route, outcomes, fallbacks
//! and requests in flight. Lock-free; updated as each session starts and ends.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::record::log::{Outcome, SessionRecord};
use crate::record::sink::Observer;

/// A request that never got a route (bad input, a refused key).
const REJECTED: &str = "rejected";

/// The counters.
#[derive(Debug)]
pub struct LiveStats {
    started_at: String,
    /// The route names in the order they are reported, `rejected` last.
    routes: Vec<(String, AtomicU64)>,
    ok: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    classification_fallbacks: AtomicU64,
    route_fallbacks: AtomicU64,
    in_flight: AtomicI64,
}

impl LiveStats {
    /// Counters for the routes named `routes` (the route table's names, in order).
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = Vec::new();
        for name in routes.into_iter().chain([REJECTED]) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        LiveStats {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            routes: names.into_iter().map(|n| (n, AtomicU64::new(0))).collect(),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            classification_fallbacks: AtomicU64::new(0),
            route_fallbacks: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
        }
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let routes: serde_json::Map<String, Value> = self
            .routes
            .iter()
            .map(|(name, count)| (name.clone(), Value::from(get(count))))
            .collect();
        let total: u64 = self.routes.iter().map(|(_, c)| get(c)).sum();
        json!({
            "started_at": self.started_at,
            "requests": total,
            "routes": routes,
            "outcomes": {"ok": get(&self.ok), "error": get(&self.errors), "client_disconnected": get(&self.disconnects)},
            "classification_fallbacks": get(&self.classification_fallbacks),
            "route_fallbacks": get(&self.route_fallbacks),
            "in_flight": self.in_flight.load(Ordering::Relaxed).max(0),
        })
    }
}

impl Observer for LiveStats {
    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self, record: &SessionRecord) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let decision = &record.decision;
        let route = decision.route.as_deref().unwrap_or(REJECTED);
        let counter = self
            .routes
            .iter()
            .find(|(name, _)| name == route)
            .or_else(|| self.routes.last())
            .map(|(_, count)| count);
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = match record.outcome {
            Outcome::Ok => &self.ok,
            Outcome::Error => &self.errors,
            Outcome::ClientDisconnected => &self.disconnects,
        };
        outcome.fetch_add(1, Ordering::Relaxed);
        if decision.classification_fallback.is_some() {
            self.classification_fallbacks
                .fetch_add(1, Ordering::Relaxed);
        }
        if decision.route_fallback.is_some() {
            self.route_fallbacks.fetch_add(1, Ordering::Relaxed);
        }
    }
}
