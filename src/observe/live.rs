//! Counters since start-up for `GET /stats`: requests per route, outcomes, fallbacks
//! and requests in flight. Lock-free; updated as each session starts and ends.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::record::session::{Outcome, SessionRecord};

/// Routes as counted, in the order they are reported; "rejected" is a request that
/// never got a route (bad input).
const ROUTES: [&str; 5] = ["primary", "xai", "enrich", "meta", "rejected"];

/// The counters.
#[derive(Debug)]
pub struct LiveStats {
    started_at: String,
    routes: [AtomicU64; 5],
    ok: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    classification_fallbacks: AtomicU64,
    route_fallbacks: AtomicU64,
    in_flight: AtomicI64,
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            routes: Default::default(),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            classification_fallbacks: AtomicU64::new(0),
            route_fallbacks: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
        }
    }
}

impl LiveStats {
    /// A request has started.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request has ended with `record`.
    pub fn finished(&self, record: &SessionRecord) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let route = record.route.unwrap_or("rejected");
        let index = ROUTES
            .iter()
            .position(|r| *r == route)
            .unwrap_or(ROUTES.len() - 1);
        self.routes[index].fetch_add(1, Ordering::Relaxed);
        let outcome = match record.outcome {
            Outcome::Ok => &self.ok,
            Outcome::Error => &self.errors,
            Outcome::ClientDisconnected => &self.disconnects,
        };
        outcome.fetch_add(1, Ordering::Relaxed);
        if record.classification_fallback.is_some() {
            self.classification_fallbacks
                .fetch_add(1, Ordering::Relaxed);
        }
        if record.route_fallback.is_some() {
            self.route_fallbacks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let routes: serde_json::Map<String, Value> = ROUTES
            .iter()
            .zip(&self.routes)
            .map(|(name, count)| (name.to_string(), Value::from(get(count))))
            .collect();
        let total: u64 = self.routes.iter().map(get).sum();
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
