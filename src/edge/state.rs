//! `AppState`: everything a request needs, built once at start-up and shared by `Arc`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::Config;
use crate::prompts::PromptSet;
use crate::record::session::SessionSink;
use crate::routing::meta_rules::MetaRules;
use crate::upstream::backend::Upstream;

/// Shared, read-mostly state of the running router.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The current prompt set, read once per request so a reload can swap it whole.
    pub prompts: ArcSwap<PromptSet>,
    /// The local model that answers.
    pub primary: Upstream,
    /// The small model that labels requests.
    pub classifier: Upstream,
    /// xAI's Grok.
    pub xai: Upstream,
    /// Where finished session records go.
    pub sessions: SessionSink,
    /// The text rules that recognise client task prompts.
    pub meta_rules: MetaRules,
    /// Recent classifier decisions by input.
    pub classify_cache: crate::routing::cache::ClassifyCache,
    /// The virtual model name clients see.
    pub virtual_model: Arc<str>,
    /// `GET /v1/models`, serialised once: Open WebUI calls it constantly.
    pub models_body: Bytes,
    /// The client keys, when they are required.
    pub client_keys: crate::edge::client_keys::ClientKeys,
    /// Per-client-key request rate and open streams.
    pub key_limits: crate::edge::key_limits::KeyLimits,
    /// One permit per chat request being answered (`server.max_concurrent_requests`).
    pub capacity: Arc<tokio::sync::Semaphore>,
    /// The last 24 hours' summary for `GET /stats`, cached briefly.
    pub day_summary: crate::edge::stats::SummaryCache,
    /// Becomes `true` when shutdown's grace period is over.
    draining: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Builds the backends' clients and the cached model list.
    pub fn new(
        config: Config,
        prompts: PromptSet,
        meta_rules: MetaRules,
        sessions: SessionSink,
    ) -> Result<Self, StateError> {
        let backends = &config.backends;
        let primary = Upstream::new("primary", &backends.primary)?;
        let classifier = Upstream::new("classifier", &backends.classifier)?;
        let xai = Upstream::new("xai", &backends.xai)?;
        let models_body = models_body(&config);
        let sessions = sessions.with_health(crate::upstream::health::HealthBoard::new(
            config.health.failure_threshold,
        ));
        let client_keys = crate::edge::client_keys::ClientKeys::load(&config.server)
            .map_err(StateError::ClientKeys)?;
        let capacity = Arc::new(tokio::sync::Semaphore::new(
            config.server.max_concurrent_requests,
        ));
        let key_limit_set =
            config.server.key_requests_per_minute > 0 || config.server.key_max_streams > 0;
        if key_limit_set && !client_keys.enabled() {
            tracing::warn!(
                "server.key_requests_per_minute / key_max_streams are set but no client keys are: they apply to nobody"
            );
        }
        let key_limits = crate::edge::key_limits::KeyLimits::new(
            config.server.key_requests_per_minute,
            config.server.key_max_streams,
        );
        let classify_cache = crate::routing::cache::ClassifyCache::new(
            config.routing.cache_entries,
            std::time::Duration::from_secs(config.routing.cache_ttl_secs),
        );
        Ok(AppState {
            virtual_model: Arc::from(config.server.virtual_model.as_str()),
            config,
            prompts: ArcSwap::from_pointee(prompts),
            primary,
            classifier,
            xai,
            sessions,
            classify_cache,
            meta_rules,
            models_body,
            capacity,
            client_keys,
            key_limits,
            day_summary: crate::edge::stats::SummaryCache::default(),
            draining: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Tells every request still running to end now: streams send an in-band error and
    /// `[DONE]`, waiting calls answer 503.
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves once `drain` has been called (never, if it is not).
    pub fn drained(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.draining.subscribe();
        async move {
            if receiver.wait_for(|draining| *draining).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A backend's HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The client keys are configured but unusable.
    #[error("{0}")]
    ClientKeys(String),
}

fn models_body(config: &Config) -> Bytes {
    let created = chrono::Utc::now().timestamp();
    let mut ids = vec![config.server.virtual_model.clone()];
    let task_model = config.server.task_model.trim();
    if !task_model.is_empty() && task_model != config.server.virtual_model {
        ids.push(task_model.to_string());
    }
    let data: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": created, "owned_by": "ai-router"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    Bytes::from(body.to_string())
}
