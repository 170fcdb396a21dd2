//! One backend: its HTTP client, base URL, model and key, built once at start-up, and
//! the call that turns connect failures, silence and error statuses into `Error`s.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use crate::config::BackendConfig;
use crate::error::Error;
use crate::openai::error_body::UpstreamError;
use crate::secret::Secret;

/// Largest error body read from a backend; the rest is not worth waiting for.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A configured OpenAI-compatible backend.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Config name: `classifier`, `primary` or `xai`.
    pub name: &'static str,
    /// Base URL without a trailing slash, e.g. `http://vllm-primary:8000/v1`.
    pub base_url: String,
    /// Model name the backend serves.
    pub model: String,
    /// Longest wait for a stream's first byte, and between two chunks.
    pub timeout: Duration,
    /// Longest wait for a whole non-streamed answer.
    pub response_timeout: Duration,
    /// Retries of a refused connection, 429 or 5xx before anything was relayed.
    pub retries: u32,
    api_key_env: String,
    api_key: Option<Secret>,
    client: reqwest::Client,
    /// The URLs the router calls, parsed once: reqwest would parse (and IDNA-check)
    /// the string on every call.
    parsed: Vec<(&'static str, reqwest::Url)>,
}

/// The API paths the router calls on a backend.
const PATHS: [&str; 3] = ["/chat/completions", "/responses", "/models"];

/// How a call's answer is awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A JSON body that arrives only when the backend is done.
    Json,
    /// An SSE stream whose headers come first.
    Stream,
}

impl Upstream {
    /// Builds the backend from its config; the key is read from `api_key_env` now.
    pub fn new(name: &'static str, config: &BackendConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            // Without it, Nagle's algorithm meets delayed ACKs and small chunks wait ~40 ms.
            .tcp_nodelay(true)
            // Under the backends' own keep-alive (vLLM's uvicorn and llama-server close
            // idle connections after 5 s), so a request never races the server's close.
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("ai-router/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let api_key = read_key(config);
        let base_url = config.base_url.trim_end_matches('/').to_string();
        let parsed = PATHS
            .iter()
            .filter_map(|path| {
                Some((
                    *path,
                    reqwest::Url::parse(&format!("{base_url}{path}")).ok()?,
                ))
            })
            .collect();
        Ok(Upstream {
            name,
            base_url,
            model: config.model.clone(),
            timeout: Duration::from_secs(config.timeout_secs),
            response_timeout: Duration::from_secs(config.response_timeout_secs),
            retries: config.retries,
            api_key_env: config.api_key_env.trim().to_string(),
            api_key,
            client,
            parsed,
        })
    }

    /// The variable that should hold this backend's key when it is not set;
    /// `None` when the key is there or none is needed.
    pub fn missing_key(&self) -> Option<&str> {
        match (&self.api_key, self.api_key_env.as_str()) {
            (None, name) if !name.is_empty() => Some(name),
            _ => None,
        }
    }

    /// The session-log step for a call to `path` with `body`: the conversation (the
    /// `conversation` field: `messages`, or `input` for the Responses API) apart from
    /// the other parameters, so review agents see exactly what was sent.
    pub fn step_record(
        &self,
        step: &'static str,
        path: &str,
        body: &serde_json::Map<String, Value>,
        conversation: &str,
    ) -> crate::record::session::StepRecord {
        let mut params = body.clone();
        let sent = params.remove(conversation).unwrap_or(Value::Null);
        crate::record::session::StepRecord {
            step,
            provider: self.name,
            url: self.url(path),
            model: self.model.clone(),
            messages_sent: sent,
            params: Value::Object(params),
            ..crate::record::session::StepRecord::default()
        }
    }

    /// The parsed URL of `path`, from the start-up cache when it is one of ours.
    fn target(&self, path: &str) -> Result<reqwest::Url, Error> {
        if let Some((_, url)) = self.parsed.iter().find(|(p, _)| *p == path) {
            return Ok(url.clone());
        }
        reqwest::Url::parse(&self.url(path)).map_err(|e| Error::UpstreamProtocol {
            backend: self.name,
            reason: format!("bad URL: {e}"),
        })
    }

    /// The full URL of an API path such as `/chat/completions`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// POSTs `body` to `path` and waits for a successful answer's headers: within
    /// `timeout` for a stream, `response_timeout` for JSON. Error statuses become
    /// `Error::UpstreamStatus` with the backend's message.
    ///
    /// Nothing has reached the client yet, so a refused connection, a 429 or a 5xx is
    /// retried up to `retries` times with exponential backoff and jitter (or the
    /// backend's `Retry-After`), within the same deadline. Other 4xx are never retried.
    pub async fn post(
        &self,
        path: &str,
        body: &Map<String, Value>,
        request_id: &str,
        expect: Expect,
    ) -> Result<reqwest::Response, Error> {
        let bytes =
            bytes::Bytes::from(
                serde_json::to_vec(body).map_err(|e| Error::UpstreamProtocol {
                    backend: self.name,
                    reason: format!("request could not be encoded: {e}"),
                })?,
            );
        let wait = match expect {
            Expect::Json => self.response_timeout,
            Expect::Stream => self.timeout,
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (error, retry_after) = match self
                .send_once(path, bytes.clone(), request_id, deadline, wait)
                .await
            {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            // The backend's own status decides: a rejected key answered 400 is a 502 for
            // the client, but trying it again cannot help.
            let retryable = match &error {
                Error::UpstreamUnreachable { .. } => true,
                Error::UpstreamStatus { error, .. } => {
                    let status = error.backend_status;
                    status.as_u16() == 429 || status.is_server_error()
                }
                _ => false,
            };
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            if !retryable
                || attempt > self.retries
                || tokio::time::Instant::now() + delay >= deadline
            {
                return Err(with_retry_after(error, retry_after));
            }
            tracing::warn!(backend = self.name, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One try, with what is left of the deadline; a failure comes with the
    /// backend's `Retry-After`, if it sent one.
    async fn send_once(
        &self,
        path: &str,
        bytes: bytes::Bytes,
        request_id: &str,
        deadline: tokio::time::Instant,
        wait: Duration,
    ) -> Result<reqwest::Response, (Error, Option<Duration>)> {
        let url = self.target(path).map_err(|e| (e, None))?;
        let send = self
            .client
            .post(url)
            .headers(self.headers(request_id))
            .body(bytes)
            .send();
        let response = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => return Err((self.timed_out(wait), None)),
            Ok(Err(e)) => return Err((self.send_error(&e, wait), None)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            // A backend's absurd wait must neither overflow the deadline arithmetic nor
            // reach the client: an hour is the most anyone will honour.
            .map(|secs| Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)));
        Err((self.status_error(response).await, retry_after))
    }

    /// GETs `path` with one overall deadline (used by readiness checks).
    pub async fn get(&self, path: &str, wait: Duration) -> Result<reqwest::Response, Error> {
        let send = self
            .client
            .get(self.target(path)?)
            .headers(self.headers(""))
            .send();
        match tokio::time::timeout(wait, send).await {
            Err(_) => Err(self.timed_out(wait)),
            Ok(Err(e)) => Err(self.send_error(&e, wait)),
            Ok(Ok(response)) if response.status().is_success() => Ok(response),
            Ok(Ok(response)) => Err(self.status_error(response).await),
        }
    }

    /// The one place that decides what a backend sees besides the body: our own
    /// content type, the backend's key and our request id. No client header is
    /// forwarded, so the client's `Authorization` and hop-by-hop headers never leak.
    fn headers(&self, request_id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &self.api_key
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Ok(id) = HeaderValue::from_str(request_id)
            && !request_id.is_empty()
        {
            headers.insert("x-request-id", id);
        }
        headers
    }

    /// An `UpstreamTimeout` for this backend.
    pub fn timed_out(&self, wait: Duration) -> Error {
        Error::UpstreamTimeout {
            backend: self.name,
            secs: wait.as_secs(),
        }
    }

    fn send_error(&self, error: &reqwest::Error, wait: Duration) -> Error {
        if error.is_timeout() && !error.is_connect() {
            return self.timed_out(wait);
        }
        Error::UpstreamUnreachable {
            backend: self.name,
            reason: connect_reason(error),
        }
    }

    async fn status_error(&self, response: reqwest::Response) -> Error {
        let status = response.status();
        // A backend that sends headers and then stalls must not hang the error path.
        let body = tokio::time::timeout(self.timeout, read_capped(response, MAX_ERROR_BODY))
            .await
            .unwrap_or_default();
        Error::UpstreamStatus {
            backend: self.name,
            error: Box::new(UpstreamError::parse(self.name, status, &body)),
        }
    }
}

/// The longest `Retry-After` taken from a backend, in seconds.
const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// `error` carrying the backend's `Retry-After`, so that a client told to wait (a 429
/// or 503 after the retries, or one asking for longer than the deadline) waits as long
/// as the backend asked, not its SDK's default.
fn with_retry_after(mut error: Error, retry_after: Option<Duration>) -> Error {
    if let Error::UpstreamStatus {
        error: upstream, ..
    } = &mut error
    {
        upstream.retry_after = retry_after.map(|wait| wait.as_secs());
    }
    error
}

/// The wait before retry `attempt`: 250 ms, doubling, with ±25 % jitter so that many
/// clients retrying together do not arrive together.
fn backoff(attempt: u32) -> Duration {
    let base = 250.0 * 2f64.powi(attempt.saturating_sub(1).min(6) as i32);
    Duration::from_millis((base * (0.75 + fastrand::f64() * 0.5)) as u64)
}

/// The backend's bearer key, read from the variable named by `api_key_env`.
pub fn read_key(config: &BackendConfig) -> Option<Secret> {
    Some(config.api_key_env.trim())
        .filter(|name| !name.is_empty())
        .and_then(|name| std::env::var(name).ok())
        .filter(|key| !key.trim().is_empty())
        .map(|key| Secret::new(key.trim()))
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= cap {
            body.truncate(cap);
            break;
        }
    }
    body
}

/// A short, user-facing reason for a failed connection, without URLs or internals.
fn connect_reason(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::TimedOut => "connection timed out".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                _ => io.to_string(),
            };
        }
        let text = current.to_string();
        if text.contains("dns error") {
            return "host name not found".into();
        }
        source = current.source();
    }
    if error.is_timeout() {
        "connection timed out".into()
    } else {
        "connection failed".into()
    }
}
