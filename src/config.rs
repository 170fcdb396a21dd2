//! The router's settings: serde structs with defaults, and `load()`, which layers
//! built-in defaults < the TOML file < the environment, writes the older keys onto the
//! route table, then validates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod budget;
mod dashboard;
mod eval;
mod legacy;
mod passthrough;
mod routes;
mod routing;
mod sections;
mod validate;

pub use budget::{BudgetConfig, WhenSpent};
pub use dashboard::DashboardConfig;
pub use eval::EvalConfig;
pub use legacy::{FailoverConfig, XaiConfig};
pub use passthrough::PassthroughConfig;
pub use routes::{DescribeConfig, MaxTokens, RouteConfig, SearchConfig, Thinking};
pub use routing::{Constrain, KeywordRule, MetaConfig, MissingKey, Price, RoutingConfig};
pub use sections::{
    BackendConfig, BaseUrls, HealthConfig, LogFormat, ServerConfig, SessionFormat, SessionsConfig,
};
pub use validate::{META_LABEL, validate};

/// Everything the router can be told. Every key is optional in the file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the listener and what clients see.
    pub server: ServerConfig,
    /// `[backends.NAME]`: the model servers, any number; several URLs make a pool.
    pub backends: BTreeMap<String, BackendConfig>,
    /// `[routes.LABEL]`: for each label, the backend that answers and how.
    pub routes: BTreeMap<String, RouteConfig>,
    /// `[routing]`: how requests are classified.
    pub routing: RoutingConfig,
    /// `[meta]`: how client task prompts are recognised.
    pub meta: MetaConfig,
    /// `[health]`: background probes and when an endpoint counts as down.
    pub health: HealthConfig,
    /// `[sessions]`: the per-request session logs.
    pub sessions: SessionsConfig,
    /// `[prices."<model>"]`: USD per million tokens, for cost estimates.
    pub prices: BTreeMap<String, Price>,
    /// `[eval]`: how `ai-router eval` weighs the classifier's mistakes.
    pub eval: EvalConfig,
    /// `[passthrough."/v1/PATH"]`: other API paths passed to a backend as they came.
    pub passthrough: BTreeMap<String, PassthroughConfig>,
    /// `[budget.BACKEND]`: what a paid backend may cost per day and per month.
    pub budget: BTreeMap<String, BudgetConfig>,
    /// `[dashboard]`: the web dashboard under `/dashboard`.
    pub dashboard: DashboardConfig,
    /// `[xai]`: older names for route settings (see `legacy`); empty once loaded.
    #[serde(default, skip_serializing_if = "is_default_xai")]
    pub xai: XaiConfig,
    /// `[failover]`: older names for routes' failover lists; empty once loaded.
    #[serde(default, skip_serializing_if = "is_default_failover")]
    pub failover: FailoverConfig,
    /// Where each older key that was set went, for `check` and the start-up log.
    #[serde(skip)]
    pub notes: Vec<String>,
}

fn is_default_xai(xai: &XaiConfig) -> bool {
    serde_json::to_value(xai).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

fn is_default_failover(failover: &FailoverConfig) -> bool {
    failover.primary_to_xai.is_none() && failover.xai_to_primary.is_none()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            backends: sections::default_backends(),
            routes: routes::default_routes(),
            routing: RoutingConfig::default(),
            meta: MetaConfig::default(),
            health: HealthConfig::default(),
            sessions: SessionsConfig::default(),
            prices: routing::default_prices(),
            eval: EvalConfig::default(),
            passthrough: BTreeMap::new(),
            budget: BTreeMap::new(),
            dashboard: DashboardConfig::default(),
            xai: XaiConfig::default(),
            failover: FailoverConfig::default(),
            notes: Vec::new(),
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
    let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file_exact(path))
        .merge(seed_env()?)
        .merge(overrides())
        .extract()
        .map_err(|e| ConfigError::Parse(describe(e)))?;
    config.notes = legacy::apply(&mut config);
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
/// folder, a test URL) that must not be mistaken for config. Keys are lower case but
/// for route labels, which are upper case (`AI_ROUTER_ROUTES__COMPLEX__BACKEND`).
fn overrides() -> Env {
    Env::prefixed("AI_ROUTER_")
        .filter(|key| key.as_str().contains("__"))
        .map(|key| {
            let mut parts: Vec<String> = key
                .as_str()
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            if parts.first().is_some_and(|p| p == "routes")
                && let Some(label) = parts.get_mut(1)
            {
                *label = label.to_ascii_uppercase();
            }
            parts.join(".").into()
        })
        // Last: figment turns lower-casing back on with every `map` or `filter`.
        .lowercase(false)
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
