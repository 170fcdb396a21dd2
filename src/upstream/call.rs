//! The one function that calls a backend, used by the classifier, the search hop and
//! the answer alike: pick an endpoint, POST, wait for the headers, read the whole JSON
//! answer or the stream's first event, and record it all in the request's step. Until
//! then nothing has reached the client, so a failure that `outcome` says may help is
//! tried on the pool's other endpoints at once, then again after a backoff (`retries`),
//! and an attempt on an endpoint ejected while it waits moves to another (`abandon`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::record::log::FailedAttempt;
use crate::record::session::{Session, millis};

use super::Backend;
use super::abandon;
use super::outcome;
use super::pool::{Endpoint, Lease};
use super::stream::{self, OpenStream};

/// How an answer is awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A JSON body that arrives only when the backend is done.
    Json,
    /// The same, a completion the client will get as the backend wrote it.
    Completion,
    /// An SSE stream whose headers come first.
    Stream,
}

/// What a call produced, before anything reaches the client.
pub enum Reply {
    /// A whole JSON answer.
    Json(Value),
    /// A whole JSON answer as the backend wrote it (`Expect::Completion`): known to be
    /// JSON, not yet read into a `Value`.
    Completion(Bytes),
    /// A stream whose first event arrived.
    Stream(OpenStream),
}

/// Calls `backend` with `body` on `path` and records the call in `session`'s step
/// `step`: the endpoint's URL, the status, the duration and any error. The headers
/// are awaited within `timeout` (a stream) or `response_timeout` (JSON), retries
/// included; the rest of the answer (the first event, or the whole JSON body) within
/// `timeout` after them.
pub async fn call(
    backend: &Backend,
    path: &str,
    body: &Map<String, Value>,
    expect: Expect,
    session: &mut Session,
    step: usize,
) -> Result<Reply, Error> {
    let started = Instant::now();
    let result = attempts(backend, path, body, expect, session, step).await;
    if let Some(record) = session.step(step) {
        record.duration_ms = millis(started.elapsed());
        if let Err(error) = &result {
            record.error = Some(error.to_string());
            record.set_failed_status(error);
        }
    }
    result
}

/// [`call`] for a whole JSON answer, all of it within `within` (a hop's own bound, on
/// top of the backend's timeouts); running out reads as the backend silent for
/// `reported` (the bound the admin set, when `within` is what is left of it).
pub async fn call_json_within(
    backend: &Backend,
    path: &str,
    body: &Map<String, Value>,
    within: Duration,
    reported: Duration,
    session: &mut Session,
    step: usize,
) -> Result<Value, Error> {
    let reply = tokio::time::timeout(
        within,
        call(backend, path, body, Expect::Json, session, step),
    )
    .await;
    match reply {
        Err(_) => Err(backend.timed_out(reported)),
        Ok(Err(error)) => Err(error),
        Ok(Ok(Reply::Json(reply))) => Ok(reply),
        Ok(Ok(Reply::Completion(body))) => Ok(parse_json(backend, &body)?),
        Ok(Ok(Reply::Stream(_))) => Err(backend.protocol_error("expected JSON")),
    }
}

async fn attempts(
    backend: &Backend,
    path: &str,
    body: &Map<String, Value>,
    expect: Expect,
    session: &mut Session,
    step: usize,
) -> Result<Reply, Error> {
    let bytes = Bytes::from(
        serde_json::to_vec(body)
            .map_err(|e| backend.protocol_error(format!("request could not be encoded: {e}")))?,
    );
    let wait = match expect {
        Expect::Json | Expect::Completion => backend.response_timeout,
        Expect::Stream => backend.timeout,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let request_id = session.id().to_string();
    let mut tried: Vec<usize> = Vec::new();
    let mut retries = 0;
    let mut last: Option<(Error, Option<Duration>)> = None;
    // The attempt that failed before the next one is made, for the step's record.
    let mut failed: Option<FailedAttempt> = None;
    loop {
        let lease = match backend.pool.pick(&tried) {
            Some(lease) => lease,
            // Every endpoint was tried once: back off, then try the best one again.
            None => {
                let Some((error, retry_after)) = last.take() else {
                    return Err(Error::NoHealthyEndpoint {
                        backend: backend.id.clone(),
                        endpoints: backend.pool.len(),
                    });
                };
                retries += 1;
                let delay = retry_after.unwrap_or_else(|| backoff(retries));
                if retries > backend.retries || tokio::time::Instant::now() + delay >= deadline {
                    return Err(error);
                }
                tracing::warn!(backend = %backend.id, retry = retries, delay_ms = millis(delay), error = %error, "retrying");
                tokio::time::sleep(delay).await;
                tried.clear();
                match backend.pool.pick(&tried) {
                    Some(lease) => lease,
                    None => return Err(error),
                }
            }
        };
        let url = format!("{}{path}", lease.endpoint().display);
        if let Some(record) = session.step(step) {
            // Each attempt is recorded afresh: the step shows the last one, and lists
            // those before it.
            record.failed_attempts.extend(failed.take());
            record.url.clone_from(&url);
            record.status = None;
            record.backend_status = None;
        }
        let index = lease.index();
        let ejections = lease.ejections();
        let started = Instant::now();
        let one = attempt(
            backend,
            lease,
            path,
            bytes.clone(),
            &request_id,
            expect,
            deadline,
            wait,
            session,
            step,
        );
        let outcome = abandon::unless_ejected(&backend.pool, index, &tried, ejections, one)
            .await
            .unwrap_or_else(|| Err((abandoned(backend, &url), None)));
        match outcome {
            Ok(reply) => return Ok(reply),
            Err((error, retry_after)) => {
                if !outcome::judge(&error).retry {
                    return Err(error);
                }
                failed = Some(FailedAttempt {
                    url,
                    error: error.to_string(),
                    duration_ms: millis(started.elapsed()),
                });
                tried.push(index);
                last = Some((error, retry_after));
            }
        }
    }
}

/// The error of an attempt given up because its endpoint was ejected while it waited:
/// unreachable, which `outcome` retries on another endpoint. Its health is not told:
/// the ejection already said it all.
fn abandoned(backend: &Backend, url: &str) -> Error {
    tracing::warn!(backend = %backend.id, url, "gave up a call on an ejected endpoint; trying another");
    Error::UpstreamUnreachable {
        backend: backend.id.clone(),
        reason: "it went silent and was ejected while the call waited".into(),
    }
}

/// One try on the endpoint `lease` holds; its health learns the result.
#[expect(
    clippy::too_many_arguments,
    reason = "one attempt's inputs, passed through once"
)]
async fn attempt(
    backend: &Backend,
    lease: Lease,
    path: &str,
    bytes: Bytes,
    request_id: &str,
    expect: Expect,
    deadline: tokio::time::Instant,
    wait: Duration,
    session: &mut Session,
    step: usize,
) -> Result<Reply, (Error, Option<Duration>)> {
    let started = Instant::now();
    let endpoint = lease.shared();
    let posted = backend
        .post(&endpoint, path, bytes, request_id, deadline, wait)
        .await;
    let response = match posted {
        Ok(response) => response,
        Err((error, retry_after)) => {
            learn(backend, &endpoint, &error);
            return Err((error, retry_after));
        }
    };
    if let Some(record) = session.step(step) {
        record.status = Some(response.status().as_u16());
    }
    let latency = started.elapsed();
    let reply = match expect {
        Expect::Stream => stream::open(backend, response, lease)
            .await
            .map(Reply::Stream),
        Expect::Json => read_json(backend, response)
            .await
            .and_then(|body| parse_json(backend, &body))
            .map(Reply::Json),
        Expect::Completion => read_json(backend, response)
            .await
            .and_then(|body| checked_json(backend, body))
            .map(Reply::Completion),
    };
    match &reply {
        Ok(_) => endpoint.success(&backend.id, latency),
        Err(error) => learn(backend, &endpoint, error),
    }
    reply.map_err(|error| (error, None))
}

/// Tells the endpoint about a failure, when `outcome` says it counts.
fn learn(backend: &Backend, endpoint: &Endpoint, error: &Error) {
    if outcome::judge(error).unhealthy {
        endpoint.failure(&backend.id, &error.to_string(), backend.failure_threshold);
    }
}

/// Reads a whole answer, within the backend's idle timeout and a size bound.
async fn read_json(backend: &Backend, response: reqwest::Response) -> Result<Bytes, Error> {
    let limit = backend.max_response_bytes;
    let too_large = || {
        backend.protocol_error(format!(
            "the answer is larger than {limit} bytes (max_response_bytes)"
        ))
    };
    // Without the URL: the client must not learn our internal addresses.
    let unreadable = |e: reqwest::Error| {
        backend.protocol_error(format!("the answer could not be read: {}", e.without_url()))
    };
    let read = async {
        match response.content_length() {
            // A declared length is enforced by the HTTP client: read it in one piece.
            Some(length) if length > limit as u64 => Err(too_large()),
            Some(_) => response.bytes().await.map_err(unreadable),
            None => {
                let mut response = response;
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(unreadable)? {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(body))
            }
        }
    };
    tokio::time::timeout(backend.timeout, read)
        .await
        .map_err(|_| backend.timed_out(backend.timeout))?
}

/// `body` read as JSON.
fn parse_json(backend: &Backend, body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|_| backend.protocol_error("the answer is not JSON"))
}

/// `body`, once known to be JSON (checked without building anything: its reader parses
/// it next).
fn checked_json(backend: &Backend, body: Bytes) -> Result<Bytes, Error> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
        true => Ok(body),
        false => Err(backend.protocol_error("the answer is not JSON")),
    }
}

/// The wait before retry `attempt`: 250 ms, doubling, with ±25 % jitter so that many
/// clients retrying together do not arrive together.
fn backoff(attempt: u32) -> Duration {
    let base = 250.0 * 2f64.powi(attempt.saturating_sub(1).min(6) as i32);
    Duration::from_millis((base * (0.75 + fastrand::f64() * 0.5)) as u64)
}
