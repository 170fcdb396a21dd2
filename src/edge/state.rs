//! `AppState`: what the HTTP handlers share, built once at start-up (`app::App::build`)
//! and shared by `Arc`. Handlers hand the layers below only the part they need.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::Config;
use crate::observe::live::LiveStats;
use crate::observe::metrics::Metrics;
use crate::observe::recent::Recent;
use crate::prompts::PromptSet;
use crate::proxy::Proxy;
use crate::record::budget::Budgets;
use crate::record::sink::SessionSink;
use crate::record::summary::Cloud;
use crate::routing::Routing;
use crate::upstream::Backends;
use crate::upstream::readiness::Readiness;

use super::client_keys::ClientKeys;
use super::dashboard::Dashboard;
use super::key_limits::KeyLimits;
use super::stats::SummaryCache;

/// Shared, read-mostly state of the running router.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The current prompt set, read once per request so a reload can swap it whole.
    pub prompts: Arc<ArcSwap<PromptSet>>,
    /// Every backend and its endpoints.
    pub backends: Arc<Backends>,
    /// META detection, the classifier and the route table.
    pub routing: Routing,
    /// Runs decisions.
    pub proxy: Arc<Proxy>,
    /// Where finished session records go.
    pub sessions: SessionSink,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Counters since start-up.
    pub live: Arc<LiveStats>,
    /// `GET /v1/models`, serialised once: Open WebUI calls it constantly.
    pub models_body: Bytes,
    /// The client keys, when they are required.
    pub client_keys: ClientKeys,
    /// Per-client-key request rate and open streams.
    pub key_limits: KeyLimits,
    /// One permit per chat request being answered (`server.max_concurrent_requests`).
    pub capacity: Arc<tokio::sync::Semaphore>,
    /// The last 24 hours' summary for `GET /stats`, cached briefly.
    pub day_summary: SummaryCache,
    /// Which backends cost money, for `/stats`.
    pub cloud: Cloud,
    /// The cloud budgets and what this UTC day and month have spent.
    pub budgets: Arc<Budgets>,
    /// `/health/ready`'s probe rounds, shared by callers close in time.
    pub readiness: Readiness,
    /// The last minutes of requests, for the dashboard's overview.
    pub recent: Arc<Recent>,
    /// The dashboard's admin key and its bounds.
    pub dashboard: Dashboard,
}

/// The parts `AppState` is made of that are built before it.
#[derive(Debug)]
pub struct Parts {
    pub config: Config,
    pub prompts: PromptSet,
    pub backends: Arc<Backends>,
    pub routing: Routing,
    pub sessions: SessionSink,
    pub metrics: Arc<Metrics>,
    pub live: Arc<LiveStats>,
    pub budgets: Arc<Budgets>,
    pub recent: Arc<Recent>,
}

impl AppState {
    /// The state for `parts`: the proxy, client keys and limits, the model list.
    pub fn new(parts: Parts) -> Result<Self, StateError> {
        let Parts {
            config,
            prompts,
            backends,
            routing,
            sessions,
            metrics,
            live,
            budgets,
            recent,
        } = parts;
        let client_keys = ClientKeys::load(&config.server).map_err(StateError::ClientKeys)?;
        let server = &config.server;
        let key_limit_set = server.key_requests_per_minute > 0 || server.key_max_streams > 0;
        if key_limit_set && !client_keys.enabled() {
            tracing::warn!(
                "server.key_requests_per_minute / key_max_streams are set but no client keys are: they apply to nobody"
            );
        }
        let dashboard =
            Dashboard::new(&config.dashboard, &client_keys).map_err(StateError::Dashboard)?;
        let key_limits = KeyLimits::new(server.key_requests_per_minute, server.key_max_streams);
        let proxy = Arc::new(Proxy::new(
            &config,
            backends.clone(),
            routing.table.clone(),
            budgets.clone(),
        ));
        Ok(AppState {
            models_body: models_body(&config),
            capacity: Arc::new(tokio::sync::Semaphore::new(server.max_concurrent_requests)),
            cloud: Cloud::of(&config),
            config,
            prompts: Arc::new(ArcSwap::from_pointee(prompts)),
            backends,
            routing,
            proxy,
            sessions,
            metrics,
            live,
            client_keys,
            key_limits,
            budgets,
            day_summary: SummaryCache::default(),
            readiness: Readiness::default(),
            recent,
            dashboard,
        })
    }

    /// Shutdown has begun: `/health/ready` answers 503 `draining` from now on, while
    /// the requests running finish.
    pub fn begin_draining(&self) {
        self.proxy.drain.begin();
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.proxy.drain.has_begun()
    }

    /// Tells every request still running to end now: streams send an in-band error and
    /// `[DONE]`, waiting calls answer 503.
    pub fn drain(&self) {
        self.proxy.drain.drain();
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The client keys are configured but unusable.
    #[error("{0}")]
    ClientKeys(String),
    /// The dashboard's admin key is configured but unusable.
    #[error("{0}")]
    Dashboard(String),
}

fn models_body(config: &Config) -> Bytes {
    let created = chrono::Utc::now().timestamp();
    let mut ids = vec![config.server.virtual_model.clone()];
    let task_model = config.server.task_model.trim();
    if !task_model.is_empty() && task_model != config.server.virtual_model {
        ids.push(task_model.to_string());
    }
    // After the automatic one, each route a client may choose in its model menu.
    if config.server.expose_routes {
        ids.extend(
            config
                .routes
                .values()
                .filter(|route| !route.expose_as.is_empty())
                .map(|route| route.expose_as.clone()),
        );
    }
    let data: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": created, "owned_by": "ai-router"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    Bytes::from(body.to_string())
}
