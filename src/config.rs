//! The router's settings: serde structs with defaults, and `load()`, which layers
//! built-in defaults < the TOML file < the environment, then validates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Everything the router can be told. Every key is optional in the file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
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
}

/// A classification label, as the classifier writes it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Label {
    /// Greetings, small talk, trivial questions: the primary.
    Simple,
    /// Coding, analysis, explanations: the primary.
    Moderate,
    /// Research-level, novel problems: xAI.
    Complex,
    /// Needs real-time data: xAI gathers, the primary answers.
    Enrich,
    /// The client's own task prompts: the primary, without thinking.
    Meta,
}

/// `[routing]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The label used when the classifier fails, is slow, or answers without a label.
    pub fallback: Label,
    /// Keyword rules that refine the fallback: the first rule with a keyword in the last
    /// user message (case-insensitive) gives the label instead.
    pub fallback_rules: Vec<KeywordRule>,
    /// How many earlier messages the classifier sees besides the last user message.
    pub context_messages: usize,
    /// At most this many characters of earlier messages (the most recent are kept).
    pub context_chars: usize,
    /// A last user message longer than this is cut to head + tail for classification.
    pub max_input_chars: usize,
    /// Extra fields for the classification request (e.g. `temperature`).
    pub classifier_params: serde_json::Map<String, serde_json::Value>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        let mut classifier_params = serde_json::Map::new();
        classifier_params.insert("temperature".into(), serde_json::Value::from(0.0));
        RoutingConfig {
            fallback: Label::Moderate,
            fallback_rules: Vec::new(),
            context_messages: 4,
            context_chars: 1500,
            max_input_chars: 4000,
            classifier_params,
        }
    }
}

/// One `[[routing.fallback_rules]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    /// The label this rule gives.
    pub label: Label,
    /// Words or phrases; any one of them is enough.
    pub keywords: Vec<String>,
}

/// `[meta]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// Request headers whose non-empty value marks a task prompt (Open WebUI's
    /// `X-OpenWebUI-Task`, set up as a connection header).
    pub headers: Vec<String>,
    /// The TOML file of text rules that recognise task prompts; empty for none.
    pub rules_file: PathBuf,
    /// Send `chat_template_kwargs.enable_thinking = false` with META requests, so a
    /// reasoning model does not spend a title's budget on thinking.
    pub disable_thinking: bool,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            headers: vec!["x-openwebui-task".into()],
            rules_file: "config/meta_rules.toml".into(),
            disable_thinking: true,
        }
    }
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The one model clients see on `/v1/models` and in every answer.
    pub virtual_model: String,
    /// A second listed model; requests naming it are client task prompts (META).
    pub task_model: String,
    /// Folder holding the prompt files.
    pub prompts_dir: PathBuf,
    /// Largest request body accepted (images arrive base64-encoded).
    pub max_body_bytes: usize,
    /// Peers whose `CF-Connecting-IP` / `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// A `: keep-alive` SSE comment is sent after this many silent seconds on a stream,
    /// so proxies and tunnels (cloudflared cuts at 100 s) keep it open.
    pub sse_keepalive_secs: u64,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            virtual_model: "ai-router".into(),
            task_model: String::new(),
            prompts_dir: "prompts".into(),
            max_body_bytes: 32 * 1024 * 1024,
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
            shutdown_grace_secs: 30,
            sse_keepalive_secs: 15,
            log_format: LogFormat::Text,
        }
    }
}

/// How tracing output is formatted.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[backends]`: the three model servers the router knows.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backends {
    /// The small model that labels each request.
    pub classifier: BackendConfig,
    /// The local model that answers SIMPLE, MODERATE and META.
    pub primary: BackendConfig,
    /// xAI's Grok, for COMPLEX and the first ENRICH hop.
    pub xai: BackendConfig,
}

impl Default for Backends {
    fn default() -> Self {
        Backends {
            classifier: BackendConfig {
                base_url: "http://vllm-router:8000/v1".into(),
                model: "cyankiwi/Nemotron-Orchestrator-8B-AWQ-4bit".into(),
                // A label is a few tokens: a slow classifier should fall back quickly.
                timeout_secs: 10,
                response_timeout_secs: 20,
                ..BackendConfig::default()
            },
            primary: BackendConfig {
                base_url: "http://vllm-primary:8000/v1".into(),
                model: "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4".into(),
                ..BackendConfig::default()
            },
            xai: BackendConfig {
                base_url: "https://api.x.ai/v1".into(),
                model: "grok-4-1-fast-reasoning".into(),
                api_key_env: "XAI_API_KEY".into(),
                connect_timeout_secs: 10,
                // x_search can take 20–45 s before the first byte.
                timeout_secs: 60,
                ..BackendConfig::default()
            },
        }
    }
}

/// `[backends.<name>]`: one OpenAI-compatible server.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    /// The model name the server expects (vLLM answers 404 to any other).
    pub model: String,
    /// Name of the environment variable holding the bearer key; empty for none.
    pub api_key_env: String,
    /// Longest wait to open a TCP (and TLS) connection.
    pub connect_timeout_secs: u64,
    /// Longest wait for the first byte of a stream, and between two stream chunks.
    pub timeout_secs: u64,
    /// Longest wait for a whole non-streamed answer (the server sends nothing until done).
    pub response_timeout_secs: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            base_url: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            connect_timeout_secs: 5,
            timeout_secs: 30,
            response_timeout_secs: 600,
        }
    }
}

/// `[xai]`: how requests are shaped for Grok.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XaiConfig {
    /// `max_tokens` is raised to at least this for xAI (never lowered).
    pub min_max_tokens: u32,
    /// Server-side tools used by the ENRICH hop.
    pub search_tools: Vec<String>,
    /// Parameters Grok's reasoning models reject; removed on the way.
    pub drop_params: Vec<String>,
    /// Longest wait for the ENRICH search hop (x_search can take 20–45 s).
    pub enrich_timeout_secs: u64,
    /// With no xAI key: `fallback` answers COMPLEX on the primary and ENRICH without
    /// gathered context (the session log says why); `error` refuses them with a 503.
    pub missing_key: MissingKey,
}

/// What COMPLEX and ENRICH do when xAI has no key.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MissingKey {
    /// Answer locally and say so in the session log.
    Fallback,
    /// Answer 503 naming the missing variable.
    Error,
}

impl Default for XaiConfig {
    fn default() -> Self {
        XaiConfig {
            min_max_tokens: 16384,
            search_tools: vec!["web_search".into(), "x_search".into()],
            drop_params: [
                "presence_penalty",
                "frequency_penalty",
                "stop",
                "reasoning_effort",
            ]
            .map(String::from)
            .to_vec(),
            enrich_timeout_secs: 90,
            missing_key: MissingKey::Fallback,
        }
    }
}

/// `[sessions]`: one JSON file per request.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Write session logs at all.
    pub enabled: bool,
    /// Folder for the files.
    pub dir: PathBuf,
    /// Files older than this are deleted.
    pub max_age_days: u64,
    /// At most this many files are kept; the oldest go first.
    pub max_files: usize,
    /// fsync each file before it is renamed into place (slower, survives power loss).
    pub fsync: bool,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            enabled: true,
            dir: "logs/sessions".into(),
            max_age_days: 7,
            max_files: 5000,
            fsync: false,
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
    if config.server.max_body_bytes == 0 {
        return invalid("server.max_body_bytes", "must be greater than 0");
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
