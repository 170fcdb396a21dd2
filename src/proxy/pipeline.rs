//! Runs a routing decision: which backends are called in which order with which
//! prompts, and how their answer reaches the client (JSON or SSE relay). Every path
//! ends the session record exactly once.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderValue;
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use tracing::Instrument;

use crate::config::MissingKey;
use crate::edge::state::AppState;
use crate::error::Error;
use crate::openai::chat::ChatRequest;
use crate::prompts::{PromptId, PromptSet};
use crate::proxy::execute::{Answer, Failover, answer, call, fail, keep_alive, relay_options};
use crate::proxy::relay;
use crate::proxy::search;
use crate::proxy::shape;
use crate::record::session::Session;
use crate::routing::decision::{Decision, Route};

/// The response header that names the route taken.
pub const ROUTE_HEADER: &str = "x-ai-router-route";

/// Answers `request` as `decision` says and returns the client's response.
pub async fn run(
    state: Arc<AppState>,
    prompts: Arc<PromptSet>,
    decision: Decision,
    request: ChatRequest,
    mut session: Session,
) -> Response {
    note_decision(&mut session, &decision);
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
            let system = prompts.render(PromptId::PrimarySystem, &[("date", &search::today())]);
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
            let system = prompts.render(PromptId::MetaSystem, &[("date", &search::today())]);
            let mut body = shape::for_local(&request, &state.primary.model, &system);
            if state.config.meta.disable_thinking {
                shape::disable_thinking(&mut body);
            }
            answer(&state, &state.primary, body, &request, session, None).await
        }
        Route::Xai => {
            let body = xai_body(&state, &prompts, &request);
            let failover = state.config.failover.xai_to_primary.then(|| {
                let system = prompts.render(PromptId::PrimarySystem, &[("date", &search::today())]);
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

/// The body for xAI answering `request` itself (COMPLEX, or a failover).
fn xai_body(state: &AppState, prompts: &PromptSet, request: &ChatRequest) -> Map<String, Value> {
    let system = prompts.render(PromptId::XaiSystem, &[("date", &search::today())]);
    shape::for_xai(request, &state.xai.model, &system, &state.config.xai)
}

/// Names the route on the response, unless a failover already named the one that
/// really answered.
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
pub fn effective_route(state: &AppState, route: Route) -> Result<(Route, Option<String>), Error> {
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
    let plain = prompts.render(PromptId::PrimarySystem, &[("date", &search::today())]);
    if skip {
        return plain;
    }
    let note = match search::gather(state, prompts, request.messages(), session).await {
        Ok(gathered) if !gathered.text.trim().is_empty() => {
            return search::injection(prompts, &gathered);
        }
        Ok(_) => "the search hop found nothing; answered without gathered context".to_string(),
        Err(error) => format!("the search hop failed ({error}); answered without gathered context"),
    };
    if let Some(record) = session.record() {
        record.route_fallback = Some(note);
    }
    plain
}
