//! Runs a routing decision: which backends are called in which order with which
//! prompts, and how their answer reaches the client (JSON or SSE relay). Every path
//! ends the session record exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::capture;
use crate::error::Error;
use crate::openai::ChatRequest;
use crate::relay::{self, RelayOptions};
use crate::route::{Decision, Route};
use crate::session::{Outcome, Session, StepRecord, millis};
use crate::shape;
use crate::state::AppState;
use crate::upstream::{Expect, Upstream};

/// The response header that names the route taken.
pub const ROUTE_HEADER: &str = "x-ai-router-route";

/// Answers `request` as `decision` says and returns the client's response.
pub async fn run(
    state: Arc<AppState>,
    decision: Decision,
    request: ChatRequest,
    mut session: Session,
) -> Response {
    tracing::Span::current().record("route", decision.route.as_str());
    note_decision(&mut session, &decision);
    let prompts = state.prompts.load();
    let mut response = match decision.route {
        Route::Primary => {
            let body =
                shape::for_local(&request, &state.primary.model, &prompts.primary_system.text);
            answer(&state, &state.primary, body, &request, session).await
        }
    };
    response.headers_mut().insert(
        ROUTE_HEADER,
        HeaderValue::from_static(decision.route.as_str()),
    );
    response
}

fn note_decision(session: &mut Session, decision: &Decision) {
    if let Some(record) = session.record() {
        record.route = Some(decision.route.as_str());
        record.classification.clone_from(&decision.classification);
        record
            .classification_raw
            .clone_from(&decision.classification_raw);
        record.classification_ms = decision.classification_ms;
        record
            .classification_fallback
            .clone_from(&decision.classification_fallback);
        record.meta_match.clone_from(&decision.meta_match);
    }
}

/// What a backend call produced, before the client's response is built.
enum Answer {
    /// A stream whose first event arrived.
    Stream(relay::OpenStream),
    /// A whole JSON completion, already renamed to the virtual model.
    Json(Vec<u8>),
}

/// Calls `upstream` with the shaped `body` and relays its answer to the client.
async fn answer(
    state: &AppState,
    upstream: &Upstream,
    body: Map<String, Value>,
    request: &ChatRequest,
    mut session: Session,
) -> Response {
    tracing::Span::current().record("backend", upstream.name);
    let step = session.push_step(step_record("answer", upstream, &body));
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
            let options = RelayOptions {
                virtual_model: state.virtual_model.clone(),
                include_usage: request.include_usage,
                drained: Box::pin(state.drained()),
            };
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
        Err(error) => fail(session, step, error),
    }
}

/// The backend call up to the point where the client's response can be built.
async fn call(
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
fn keep_alive(state: &AppState) -> KeepAlive {
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
fn fail(mut session: Session, step: usize, error: Error) -> Response {
    let status: StatusCode = error.status();
    if let Some(record) = session.step(step) {
        record.error = Some(error.to_string());
        if let Error::UpstreamStatus {
            error: upstream, ..
        } = &error
        {
            record.status = Some(upstream.status.as_u16());
        }
    }
    session.finish(Outcome::Error, status.as_u16(), Some(error.to_string()));
    error.into_response()
}

/// The step as sent: messages apart from the other parameters, for review agents.
fn step_record(step: &'static str, upstream: &Upstream, body: &Map<String, Value>) -> StepRecord {
    let mut params = body.clone();
    let messages = params.remove("messages").unwrap_or(Value::Null);
    StepRecord {
        step,
        provider: upstream.name,
        url: upstream.url("/chat/completions"),
        model: upstream.model.clone(),
        messages_sent: messages,
        params: Value::Object(params),
        ..StepRecord::default()
    }
}
