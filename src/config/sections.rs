//! `[server]`, `[backends.*]`, `[sessions]` and `[health]`: the listener, the model
//! servers, the session logs and how backends are watched.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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
    /// List the routes that have an `expose_as` model id on `/v1/models`, and honour a
    /// chat that names one (the client chooses the route; no classifier call).
    pub expose_routes: bool,
    /// Folder holding the prompt files.
    pub prompts_dir: PathBuf,
    /// Largest request body accepted (images arrive base64-encoded).
    pub max_body_bytes: usize,
    /// Peers whose `CF-Connecting-IP` / `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Client keys: the variable holding them (comma-separated); empty for none.
    pub api_keys_env: String,
    /// Client keys: a file with one per line (`#` comments); empty for none.
    pub api_keys_file: PathBuf,
    /// With client keys, `/metrics` and `/stats` need a key too (`/health` never does).
    pub protect_stats: bool,
    /// Chat requests answered at once; beyond it, 503 with `Retry-After` at once
    /// instead of an unbounded queue.
    pub max_concurrent_requests: usize,
    /// With client keys: a key's sustained chat requests per minute (0: no limit). A
    /// key may burst this many at once, then one every `60 / limit` s; beyond it, 429
    /// with `Retry-After`.
    pub key_requests_per_minute: u32,
    /// With client keys: streams one key may have open at once (0: no limit).
    pub key_max_streams: u32,
    /// How long a client may take to send a request's headers; a connection that
    /// dribbles them is closed.
    pub header_read_timeout_secs: u64,
    /// Largest total size of a request's headers (names and values); beyond it, 431.
    pub max_header_bytes: usize,
    /// Most headers one request may have; beyond it, 431. (hyper's parser takes twice
    /// this, so the router can answer in OpenAI's envelope in between.)
    pub max_headers: usize,
    /// How long a client may take to send a request's body; beyond it, 408.
    pub body_read_timeout_secs: u64,
    /// A `: keep-alive` SSE comment is sent after this many silent seconds on a stream,
    /// so proxies and tunnels (cloudflared cuts at 100 s) keep it open.
    pub sse_keepalive_secs: u64,
    /// Most choices (`n`) one chat may ask for; beyond it, 400. Each choice is a whole
    /// answer a backend generates, and local backends get no `max_tokens`.
    pub max_choices: u32,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Threads that serve connections, each with a runtime of its own (0: one per CPU
    /// the router may use).
    pub workers: usize,
}

impl ServerConfig {
    /// How many worker threads serve connections: `workers`, or one per CPU the router
    /// may use (its cgroup's and affinity's share, as the standard library reads it).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            virtual_model: "ai-router".into(),
            task_model: String::new(),
            expose_routes: true,
            prompts_dir: "prompts".into(),
            max_body_bytes: 32 * 1024 * 1024,
            trusted_proxies: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
            shutdown_grace_secs: 30,
            max_concurrent_requests: 512,
            key_requests_per_minute: 0,
            key_max_streams: 0,
            header_read_timeout_secs: 30,
            max_header_bytes: 64 * 1024,
            max_headers: 256,
            body_read_timeout_secs: 60,
            api_keys_env: String::new(),
            api_keys_file: PathBuf::new(),
            protect_stats: true,
            sse_keepalive_secs: 15,
            max_choices: 8,
            log_format: LogFormat::Text,
            workers: 0,
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

/// The backends a fresh install knows: the classifier and primary vLLM servers of the
/// Compose deployment, and xAI. `[backends.NAME]` adds any number more.
pub(crate) fn default_backends() -> BTreeMap<String, BackendConfig> {
    let backends = [
        (
            "classifier",
            BackendConfig {
                base_url: "http://vllm-router:8000/v1".into(),
                model: "cyankiwi/Nemotron-Orchestrator-8B-AWQ-4bit".into(),
                // A label is a few tokens: a slow classifier should fall back quickly,
                // not be retried.
                timeout_secs: 10,
                response_timeout_secs: 20,
                retries: 0,
                // A label is a few tokens; a reasoning classifier's thinking, a few pages.
                max_response_bytes: 1024 * 1024,
                ..BackendConfig::default()
            },
        ),
        (
            "primary",
            BackendConfig {
                base_url: "http://vllm-primary:8000/v1".into(),
                model: "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4".into(),
                ..BackendConfig::default()
            },
        ),
        (
            "xai",
            BackendConfig {
                base_url: "https://api.x.ai/v1".into(),
                model: "grok-4-1-fast-reasoning".into(),
                api_key_env: "XAI_API_KEY".into(),
                connect_timeout_secs: 10,
                // x_search can take 20–45 s before the first byte.
                timeout_secs: 60,
                ..BackendConfig::default()
            },
        ),
    ];
    backends
        .into_iter()
        .map(|(name, backend)| (name.to_string(), backend))
        .collect()
}

/// `[backends.<name>]`: one OpenAI-compatible server (vLLM, llama-server, Ollama, xAI…),
/// or several serving the same model: a pool.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Base URL up to and including `/v1`; a list of them makes a pool, whose requests go
    /// to the healthy endpoint with the fewest in flight.
    pub base_url: BaseUrls,
    /// The model name the server expects (vLLM answers 404 to any other).
    pub model: String,
    /// Name of the environment variable holding the bearer key; empty for none.
    pub api_key_env: String,
    /// Longest wait to open a TCP (and TLS) connection.
    pub connect_timeout_secs: u64,
    /// Longest wait for a stream's headers, then for its first event, then for each next
    /// one (comments and unfinished events do not count).
    pub timeout_secs: u64,
    /// Longest wait for a whole non-streamed answer (the server sends nothing until done).
    pub response_timeout_secs: u64,
    /// Retries of a refused connection, a 429 or a 5xx before anything reached the
    /// client (backoff with jitter, or the backend's Retry-After, within the same
    /// deadline). Never for other 4xx, never once a stream has started. The other
    /// endpoints of a pool are tried first, at once, without counting as retries.
    pub retries: u32,
    /// Largest whole answer read from it (a non-streamed completion, a classifier's reply,
    /// a search hop's findings), and largest single event of a stream; beyond it, 502.
    pub max_response_bytes: usize,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            base_url: BaseUrls::default(),
            model: String::new(),
            api_key_env: String::new(),
            connect_timeout_secs: 5,
            timeout_secs: 30,
            response_timeout_secs: 600,
            retries: 2,
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One base URL, or several: `base_url = "http://gpu1:8000/v1"` or
/// `base_url = ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseUrls(pub Vec<String>);

impl BaseUrls {
    /// The URLs, in the order they were written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl From<String> for BaseUrls {
    fn from(url: String) -> Self {
        BaseUrls(vec![url])
    }
}

impl From<&str> for BaseUrls {
    fn from(url: &str) -> Self {
        BaseUrls(vec![url.to_string()])
    }
}

impl From<Vec<String>> for BaseUrls {
    fn from(urls: Vec<String>) -> Self {
        BaseUrls(urls)
    }
}

impl Serialize for BaseUrls {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for BaseUrls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(url) => BaseUrls(vec![url]),
            OneOrMany::Many(urls) => BaseUrls(urls),
        })
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
    /// Most bytes of a step's answer (and of its reasoning) kept in the record; the rest
    /// is cut, and the step says so. The client gets the whole answer.
    pub max_answer_bytes: usize,
    /// Largest session file: a bigger record has its message text shared, then cut,
    /// to fit, and says so (`cut_to_fit`).
    pub max_file_bytes: usize,
    /// The folder that holds every replica's session folder (one shared volume), or
    /// empty for none. When set, the cloud budgets count every replica's spend: read
    /// from it at start-up and every 30 s.
    pub shared_dir: PathBuf,
    /// `files`: one file per request (the review agents' format); `segments`: one JSON
    /// line per request in a file per UTC day, with no file created per request.
    pub format: SessionFormat,
}

/// How session records are laid out on disk.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SessionFormat {
    /// `<UTC time>_<id>.json`, one pretty-printed file per request, written atomically.
    #[default]
    Files,
    /// `sessions-<UTC day>.jsonl`: one line per request, appended whole.
    Segments,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            enabled: true,
            dir: "logs/sessions".into(),
            max_age_days: 7,
            max_files: 5000,
            fsync: false,
            max_answer_bytes: 1024 * 1024,
            max_file_bytes: 8 * 1024 * 1024,
            shared_dir: PathBuf::new(),
            format: SessionFormat::Files,
        }
    }
}

/// `[health]`: how backends are watched.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between background probes of each backend endpoint.
    pub probe_interval_secs: u64,
    /// Failures in a row (probes or real calls: refused, timed out, 5xx) that mark a
    /// backend's endpoint down; a pool stops sending it requests until it is back.
    pub failure_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval_secs: 15,
            failure_threshold: 3,
        }
    }
}
