//! Test harness: a router on 127.0.0.1:0 with its own session folder and prompts,
//! pointed at fake backends, plus small client helpers.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

pub mod fake;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_router::config::{BackendConfig, Config, RouteConfig};
use ai_router::record::writer::SessionWriter;
use ai_router::{App, serve};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::oneshot;

/// The system prompt the test router injects, easy to find in what a fake received.
pub const SYSTEM_PROMPT: &str = "TEST SYSTEM PROMPT.";

/// The other prompt files of a test router, each easy to recognise.
pub const PROMPTS: [(&str, &str); 7] = [
    ("routing/system.md", "TEST ROUTING SYSTEM."),
    (
        "routing/request.md",
        "CONTEXT: {{context}}\nCLASSIFY: {{query}}",
    ),
    ("routing/truncation_note.md", "[CUT {{omitted}}]"),
    ("xai/system.md", "TEST XAI SYSTEM {{date}}."),
    ("enrichment/system.md", "TEST ENRICH INSTRUCTIONS."),
    (
        "enrichment/injection.md",
        "TEST INJECTION: {{context}}\nSOURCES:\n{{sources}}",
    ),
    ("meta/system.md", "TEST META SYSTEM."),
];

/// The `answer` step of a session record (the call whose reply the client got).
pub fn answer(session: &Value) -> &Value {
    session["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == "answer"))
        .expect("the session has an answer step")
}

/// A running router.
pub struct TestRouter {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub sessions_dir: PathBuf,
    /// The prompts folder, for hot-reload tests.
    pub prompts_dir: PathBuf,
    /// The classifier: answers MODERATE unless a test says otherwise.
    pub classifier: fake::Fake,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    writer: Option<SessionWriter>,
    _background: ai_router::app::Background,
    _dirs: tempfile::TempDir,
}

/// Reaching into a test config by name.
pub trait ConfigExt {
    /// `[backends.<name>]`, which the test expects to exist.
    fn backend(&mut self, name: &str) -> &mut BackendConfig;
    /// `[routes.<label>]`, which the test expects to exist.
    fn route(&mut self, label: &str) -> &mut RouteConfig;
}

impl ConfigExt for Config {
    fn backend(&mut self, name: &str) -> &mut BackendConfig {
        self.backends
            .get_mut(name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    fn route(&mut self, label: &str) -> &mut RouteConfig {
        self.routes
            .get_mut(label)
            .unwrap_or_else(|| panic!("no route {label}"))
    }
}

/// A config whose backends all point at `upstream` and whose prompts and sessions
/// live in `dir`.
pub fn config_for(upstream: &str, dir: &Path) -> Config {
    let mut config = Config::default();
    for backend in config.backends.values_mut() {
        backend.base_url = upstream.into();
        backend.api_key_env = String::new();
        backend.timeout_secs = 5;
        backend.response_timeout_secs = 5;
        // Error tests expect one call per request; retries have their own test.
        backend.retries = 0;
    }
    config.backend("primary").model = "served-model".into();
    config.server.prompts_dir = dir.join("prompts");
    config.sessions.dir = dir.join("sessions");
    config.meta.rules_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/meta_rules.toml");
    config.server.shutdown_grace_secs = 5;
    // Tests that repeat a question expect a classifier call each time; the cache has
    // its own test.
    config.routing.cache_entries = 0;
    config
}

impl TestRouter {
    /// Starts a router whose backends point at `upstream`, after `adjust` edits the config.
    pub async fn start(upstream: &str, adjust: impl FnOnce(&mut Config)) -> TestRouter {
        let dirs = test_dirs();
        let classifier = fake::Fake::with(fake::label_reply("MODERATE")).await;
        let mut config = config_for(upstream, dirs.path());
        config.backend("classifier").base_url = classifier.url.as_str().into();
        adjust(&mut config);
        Self::launch(config, dirs, classifier).await
    }

    /// Starts a router whose primary and xAI are separate default fakes, after `adjust`;
    /// with them, to see which one answered.
    pub async fn with_primary_and_xai(
        adjust: impl FnOnce(&mut Config),
    ) -> (TestRouter, fake::Fake, fake::Fake) {
        let primary = fake::Fake::start().await;
        let xai = fake::Fake::start().await;
        let xai_url = xai.url.clone();
        let router = Self::start(&primary.url, move |c| {
            c.backend("xai").base_url = xai_url.as_str().into();
            adjust(c);
        })
        .await;
        (router, primary, xai)
    }

    /// Starts a router on the shipped `config/router.toml` (its routes, rules and
    /// defaults), with the test's prompts and session folder, its classifier pointed at
    /// a fake, after `adjust` points the other backends where the test wants them.
    pub async fn shipped(adjust: impl FnOnce(&mut Config)) -> TestRouter {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/router.toml");
        Self::loaded(&shipped, adjust).await
    }

    /// Starts a router on the config file `path` as `serve` would load it, with the
    /// test's prompts and session folder and its classifier pointed at a fake, after
    /// `adjust`.
    pub async fn loaded(path: &Path, adjust: impl FnOnce(&mut Config)) -> TestRouter {
        let dirs = test_dirs();
        let classifier = fake::Fake::with(fake::label_reply("MODERATE")).await;
        let mut config = ai_router::config::load(path).unwrap();
        config.server.prompts_dir = dirs.path().join("prompts");
        config.sessions.dir = dirs.path().join("sessions");
        config.meta.rules_file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/meta_rules.toml");
        config.backend("classifier").base_url = classifier.url.as_str().into();
        adjust(&mut config);
        Self::launch(config, dirs, classifier).await
    }

    async fn launch(config: Config, dirs: tempfile::TempDir, classifier: fake::Fake) -> TestRouter {
        ai_router::config::validate(&config).unwrap();
        let sessions_dir = config.sessions.dir.clone();
        let prompts_dir = config.server.prompts_dir.clone();
        let grace = Duration::from_secs(config.server.shutdown_grace_secs);
        let App { state, writer } = App::build(config).unwrap();
        let background = ai_router::app::background(&state).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, on_shutdown) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            state,
            async move {
                let _ = on_shutdown.await;
            },
            grace,
        ));
        TestRouter {
            url,
            sessions_dir,
            prompts_dir,
            classifier,
            shutdown: Some(shutdown),
            server,
            writer,
            _background: background,
            _dirs: dirs,
        }
    }

    /// `POST /v1/chat/completions` with `body`.
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}/v1/chat/completions", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/chat/completions` with `body` as Open WebUI sends a task prompt: the
    /// `X-OpenWebUI-Task` header carries the task name (empty on normal chats).
    pub async fn task_chat(&self, task: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}/v1/chat/completions", self.url))
            .header("X-OpenWebUI-Task", task)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path`: the status, the headers and the body as JSON.
    pub async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap())
    }

    /// `GET /metrics`, the text.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `POST /v1/chat/completions` with a raw (possibly broken) JSON body.
    pub async fn post_raw(&self, body: &'static str) -> reqwest::Response {
        client()
            .post(format!("{}/v1/chat/completions", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits until `n` session files exist (records are written off the request path),
    /// then returns them parsed, oldest first.
    pub async fn sessions(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(writer) = &self.writer {
                writer.flush().await;
            }
            let files = session_files(&self.sessions_dir);
            if files.len() >= n || tokio::time::Instant::now() > deadline {
                assert_eq!(files.len(), n, "session files: {files:?}");
                return files
                    .iter()
                    .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every record finished so far has been through the writer.
    pub async fn flush(&self) {
        if let Some(writer) = &self.writer {
            writer.flush().await;
        }
    }

    /// Triggers graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let result = (&mut self.server).await.unwrap();
        if let Some(writer) = self.writer.take() {
            writer.shutdown().await;
        }
        result
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for the server task to end (after `signal_shutdown`).
    pub async fn join(&mut self) -> std::io::Result<()> {
        (&mut self.server).await.unwrap()
    }
}

/// A temporary folder with the test prompts in `prompts/` (sessions go in `sessions/`).
pub fn test_dirs() -> tempfile::TempDir {
    let dirs = tempfile::tempdir().unwrap();
    let prompts_dir = dirs.path().join("prompts");
    for (name, text) in PROMPTS
        .iter()
        .chain([("primary/system.md", SYSTEM_PROMPT)].iter())
    {
        let path = prompts_dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dirs
}

/// All finished session files (temp files excluded), sorted by name (= time).
pub fn session_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

/// A client with a bound on every test request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A chat body with one user message.
pub fn user(text: &str) -> Value {
    serde_json::json!({"model": "ai-router", "messages": [{"role": "user", "content": text}]})
}

/// The names of a session's steps, in order (`classify`, `enrich`, `answer`).
pub fn step_names(session: &Value) -> Vec<&str> {
    session["steps"]
        .as_array()
        .expect("steps is a list")
        .iter()
        .map(|s| s["step"].as_str().expect("a step has a name"))
        .collect()
}

/// `body` asking for a stream, or for one JSON answer.
pub fn streaming(mut body: Value, stream: bool) -> Value {
    body["stream"] = Value::Bool(stream);
    body
}

/// Reads an SSE response to the end: the `data:` payloads in order. Panics on any
/// line that is not `data:`, a comment or blank (e.g. an `event:` line).
pub async fn read_sse(response: reqwest::Response) -> Vec<String> {
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .expect("the stream did not end: the body was not closed after [DONE]")
        .unwrap();
    parse_sse(&text)
}

/// The `data:` payloads of an SSE body.
pub fn parse_sse(text: &str) -> Vec<String> {
    let mut data = Vec::new();
    for line in text.lines() {
        if let Some(payload) = line.strip_prefix("data:") {
            data.push(payload.trim_start().to_string());
        } else {
            assert!(
                line.is_empty() || line.starts_with(':'),
                "unexpected SSE line {line:?}"
            );
        }
    }
    data
}

/// Reads SSE events one at a time as they arrive.
pub fn sse_events(response: reqwest::Response) -> impl futures_util::Stream<Item = String> + Unpin {
    use eventsource_stream::Eventsource;
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|e| e.expect("a valid SSE event").data),
    )
}

/// The error envelope of a failed response, after checking it has OpenAI's four fields
/// and a message.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(status >= 400, "expected an error, got {status}");
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "envelope lacks {field}: {body}");
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    (status, error)
}

/// After a fault: `fake` answers normally again, and the router serves a JSON and a
/// streamed chat as if nothing had happened.
pub async fn still_serves(router: &TestRouter, fake: &fake::Fake) {
    fake.set(fake::vllm_reply);
    for stream in [false, true] {
        let response = router.chat(&streaming(user("still there?"), stream)).await;
        assert_eq!(response.status(), 200, "the router stopped serving");
        if stream {
            let data = read_sse(response).await;
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        }
    }
}
