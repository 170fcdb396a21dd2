//! Calls one backend and relays its answer to the client: the JSON or SSE response, the
//! failover to the other backend when the first fails before anything was relayed, and
//! the error response otherwise. Every path ends the session record exactly once.

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::edge::state::AppState;
use crate::error::Error;
use crate::openai::chat::ChatRequest;
use crate::proxy::pipeline::ROUTE_HEADER;
use crate::proxy::relay::{self, RelayOptions};
use crate::record::capture;
use crate::record::session::{Outcome, Session, millis};
use crate::routing::decision::Route;
use crate::upstream::backend::{Expect, Upstream};

/// What the relay needs to know about this client and router.
pub(crate) fn relay_options(state: &AppState, request: &ChatRequest) -> RelayOptions {
    RelayOptions {
        virtual_model: state.virtual_model.clone(),
        include_usage: request.include_usage,
        drained: Box::pin(state.drained()),
    }
}

/// What a backend call produced, before the client's response is built.
pub(crate) enum Answer {
    /// A stream whose first event arrived.
    Stream(relay::OpenStream),
    /// A whole JSON completion, already renamed to the virtual model.
    Json(Vec<u8>),
}

/// Another backend that may answer if the first fails before anything was relayed.
pub(crate) struct Failover<'a> {
    pub upstream: &'a Upstream,
    pub route: Route,
    pub body: Map<String, Value>,
}

/// The response header that says a failover happened (`primary->xai`).
pub const FAILOVER_HEADER: &str = "x-ai-router-failover";

/// Calls `upstream` with the shaped `body` and relays its answer to the client; if it
/// fails before anything was relayed and `failover` is given, that backend answers.
pub(crate) async fn answer(
    state: &AppState,
    upstream: &Upstream,
    body: Map<String, Value>,
    request: &ChatRequest,
    mut session: Session,
    failover: Option<Failover<'_>>,
) -> Response {
    tracing::Span::current().record("backend", upstream.name);
    let step =
        session.push_step(upstream.step_record("answer", "/chat/completions", &body, "messages"));
    let called_at = Instant::now();
    let drained = state.drained();
    let result = tokio::select! {
        biased;
        () = drained => Err(Error::ShuttingDown),
        result = call(state, upstream, &body, request, &mut session, step) => result,
    };
    if let Some(record) = session.step(step) {
        record.duration_ms = millis(called_at.elapsed());
    }
    match result {
        Ok(Answer::Stream(stream)) => {
            let options = relay_options(state, request);
            let events = relay::relay(stream, session, step, called_at, options);
            Sse::new(events)
                .keep_alive(keep_alive(state))
                .into_response()
        }
        Ok(Answer::Json(body)) => {
            session.finish(Outcome::Ok, 200, None);
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(error) => match failover.filter(|_| worth_failing_over(&error)) {
            Some(other) => {
                let from = upstream.name;
                let note = format!(
                    "{from} failed before answering ({error}); answered by {} (failover)",
                    other.upstream.name
                );
                if let Some(record) = session.step(step) {
                    record.error = Some(error.to_string());
                }
                if let Some(record) = session.record() {
                    record.route = Some(other.route.as_str());
                    record.route_fallback = Some(note);
                }
                let mut response = Box::pin(answer(
                    state,
                    other.upstream,
                    other.body,
                    request,
                    session,
                    None,
                ))
                .await;
                let headers = response.headers_mut();
                let to = other.upstream.name;
                if let Ok(value) = HeaderValue::from_str(&format!("{from}->{to}")) {
                    headers.insert(FAILOVER_HEADER, value);
                }
                headers.insert(ROUTE_HEADER, HeaderValue::from_static(other.route.as_str()));
                response
            }
            None => fail(session, Some(step), error),
        },
    }
}

/// Failures after which another backend may answer: the backend could not be reached,
/// went silent, broke the protocol, or failed on its side (429, 5xx). A 4xx is about
/// the request and would fail anywhere.
fn worth_failing_over(error: &Error) -> bool {
    match error {
        Error::UpstreamUnreachable { .. }
        | Error::UpstreamTimeout { .. }
        | Error::UpstreamProtocol { .. } => true,
        Error::UpstreamStatus { error, .. } => {
            error.status.as_u16() == 429 || error.status.is_server_error()
        }
        _ => false,
    }
}

/// The backend call up to the point where the client's response can be built.
pub(crate) async fn call(
    state: &AppState,
    upstream: &Upstream,
    body: &Map<String, Value>,
    request: &ChatRequest,
    session: &mut Session,
    step: usize,
) -> Result<Answer, Error> {
    let expect = if request.stream {
        Expect::Stream
    } else {
        Expect::Json
    };
    let id = session.id().to_string();
    let response = upstream
        .post("/chat/completions", body, &id, expect)
        .await?;
    if let Some(record) = session.step(step) {
        record.status = Some(response.status().as_u16());
    }
    if request.stream {
        return relay::open(upstream, response).await.map(Answer::Stream);
    }
    read_completion(state, upstream, response, session, step)
        .await
        .map(Answer::Json)
}

/// A `: keep-alive` comment after `server.sse_keepalive_secs` of silence on a stream.
pub(crate) fn keep_alive(state: &AppState) -> KeepAlive {
    KeepAlive::new()
        .interval(Duration::from_secs(state.config.server.sse_keepalive_secs))
        .text("keep-alive")
}

/// Reads a non-streamed completion, captures it and renames its model.
async fn read_completion(
    state: &AppState,
    upstream: &Upstream,
    response: reqwest::Response,
    session: &mut Session,
    step: usize,
) -> Result<Vec<u8>, Error> {
    let bytes = tokio::time::timeout(upstream.timeout, response.bytes())
        .await
        .map_err(|_| upstream.timed_out(upstream.timeout))?
        .map_err(|e| Error::UpstreamProtocol {
            backend: upstream.name,
            // Without the URL: the client must not learn our internal addresses.
            reason: format!("the answer could not be read: {}", e.without_url()),
        })?;
    let mut completion: Value =
        serde_json::from_slice(&bytes).map_err(|_| Error::UpstreamProtocol {
            backend: upstream.name,
            reason: "the answer is not JSON".into(),
        })?;
    if let Some(record) = session.step(step) {
        capture::completion(record, &completion);
    }
    if let Some(fields) = completion.as_object_mut() {
        fields.insert("model".into(), Value::from(&*state.virtual_model));
    }
    Ok(completion.to_string().into_bytes())
}

/// Ends the session with `error` and renders it for the client.
pub(crate) fn fail(mut session: Session, step: Option<usize>, error: Error) -> Response {
    let status: StatusCode = error.status();
    if let Some(record) = step.and_then(|step| session.step(step)) {
        record.error = Some(error.to_string());
        record.set_failed_status(&error);
    }
    session.finish(Outcome::Error, status.as_u16(), Some(error.to_string()));
    error.into_response()
}
