//! The router's settings: serde structs with defaults, and `load()`, which layers
//! built-in defaults < the TOML file < the environment, then validates.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod routing;
mod sections;

pub use routing::{FailoverConfig, KeywordRule, Label, MetaConfig, Price, RoutingConfig};
pub use sections::{
    BackendConfig, Backends, HealthConfig, LogFormat, MissingKey, ServerConfig, SessionsConfig,
    XaiConfig,
};

/// Everything the router can be told. Every key is optional in the file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the listener and what clients see.
    pub server: ServerConfig,
    /// `[backends.*]`: where the models live.
    pub backends: Backends,
    /// `[xai]`: rules for the cloud backend.
    pub xai: XaiConfig,
    /// `[sessions]`: the per-request session logs.
    pub sessions: SessionsConfig,
    /// `[routing]`: how requests are classified.
    pub routing: RoutingConfig,
    /// `[meta]`: how client task prompts are recognised and answered.
    pub meta: MetaConfig,
    /// `[health]`: background probes and when a backend counts as down.
    pub health: HealthConfig,
    /// `[failover]`: the other backend answers when the chosen one fails early.
    pub failover: FailoverConfig,
    /// `[prices."<model>"]`: USD per million tokens, for cost estimates.
    pub prices: std::collections::BTreeMap<String, Price>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            backends: Backends::default(),
            xai: XaiConfig::default(),
            sessions: SessionsConfig::default(),
            routing: RoutingConfig::default(),
            meta: MetaConfig::default(),
            failover: FailoverConfig::default(),
            health: HealthConfig::default(),
            prices: routing::default_prices(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist.
    #[error("config file {0} not found (pass --config FILE)")]
    Missing(PathBuf),
    /// A key is unknown or has the wrong type: the message names the key and its source.
    #[error("config error: {0}")]
    Parse(String),
    /// A value is the right type but unusable.
    #[error("config error: `{key}` {problem}")]
    Invalid { key: String, problem: String },
}

/// Loads `path`, then the environment, over the built-in defaults, and validates.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::Missing(path.to_path_buf()));
    }
    let config: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file_exact(path))
        .merge(seed_env()?)
        .merge(overrides())
        .extract()
        .map_err(|e| ConfigError::Parse(describe(e)))?;
    validate(&config)?;
    Ok(config)
}

/// Names each bad key as the admin wrote it: the TOML key and its file, or the exact
/// environment variable (figment's own message says `default.server.listen`).
fn describe(error: figment::Error) -> String {
    let problems: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let place = match &e.metadata {
                Some(meta) if meta.name.contains("AI_ROUTER_") => {
                    let name: Vec<String> = e.path.iter().map(|p| p.to_uppercase()).collect();
                    format!("environment variable AI_ROUTER_{}", name.join("__"))
                }
                Some(meta) => match &meta.source {
                    Some(figment::Source::File(path)) => path.display().to_string(),
                    _ => meta.name.to_string(),
                },
                None => "the configuration".into(),
            };
            format!("`{key}` in {place}: {}", e.kind)
        })
        .collect();
    problems.join("; ")
}

/// `AI_ROUTER_<SECTION>__<KEY>` variables. Only names with a `__` are settings: every
/// key lives in a section, and scripts keep their own `AI_ROUTER_*` names (a cache
/// folder, a test URL) that must not be mistaken for config.
fn overrides() -> Env {
    Env::prefixed("AI_ROUTER_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

/// The seed deployment's variable names, which admins' `.env` files still use.
/// `AI_ROUTER_*` is merged after these, so the longer names win.
fn seed_env() -> Result<Figment, ConfigError> {
    let mut seed = Figment::new();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(model) = var("XAI_MODEL") {
        seed = seed.merge(Serialized::default("backends.xai.model", model));
    }
    if let Some(name) = var("VIRTUAL_MODEL") {
        seed = seed.merge(Serialized::default("server.virtual_model", name));
    }
    if let Some(tools) = var("XAI_SEARCH_TOOLS") {
        let tools: Vec<String> = tools
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        seed = seed.merge(Serialized::default("xai.search_tools", tools));
    }
    if let Some(floor) = var("XAI_MIN_MAX_TOKENS") {
        let floor: u32 = floor.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "XAI_MIN_MAX_TOKENS".into(),
            problem: format!("must be a whole number, not {floor:?}"),
        })?;
        seed = seed.merge(Serialized::default("xai.min_max_tokens", floor));
    }
    Ok(seed)
}

/// Checks what types alone cannot: URLs, non-empty names, non-zero limits.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let invalid = |key: &str, problem: &str| {
        Err(ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        })
    };
    if config.server.virtual_model.trim().is_empty() {
        return invalid("server.virtual_model", "must not be empty");
    }
    if config.server.sse_keepalive_secs == 0 {
        return invalid("server.sse_keepalive_secs", "must be at least 1");
    }
    if config.health.probe_interval_secs == 0 {
        return invalid("health.probe_interval_secs", "must be at least 1");
    }
    if config.server.max_concurrent_requests == 0 {
        return invalid("server.max_concurrent_requests", "must be at least 1");
    }
    if config.server.max_body_bytes == 0 {
        return invalid("server.max_body_bytes", "must be greater than 0");
    }
    if config.server.max_header_bytes < 1024 {
        return invalid("server.max_header_bytes", "must be at least 1024");
    }
    if config.server.header_read_timeout_secs == 0 {
        return invalid("server.header_read_timeout_secs", "must be at least 1");
    }
    if config.server.body_read_timeout_secs == 0 {
        return invalid("server.body_read_timeout_secs", "must be at least 1");
    }
    for (name, backend) in config.backends.iter() {
        let key = |field: &str| format!("backends.{name}.{field}");
        match reqwest::Url::parse(&backend.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return invalid(&key("base_url"), "must be an http:// or https:// URL"),
        }
        if backend.model.trim().is_empty() {
            return invalid(&key("model"), "must not be empty");
        }
        if backend.connect_timeout_secs == 0
            || backend.timeout_secs == 0
            || backend.response_timeout_secs == 0
        {
            return invalid(&key("*_timeout_secs"), "timeouts must be at least 1 second");
        }
    }
    if config.xai.enrich_timeout_secs == 0 {
        return invalid("xai.enrich_timeout_secs", "must be at least 1");
    }
    if config.routing.max_input_chars < 200 {
        return invalid("routing.max_input_chars", "must be at least 200");
    }
    if config
        .meta
        .headers
        .iter()
        .any(|h| axum::http::HeaderName::try_from(h.as_str()).is_err())
    {
        return invalid("meta.headers", "must be valid HTTP header names");
    }
    if config.sessions.max_files == 0 {
        return invalid("sessions.max_files", "must be at least 1");
    }
    if config.sessions.max_age_days == 0 {
        return invalid("sessions.max_age_days", "must be at least 1");
    }
    Ok(())
}

impl Backends {
    /// The backends with their config names, in a fixed order.
    pub fn iter(&self) -> [(&'static str, &BackendConfig); 3] {
        [
            ("classifier", &self.classifier),
            ("primary", &self.primary),
            ("xai", &self.xai),
        ]
    }
}
