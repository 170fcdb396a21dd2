//! A backend's endpoints (one per base URL) and how a request picks one: the healthy
//! endpoint with the fewest requests in flight, ties broken at random. An endpoint that
//! fails `health.failure_threshold` times in a row is ejected; while every endpoint is
//! ejected, one request at a time may try one (so a restarted server is used at once),
//! and the rest fail fast. Probes and real calls bring an endpoint back. Each ejection is
//! announced, so calls still waiting on the endpoint can move elsewhere (`abandon`).

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::names::BackendId;

/// The API paths the router calls on a backend, parsed once per endpoint: reqwest would
/// parse (and IDNA-check) a URL string on every call.
pub(crate) const PATHS: [&str; 3] = ["/chat/completions", "/responses", "/models"];

/// Weight of the newest latency in the running average.
const LATENCY_WEIGHT: f64 = 0.2;

/// One base URL of a backend, with its health and load.
#[derive(Debug)]
pub struct Endpoint {
    /// The base URL as configured, without a trailing slash.
    base: String,
    /// The base URL as it may be shown: no user name or password.
    pub display: String,
    urls: Vec<(&'static str, reqwest::Url)>,
    in_flight: AtomicU32,
    /// `UNKNOWN`, `UP` or `DOWN`, readable without the lock on every request.
    state: AtomicU8,
    health: Mutex<Health>,
    /// How many times it was ejected: a call waiting on it watches for the next one.
    ejections: tokio::sync::watch::Sender<u64>,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

#[derive(Clone, Debug, Default)]
struct Health {
    failures_in_a_row: u32,
    last_error: Option<String>,
    since: Option<String>,
    /// A request is trying this ejected endpoint now.
    trial: bool,
    latency_ms: Option<f64>,
}

/// What `/health/ready` and `/metrics` show of an endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointStatus {
    /// The base URL (without credentials).
    pub url: String,
    /// `up`, `down` (ejected) or `unknown` (not seen yet).
    pub state: &'static str,
    /// Requests being answered by it now.
    pub in_flight: u32,
    /// Running average of the time to its answers' headers, in milliseconds.
    pub latency_ms: Option<u64>,
    pub failures_in_a_row: u32,
    pub last_error: Option<String>,
    /// When it last changed state.
    pub since: Option<String>,
}

impl Endpoint {
    fn new(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_string();
        let urls = PATHS
            .iter()
            .filter_map(|path| Some((*path, reqwest::Url::parse(&format!("{base}{path}")).ok()?)))
            .collect();
        Endpoint {
            display: crate::secret::url_without_credentials(&base),
            base,
            urls,
            in_flight: AtomicU32::new(0),
            state: AtomicU8::new(UNKNOWN),
            health: Mutex::default(),
            ejections: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The URL of an API path such as `/chat/completions`.
    pub fn url(&self, path: &str) -> Option<reqwest::Url> {
        match self.urls.iter().find(|(p, _)| *p == path) {
            Some((_, url)) => Some(url.clone()),
            None => reqwest::Url::parse(&format!("{}{path}", self.base)).ok(),
        }
    }

    /// The password in its URL, if it has one.
    pub fn password(&self) -> Option<crate::secret::Secret> {
        crate::secret::url_password(&self.base)
    }

    /// Whether it is ejected.
    pub fn is_down(&self) -> bool {
        self.state.load(Ordering::Relaxed) == DOWN
    }

    /// It answered (a call or a probe): it is up, and `latency` joins its average.
    pub fn success(&self, backend: &BackendId, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        self.change(backend, |h| {
            h.failures_in_a_row = 0;
            h.latency_ms = Some(match h.latency_ms {
                Some(average) => average + LATENCY_WEIGHT * (ms - average),
                None => ms,
            });
            Some(UP)
        });
    }

    /// It failed in a way that says it is unwell (refused, timed out, 5xx); the
    /// threshold-th failure in a row ejects it.
    pub fn failure(&self, backend: &BackendId, error: &str, threshold: u32) {
        self.change(backend, |h| {
            h.failures_in_a_row = h.failures_in_a_row.saturating_add(1);
            h.last_error = Some(error.to_string());
            (h.failures_in_a_row >= threshold).then_some(DOWN)
        });
    }

    /// Applies `change`, which says the new state (or `None`: no change).
    fn change(&self, backend: &BackendId, change: impl FnOnce(&mut Health) -> Option<u8>) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = change(&mut health) else {
            return;
        };
        if self.state.swap(state, Ordering::Relaxed) != state {
            health.since =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let endpoint = self.display.as_str();
            if state == UP {
                tracing::info!(%backend, endpoint, "backend endpoint is up");
            } else {
                let error = health.last_error.as_deref().unwrap_or("");
                tracing::warn!(%backend, endpoint, error, "backend endpoint is down");
                self.ejections.send_modify(|n| *n += 1);
            }
        }
    }

    /// Its state for reports.
    pub fn status(&self) -> EndpointStatus {
        let health = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        EndpointStatus {
            url: self.display.clone(),
            state: match self.state.load(Ordering::Relaxed) {
                UP => "up",
                DOWN => "down",
                _ => "unknown",
            },
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency_ms: health.latency_ms.map(|ms| ms.round() as u64),
            failures_in_a_row: health.failures_in_a_row,
            last_error: health.last_error,
            since: health.since,
        }
    }
}

/// A backend's endpoints.
#[derive(Debug)]
pub struct Pool {
    endpoints: Vec<Arc<Endpoint>>,
}

/// A request's hold on an endpoint: counted in its in-flight number until dropped (for
/// a stream, when the stream ends).
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    index: usize,
    trial: bool,
}

impl Pool {
    /// A pool of the endpoints at `urls`.
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        Pool {
            endpoints: urls
                .into_iter()
                .map(|u| Arc::new(Endpoint::new(u)))
                .collect(),
        }
    }

    /// The endpoints, in configured order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Takes the endpoint for the next attempt, leaving out those in `tried`: the healthy
    /// (or not yet seen) one with the fewest requests in flight, ties at random; when
    /// every one left is ejected, one that no other request is trying now. `None`: every
    /// endpoint was tried, or is ejected and being tried by another request.
    pub fn pick(&self, tried: &[usize]) -> Option<Lease> {
        // One endpoint (the usual backend): nothing to choose between.
        if let [only] = self.endpoints.as_slice()
            && tried.is_empty()
            && !only.is_down()
        {
            return Some(self.lease(0, false));
        }
        let left = || {
            self.endpoints
                .iter()
                .enumerate()
                .filter(|(i, _)| !tried.contains(i))
        };
        // One reading of each count: they change under us as other requests come and go.
        let healthy: Vec<(usize, u32)> = left()
            .filter(|(_, e)| !e.is_down())
            .map(|(i, e)| (i, e.in_flight.load(Ordering::Relaxed)))
            .collect();
        if let Some(fewest) = healthy.iter().map(|(_, n)| *n).min() {
            let ties: Vec<usize> = healthy
                .iter()
                .filter(|(_, n)| *n == fewest)
                .map(|(i, _)| *i)
                .collect();
            let index = ties[fastrand::usize(..ties.len())];
            return Some(self.lease(index, false));
        }
        let mut ejected: Vec<usize> = left().map(|(i, _)| i).collect();
        fastrand::shuffle(&mut ejected);
        ejected.into_iter().find_map(|index| {
            let endpoint = &self.endpoints[index];
            let mut health = endpoint
                .health
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if health.trial {
                return None;
            }
            health.trial = true;
            drop(health);
            Some(self.lease(index, true))
        })
    }

    fn lease(&self, index: usize, trial: bool) -> Lease {
        let endpoint = self.endpoints[index].clone();
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease {
            endpoint,
            index,
            trial,
        }
    }

    /// Whether an endpoint other than `index` and those in `tried` is healthy (or not
    /// yet seen): somewhere a call given up on `index` could go at once.
    pub fn has_other_healthy(&self, index: usize, tried: &[usize]) -> bool {
        self.endpoints
            .iter()
            .enumerate()
            .any(|(i, e)| i != index && !tried.contains(&i) && !e.is_down())
    }

    /// Whether every endpoint is ejected.
    pub fn is_down(&self) -> bool {
        self.endpoints.iter().all(|e| e.is_down())
    }

    /// How many endpoints the pool has.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the pool has no endpoint (never, once the config is validated).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

impl Lease {
    /// The endpoint held.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The endpoint held, to keep beyond the lease.
    pub fn shared(&self) -> Arc<Endpoint> {
        self.endpoint.clone()
    }

    /// Its place in the pool.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A watch that changes when the endpoint is next ejected; at once when it was
    /// ejected since it was picked. A trial of an ejected endpoint watches for the next
    /// ejection only: it was picked knowing.
    pub fn ejections(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut ejections = self.endpoint.ejections.subscribe();
        if !self.trial && self.endpoint.is_down() {
            ejections.mark_changed();
        }
        ejections
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.trial {
            self.endpoint
                .health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .trial = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> BackendId {
        BackendId::from("primary")
    }

    #[test]
    fn the_endpoint_with_fewest_in_flight_is_picked() {
        let pool = Pool::new(["http://a/v1", "http://b/v1"]);
        let first = pool.pick(&[]).unwrap();
        let second = pool.pick(&[]).unwrap();
        assert_ne!(
            first.index(),
            second.index(),
            "the busy one was picked again"
        );
        drop(first);
        let third = pool.pick(&[]).unwrap();
        assert_ne!(third.index(), second.index());
        assert_eq!(pool.endpoints()[second.index()].status().in_flight, 1);
    }

    #[test]
    fn ties_are_broken_at_random() {
        let pool = Pool::new(["http://a/v1", "http://b/v1"]);
        let picks: std::collections::HashSet<usize> =
            (0..64).map(|_| pool.pick(&[]).unwrap().index()).collect();
        assert_eq!(picks.len(), 2, "always the same endpoint");
    }

    #[test]
    fn an_ejected_endpoint_gets_one_trial_at_a_time_and_no_traffic_while_another_is_up() {
        let pool = Pool::new(["http://a/v1", "http://b/v1"]);
        let a = &pool.endpoints()[0];
        a.failure(&id(), "refused", 2);
        assert!(!a.is_down(), "one failure is not enough");
        a.failure(&id(), "refused", 2);
        assert!(a.is_down());
        for _ in 0..16 {
            assert_eq!(pool.pick(&[]).unwrap().index(), 1);
        }
        assert!(pool.pick(&[1]).is_some_and(|l| l.index() == 0), "a trial");
        let b = &pool.endpoints()[1];
        b.failure(&id(), "refused", 1);
        assert!(pool.is_down());
        let trial = pool.pick(&[]).unwrap();
        let other = pool.pick(&[]).unwrap();
        assert_ne!(trial.index(), other.index());
        assert!(pool.pick(&[]).is_none(), "both are being tried");
        drop(trial);
        assert!(pool.pick(&[]).is_some(), "the trial ended");
        a.success(&id(), Duration::from_millis(10));
        assert_eq!(a.status().state, "up");
        assert_eq!(a.status().latency_ms, Some(10));
    }

    #[test]
    fn credentials_never_show() {
        let endpoint = Endpoint::new("https://user:s3cret@gpu1:8000/v1/");
        assert_eq!(endpoint.display, "https://gpu1:8000/v1");
        assert!(endpoint.url("/models").unwrap().as_str().contains("s3cret"));
    }
}
