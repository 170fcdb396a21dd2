//! Runs a routing decision: which backends are called in which order with which
//! prompts, and how their answer reaches the client (JSON or SSE relay). Every path
//! ends the session record exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use tracing::Instrument;

use crate::capture;
use crate::config::MissingKey;
use crate::enrich;
use crate::error::Error;
use crate::openai::ChatRequest;
use crate::prompts::{PromptId, PromptSet};
use crate::relay::{self, RelayOptions};
use crate::route::{Decision, Route};
use crate::session::{Outcome, Session, millis};
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
    note_decision(&mut session, &decision);
    let prompts = state.prompts.load_full();
    let (route, skip_search) = match effective_route(&state, decision.route) {
        Ok((route, note)) => {
            if let Some(record) = session.record() {
                record.route = Some(route.as_str());
                record.route_fallback = note.clone();
            }
            (route, note.is_some())
        }
        Err(error) => return with_route(fail(session, None, error), decision.route),
    };
    tracing::Span::current().record("route", route.as_str());
    let response = match route {
        Route::Primary => {
            let system = prompts.render(PromptId::PrimarySystem, &[("date", &enrich::today())]);
            let body = shape::for_local(&request, &state.primary.model, &system);
            let failover = (state.config.failover.primary_to_xai
                && state.xai.missing_key().is_none())
            .then(|| Failover {
                upstream: &state.xai,
                route: Route::Xai,
                body: xai_body(&state, &prompts, &request),
            });
            answer(&state, &state.primary, body, &request, session, failover).await
        }
        Route::Meta => {
            let system = prompts.render(PromptId::MetaSystem, &[("date", &enrich::today())]);
            let mut body = shape::for_local(&request, &state.primary.model, &system);
            if state.config.meta.disable_thinking {
                shape::disable_thinking(&mut body);
            }
            answer(&state, &state.primary, body, &request, session, None).await
        }
        Route::Xai => {
            let body = xai_body(&state, &prompts, &request);
            let failover = state.config.failover.xai_to_primary.then(|| {
                let system = prompts.render(PromptId::PrimarySystem, &[("date", &enrich::today())]);
                Failover {
                    upstream: &state.primary,
                    route: Route::Primary,
                    body: shape::for_local(&request, &state.primary.model, &system),
                }
            });
            answer(&state, &state.xai, body, &request, session, failover).await
        }
        Route::Enrich => enrich_route(state.clone(), prompts, request, session, skip_search).await,
    };
    with_route(response, route)
}

/// Names the route on the response, unless a failover already named the one that
/// really answered.
/// The body for xAI answering `request` itself (COMPLEX, or a failover).
fn xai_body(state: &AppState, prompts: &PromptSet, request: &ChatRequest) -> Map<String, Value> {
    let system = prompts.render(PromptId::XaiSystem, &[("date", &enrich::today())]);
    shape::for_xai(request, &state.xai.model, &system, &state.config.xai)
}

fn with_route(mut response: Response, route: Route) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(ROUTE_HEADER) {
        headers.insert(ROUTE_HEADER, HeaderValue::from_static(route.as_str()));
    }
    response
}

/// The route that will answer, given what is configured. Without an xAI key, COMPLEX
/// is answered by the primary and ENRICH skips its search hop (the note says so), or
/// both are refused when `xai.missing_key = "error"`.
fn effective_route(state: &AppState, route: Route) -> Result<(Route, Option<String>), Error> {
    let Some(variable) = state
        .xai
        .missing_key()
        .filter(|_| matches!(route, Route::Xai | Route::Enrich))
    else {
        return Ok((route, None));
    };
    let variable = variable.to_string();
    match (state.config.xai.missing_key, route) {
        (MissingKey::Error, _) => Err(Error::XaiNotConfigured { variable }),
        (MissingKey::Fallback, Route::Xai) => Ok((
            Route::Primary,
            Some(format!(
                "xai has no API key ({variable} is not set); answered by primary"
            )),
        )),
        (MissingKey::Fallback, _) => Ok((
            route,
            Some(format!(
                "xai has no API key ({variable} is not set); answered without gathered context"
            )),
        )),
    }
}

fn note_decision(session: &mut Session, decision: &Decision) {
    if let Some(record) = session.record() {
        record.route = Some(decision.route.as_str());
        record.classification = decision.classification.map(|l| l.as_str().to_string());
        record
            .classification_raw
            .clone_from(&decision.classification_raw);
        record.classification_ms = decision.classification_ms;
        record
            .classification_fallback
            .clone_from(&decision.classification_fallback);
        record.meta_match.clone_from(&decision.meta_match);
        record.classification_cached = decision.classification_cached;
    }
}

/// ENRICH: the search hop, then the primary answers with what it found. A streaming
/// client gets its headers at once and keep-alive comments while the search runs
/// (tunnels cut a response that stays silent for 100 s).
async fn enrich_route(
    state: Arc<AppState>,
    prompts: Arc<PromptSet>,
    request: ChatRequest,
    mut session: Session,
    skip_search: bool,
) -> Response {
    if !request.stream {
        let drained = state.drained();
        let system = tokio::select! {
            biased;
            () = drained => return fail(session, None, Error::ShuttingDown),
            system = search_hop(&state, &prompts, &request, &mut session, skip_search) => system,
        };
        let body = shape::for_local(&request, &state.primary.model, &system);
        return answer(&state, &state.primary, body, &request, session, None).await;
    }
    let keep_alive = keep_alive(&state);
    let options = relay_options(&state, &request);
    let prepare = async move {
        // Shutdown must not wait for a search that can take 90 s.
        let drained = state.drained();
        let system = tokio::select! {
            biased;
            () = drained => None,
            system = search_hop(&state, &prompts, &request, &mut session, skip_search) => Some(system),
        };
        let Some(system) = system else {
            let step = session.push_step(state.primary.step_record("answer", "/chat/completions", &Map::new(), "messages"));
            return relay::Prepared {
                result: Err(Error::ShuttingDown),
                session,
                step,
                called_at: Instant::now(),
            };
        };
        let body = shape::for_local(&request, &state.primary.model, &system);
        let step = session.push_step(state.primary.step_record("answer", "/chat/completions", &body, "messages"));
        let called_at = Instant::now();
        let result = tokio::select! {
            biased;
            () = state.drained() => Err(Error::ShuttingDown),
            result = call(&state, &state.primary, &body, &request, &mut session, step) => result,
        };
        let result = result.and_then(|answer| match answer {
            Answer::Stream(stream) => Ok(stream),
            Answer::Json(_) => Err(Error::UpstreamProtocol {
                backend: state.primary.name,
                reason: "expected an event stream".into(),
            }),
        });
        relay::Prepared {
            result,
            session,
            step,
            called_at,
        }
    }
    .instrument(tracing::Span::current());
    Sse::new(relay::relay_after(prepare, options))
        .keep_alive(keep_alive)
        .into_response()
}

/// Runs the search hop and returns the primary's system prompt: with the gathered
/// context injected, or plain (and a note in the log) when there is none.
async fn search_hop(
    state: &AppState,
    prompts: &PromptSet,
    request: &ChatRequest,
    session: &mut Session,
    skip: bool,
) -> String {
    let plain = prompts.render(PromptId::PrimarySystem, &[("date", &enrich::today())]);
    if skip {
        return plain;
    }
    let note = match enrich::gather(state, prompts, request.messages(), session).await {
        Ok(gathered) if !gathered.text.trim().is_empty() => {
            return enrich::injection(prompts, &gathered);
        }
        Ok(_) => "the search hop found nothing; answered without gathered context".to_string(),
        Err(error) => format!("the search hop failed ({error}); answered without gathered context"),
    };
    if let Some(record) = session.record() {
        record.route_fallback = Some(note);
    }
    plain
}

fn relay_options(state: &AppState, request: &ChatRequest) -> RelayOptions {
    RelayOptions {
        virtual_model: state.virtual_model.clone(),
        include_usage: request.include_usage,
        drained: Box::pin(state.drained()),
    }
}

/// What a backend call produced, before the client's response is built.
enum Answer {
    /// A stream whose first event arrived.
    Stream(relay::OpenStream),
    /// A whole JSON completion, already renamed to the virtual model.
    Json(Vec<u8>),
}

/// Another backend that may answer if the first fails before anything was relayed.
struct Failover<'a> {
    upstream: &'a Upstream,
    route: Route,
    body: Map<String, Value>,
}

/// The response header that says a failover happened (`primary->xai`).
pub const FAILOVER_HEADER: &str = "x-ai-router-failover";

/// Calls `upstream` with the shaped `body` and relays its answer to the client; if it
/// fails before anything was relayed and `failover` is given, that backend answers.
async fn answer(
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
fn fail(mut session: Session, step: Option<usize>, error: Error) -> Response {
    let status: StatusCode = error.status();
    if let Some(record) = step.and_then(|step| session.step(step)) {
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
