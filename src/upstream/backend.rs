//! One backend: its HTTP clients (`clients`), model, key, timeouts and pool of endpoints,
//! built once at start-up, and the HTTP of one attempt on one endpoint: the headers it
//! sends, and how connect failures, silence and error statuses become `Error`s.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::config::BackendConfig;
use crate::error::Error;
use crate::error::UpstreamError;
use crate::names::BackendId;
use crate::secret::Secret;

use super::clients::{Clients, refused_redirect};
use super::pool::{Endpoint, Pool};

/// Largest error body read from a backend; the rest is not worth waiting for.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The longest `Retry-After` taken from a backend, in seconds.
const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// A configured OpenAI-compatible backend.
#[derive(Debug)]
pub struct Backend {
    /// Its name under `[backends]`.
    pub id: BackendId,
    /// Model name the backend serves.
    pub model: String,
    /// Longest wait for a stream's first byte, and between two chunks.
    pub timeout: Duration,
    /// Longest wait for a whole non-streamed answer.
    pub response_timeout: Duration,
    /// Retries of a refused connection, 429 or 5xx before anything was relayed.
    pub retries: u32,
    /// Failures in a row that eject an endpoint.
    pub failure_threshold: u32,
    /// Largest whole answer, and largest single stream event, read from it.
    pub max_response_bytes: usize,
    /// Its endpoints.
    pub pool: Pool,
    api_key_env: String,
    api_key: Option<Secret>,
    /// Its HTTP clients: the calling thread's, the probes'.
    clients: Clients,
}

impl Backend {
    /// Builds the backend from its config, with a client for each of `workers` worker
    /// threads; the key is read from `api_key_env` now.
    pub fn new(
        id: BackendId,
        config: &BackendConfig,
        failure_threshold: u32,
        workers: usize,
    ) -> Result<Self, reqwest::Error> {
        let clients = Clients::new(
            &id,
            Duration::from_secs(config.connect_timeout_secs),
            config.base_url.iter(),
            workers,
        )?;
        Ok(Backend {
            id,
            model: config.model.clone(),
            timeout: Duration::from_secs(config.timeout_secs),
            response_timeout: Duration::from_secs(config.response_timeout_secs),
            retries: config.retries,
            failure_threshold: failure_threshold.max(1),
            max_response_bytes: config.max_response_bytes,
            pool: Pool::new(config.base_url.iter()),
            api_key_env: config.api_key_env.trim().to_string(),
            api_key: read_key(config),
            clients,
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

    /// Its key, to keep out of session logs.
    pub fn key(&self) -> Option<&Secret> {
        self.api_key.as_ref()
    }

    /// `error` with this backend's key, wherever the backend quoted it, as `***`: what a
    /// backend says goes to the client and the log.
    pub fn redact(&self, error: UpstreamError) -> UpstreamError {
        redact(error, self.api_key.as_ref())
    }

    /// POSTs `body` to `path` on `endpoint`, waiting until `deadline` for the headers of
    /// a successful answer. An error status becomes `Error::UpstreamStatus` with the
    /// backend's message; a failure comes with the backend's `Retry-After`, if any.
    pub(super) async fn post(
        &self,
        endpoint: &Endpoint,
        path: &str,
        body: bytes::Bytes,
        request_id: &str,
        deadline: tokio::time::Instant,
        wait: Duration,
    ) -> Result<reqwest::Response, (Error, Option<Duration>)> {
        let url = self.target(endpoint, path).map_err(|e| (e, None))?;
        let send = self
            .clients
            .for_call()
            .post(url)
            .headers(self.headers(request_id))
            .body(body)
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
        let mut error = self.status_error(response).await;
        if let Error::UpstreamStatus {
            error: upstream, ..
        } = &mut error
        {
            // A client told to wait (a 429 or 503 after the retries) waits as long as the
            // backend asked, not its SDK's default.
            upstream.retry_after = retry_after.map(|wait| wait.as_secs());
        }
        Err((error, retry_after))
    }

    /// GETs `path` on `endpoint` with one overall deadline (probes).
    pub async fn get(
        &self,
        endpoint: &Endpoint,
        path: &str,
        wait: Duration,
    ) -> Result<reqwest::Response, Error> {
        let send = self
            .clients
            .for_probe()
            .get(self.target(endpoint, path)?)
            .headers(self.headers(""))
            .send();
        match tokio::time::timeout(wait, send).await {
            Err(_) => Err(self.timed_out(wait)),
            Ok(Err(e)) => Err(self.send_error(&e, wait)),
            Ok(Ok(response)) if response.status().is_success() => Ok(response),
            Ok(Ok(response)) => Err(self.status_error(response).await),
        }
    }

    /// Builds this thread's client now, before the thread serves anything.
    pub fn prepare_thread(&self) {
        self.clients.prepare_thread();
    }

    fn target(&self, endpoint: &Endpoint, path: &str) -> Result<reqwest::Url, Error> {
        endpoint.url(path).ok_or_else(|| Error::UpstreamProtocol {
            backend: self.id.clone(),
            reason: "bad URL".into(),
        })
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
            backend: self.id.clone(),
            secs: wait.as_secs(),
        }
    }

    /// An `UpstreamProtocol` for this backend.
    pub fn protocol_error(&self, reason: impl Into<String>) -> Error {
        Error::UpstreamProtocol {
            backend: self.id.clone(),
            reason: reason.into(),
        }
    }

    fn send_error(&self, error: &reqwest::Error, wait: Duration) -> Error {
        if error.is_timeout() && !error.is_connect() {
            return self.timed_out(wait);
        }
        if error.is_redirect() {
            return self.protocol_error(refused_redirect(error));
        }
        Error::UpstreamUnreachable {
            backend: self.id.clone(),
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
            backend: self.id.clone(),
            error: Box::new(self.redact(UpstreamError::parse(&self.id, status, &body))),
        }
    }
}

/// `error` with `key` as `***` in its message. Keys shorter than 8 characters are left:
/// they would blank out ordinary words.
pub fn redact(mut error: UpstreamError, key: Option<&Secret>) -> UpstreamError {
    if let Some(key) = key.filter(|k| k.expose().len() >= 8) {
        crate::secret::redact_all(&mut error.message, std::slice::from_ref(key));
    }
    error
}

/// The backend's bearer key, read from the variable named by `api_key_env`.
pub fn read_key(config: &BackendConfig) -> Option<Secret> {
    Some(config.api_key_env.trim())
        .filter(|name| !name.is_empty())
        .and_then(|name| std::env::var(name).ok())
        .filter(|key| !key.trim().is_empty())
        .map(|key| Secret::new(key.trim()))
}

/// Up to `cap` bytes of `response`'s body.
pub(super) async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
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
