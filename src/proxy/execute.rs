//! Calls the routes that answer a request — the first, then its failover routes in
//! order while a failure happened before anything reached the client — and turns what
//! came back into the client's response: a JSON answer, an SSE relay, or an error.
//! Routes with a search hop run it first. Every path ends the session record once.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};
use tracing::Instrument;

use super::relay::{self, Prepared, RelayOptions};
use super::search::{self, Gathered};
use super::{FAILOVER_HEADER, Proxy, ROUTE_HEADER, shape};
use crate::error::Error;
use crate::names::{BackendId, Step};
use crate::openai::ChatRequest;
use crate::prompts::{PromptSet, today};
use crate::record::capture::{self, ChunkView};
use crate::record::log::Outcome;
use crate::record::session::{Session, millis};
use crate::routing::Route;
use crate::routing::answering::Answering;
use crate::upstream::{Expect, Reply, call, outcome};

/// What the answering routes produced, before the client's response is built.
struct Attempted {
    result: Result<Reply, Error>,
    /// The step of the call whose result this is.
    step: usize,
    called_at: Instant,
    /// The route that answered (or failed last).
    route: Arc<Route>,
    /// The backends that failed before it, in order.
    failed: Vec<BackendId>,
}

/// Calls the answering route, then each failover route in turn while the failure is one
/// another backend may help with. `gathered` is the search hop's findings, if any.
async fn attempt(
    proxy: &Proxy,
    prompts: &PromptSet,
    answering: &Answering,
    request: &ChatRequest,
    gathered: Option<&Gathered>,
    session: &mut Session,
) -> Attempted {
    let mut routes = std::iter::once(&answering.route).chain(&answering.failover);
    let mut route = &answering.route;
    routes.next();
    let mut failed = Vec::new();
    loop {
        let (step, called_at, result) =
            attempt_route(proxy, prompts, route, request, gathered, session).await;
        let next = match &result {
            Err(error) if outcome::judge(error).failover => routes.next(),
            _ => None,
        };
        let (Some(next), Err(error)) = (next, &result) else {
            return Attempted {
                result,
                step,
                called_at,
                route: route.clone(),
                failed,
            };
        };
        let note = format!(
            "{} failed before answering ({error}); answered by {} (failover)",
            route.backend, next.backend
        );
        if let Some(decision) = session.decision() {
            decision.route = Some(next.name.clone());
            decision.route_fallback = Some(note);
        }
        failed.push(route.backend.clone());
        route = next;
    }
}

/// One route's call: its body shaped, recorded as an `answer` step, raced with the end
/// of shutdown's grace period.
async fn attempt_route(
    proxy: &Proxy,
    prompts: &PromptSet,
    route: &Route,
    request: &ChatRequest,
    gathered: Option<&Gathered>,
    session: &mut Session,
) -> (usize, Instant, Result<Reply, Error>) {
    let called_at = Instant::now();
    let Some(backend) = proxy.backends.get(&route.backend) else {
        // The config is validated: every route names a backend that exists.
        let step = session.push_sending(Step::Answer, &route.backend, "", &Map::new(), "messages");
        let error = Error::UpstreamProtocol {
            backend: route.backend.clone(),
            reason: "not configured".into(),
        };
        return (step, called_at, Err(error));
    };
    tracing::Span::current().record("backend", backend.id.as_str());
    let mut system = prompts.render(&route.prompt, &[("date", &today())]);
    if let (Some(gathered), Some(hop)) = (gathered, &route.search) {
        system = search::injection(prompts, hop, &system, gathered);
    }
    let body = shape::for_route(request, route, &backend.model, &system);
    let step = session.push_sending(Step::Answer, &backend.id, &backend.model, &body, "messages");
    let expect = if request.stream {
        Expect::Stream
    } else {
        Expect::Completion
    };
    // Boxed: the call (reqwest's future inside) is the largest part of a request's state,
    // and every future around it would otherwise be copied with it as it is moved.
    let result = tokio::select! {
        biased;
        () = proxy.drain.drained() => Err(Error::ShuttingDown),
        result = Box::pin(call(backend, "/chat/completions", &body, expect, session, step)) => result,
    };
    if let Some(record) = session.step(step) {
        record.duration_ms = millis(called_at.elapsed());
    }
    (step, called_at, result)
}

/// Answers `request` with `answering`'s routes and builds the client's response.
pub(super) async fn answer(
    proxy: &Proxy,
    prompts: &PromptSet,
    answering: &Answering,
    request: &ChatRequest,
    gathered: Option<&Gathered>,
    mut session: Session,
) -> Response {
    let attempted = attempt(proxy, prompts, answering, request, gathered, &mut session).await;
    let mut response = match attempted.result {
        Ok(Reply::Stream(stream)) => {
            let options = relay_options(proxy, request, &mut session);
            let events = relay::relay(
                stream,
                session,
                attempted.step,
                attempted.called_at,
                options,
            );
            Sse::new(events)
                .keep_alive(keep_alive(proxy))
                .into_response()
        }
        Ok(Reply::Completion(body)) => {
            let shown = shown_model(proxy, &mut session);
            let backend = &attempted.route.backend;
            json_answer(proxy, backend, &body, &shown, session, attempted.step)
        }
        Ok(Reply::Json(completion)) => {
            let shown = shown_model(proxy, &mut session);
            value_answer(proxy, completion, &shown, session, attempted.step)
        }
        Err(error) => fail(session, Some(attempted.step), error),
    };
    let headers = response.headers_mut();
    if !attempted.failed.is_empty() {
        let chain: Vec<&str> = attempted
            .failed
            .iter()
            .chain([&attempted.route.backend])
            .map(|b| b.as_str())
            .collect();
        if let Ok(value) = HeaderValue::from_str(&chain.join("->")) {
            headers.insert(FAILOVER_HEADER, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&attempted.route.name) {
        headers.insert(ROUTE_HEADER, value);
    }
    response
}

/// A whole JSON answer from `backend` (a completion, or a passed-through path's answer):
/// captured for the log, renamed to `shown`. Passed on as the backend wrote it, with only
/// `model` replaced, when it reads as a completion view; read into a `Value` otherwise.
pub(super) fn json_answer(
    proxy: &Proxy,
    backend: &BackendId,
    body: &Bytes,
    shown: &str,
    mut session: Session,
    step: usize,
) -> Response {
    let view = ChunkView::parse_bytes(body).filter(|view| view.error.is_none());
    let Some((span, view)) = view.and_then(|view| Some((view.model_span(body)?, view))) else {
        return match serde_json::from_slice(body) {
            Ok(value) => value_answer(proxy, value, shown, session, step),
            Err(_) => fail(session, Some(step), backend_error(backend)),
        };
    };
    if let Some(record) = session.step(step) {
        capture::completion_view(record, &view, proxy.answer_cap);
    }
    let model = relay::json_string_body(shown);
    let mut out = Vec::with_capacity(body.len() + model.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(model.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    session.finish(Outcome::Ok, 200, None);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// What an answer that is not JSON is (`call` checked it, so only for completeness).
fn backend_error(backend: &BackendId) -> Error {
    Error::UpstreamProtocol {
        backend: backend.clone(),
        reason: "the answer is not JSON".into(),
    }
}

/// [`json_answer`] for an answer read into a `Value`.
pub(super) fn value_answer(
    proxy: &Proxy,
    mut answer: Value,
    shown: &str,
    mut session: Session,
    step: usize,
) -> Response {
    if let Some(record) = session.step(step) {
        capture::completion(record, &answer, proxy.answer_cap);
    }
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("model".into(), Value::from(shown));
    }
    session.finish(Outcome::Ok, 200, None);
    // `to_vec` writes straight into bytes; `to_string` goes through `fmt` per token.
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A route with a search hop: the search, then the answer with what it found. A
/// streaming client gets its headers at once and keep-alive comments while the search
/// runs (tunnels cut a response that stays silent for 100 s).
pub(super) async fn search_then_answer(
    proxy: Arc<Proxy>,
    prompts: Arc<PromptSet>,
    answering: Answering,
    request: ChatRequest,
    mut session: Session,
) -> Response {
    if !request.stream {
        let drained = proxy.drain.drained();
        let gathered = tokio::select! {
            biased;
            () = drained => return fail(session, None, Error::ShuttingDown),
            gathered = search_hop(&proxy, &prompts, &answering, &request, &mut session) => gathered,
        };
        return answer(
            &proxy,
            &prompts,
            &answering,
            &request,
            gathered.as_ref(),
            session,
        )
        .await;
    }
    let keep_alive = keep_alive(&proxy);
    let options = relay_options(&proxy, &request, &mut session);
    let prepare = async move {
        // Shutdown must not wait for a search that can take 90 s.
        let drained = proxy.drain.drained();
        let gathered = tokio::select! {
            biased;
            () = drained => None,
            gathered = search_hop(&proxy, &prompts, &answering, &request, &mut session) => Some(gathered),
        };
        let Some(gathered) = gathered else {
            let route = &answering.route;
            let model = proxy.backends.get(&route.backend).map_or("", |b| b.model.as_str());
            let step = session.push_sending(
                Step::Answer,
                &route.backend,
                model,
                &Map::new(),
                "messages",
            );
            return Prepared {
                result: Err(Error::ShuttingDown),
                session,
                step,
                called_at: Instant::now(),
            };
        };
        let attempted = attempt(
            &proxy,
            &prompts,
            &answering,
            &request,
            gathered.as_ref(),
            &mut session,
        )
        .await;
        let result = attempted.result.and_then(|reply| match reply {
            Reply::Stream(stream) => Ok(stream),
            Reply::Json(_) | Reply::Completion(_) => Err(Error::UpstreamProtocol {
                backend: attempted.route.backend.clone(),
                reason: "expected an event stream".into(),
            }),
        });
        Prepared {
            result,
            session,
            step: attempted.step,
            called_at: attempted.called_at,
        }
    }
    .instrument(tracing::Span::current());
    Sse::new(relay::relay_after(prepare, options))
        .keep_alive(keep_alive)
        .into_response()
}

/// Runs the answering route's search hop and returns what it found, or `None` (with a
/// note in the log) when it found nothing or failed.
async fn search_hop(
    proxy: &Proxy,
    prompts: &PromptSet,
    answering: &Answering,
    request: &ChatRequest,
    session: &mut Session,
) -> Option<Gathered> {
    let hop = answering.route.search.as_ref()?;
    let backend = proxy.backends.get(&hop.backend)?;
    let note = match search::gather(
        backend,
        hop,
        proxy.limits,
        prompts,
        request.messages(),
        session,
    )
    .await
    {
        Ok(gathered) if !gathered.text.trim().is_empty() => return Some(gathered),
        Ok(_) => "the search hop found nothing; answered without gathered context".to_string(),
        Err(error) => format!("the search hop failed ({error}); answered without gathered context"),
    };
    if let Some(decision) = session.decision() {
        decision.route_fallback = Some(note);
    }
    None
}

/// The model an answer names: the route the client chose from the model list, else
/// the virtual model (never the backend's own).
fn shown_model(proxy: &Proxy, session: &mut Session) -> Arc<str> {
    session
        .decision()
        .and_then(|d| d.client_choice.as_deref())
        .map_or_else(|| proxy.virtual_model.clone(), Arc::from)
}

/// What the relay needs to know about this client and router.
fn relay_options(proxy: &Proxy, request: &ChatRequest, session: &mut Session) -> RelayOptions {
    RelayOptions {
        virtual_model: shown_model(proxy, session),
        include_usage: request.include_usage,
        drained: Box::pin(proxy.drain.drained()),
        max_answer_bytes: proxy.answer_cap,
    }
}

/// A `: keep-alive` comment after `server.sse_keepalive_secs` of silence on a stream.
fn keep_alive(proxy: &Proxy) -> KeepAlive {
    KeepAlive::new()
        .interval(proxy.keep_alive)
        .text("keep-alive")
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
