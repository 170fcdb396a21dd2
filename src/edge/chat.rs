//! `POST /v1/chat/completions`: a request is admitted (its key's rate, its body, the
//! router's capacity, its key's streams), decided (`routing`), then answered (`proxy`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::client_keys::KeyId;
use super::context::RequestContext;
use super::state::AppState;
use crate::error::{Error, LoggedError};
use crate::openai::ChatRequest;
use crate::record::log::Outcome;
use crate::record::session::{Session, SessionStart};

/// `POST /v1/chat/completions`: admit, decide, answer.
pub(super) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(context): Extension<RequestContext>,
    key: Option<Extension<KeyId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let mut session = Session::start(
        SessionStart {
            id: context.id,
            client_ip: context.client_ip.to_string(),
            user_agent,
            backends_down: state.backends.down(),
        },
        state.sessions.clone(),
    );
    let key = key.map(|Extension(key)| key.0);
    if let (Some(key), Some(record)) = (&key, session.record()) {
        record.client_key = Some(key.clone());
    }
    let request = match admit(&state, &headers, body, key.as_deref(), &mut session).await {
        Ok(request) => request,
        Err(error) => {
            if matches!(
                error,
                Error::Overloaded { .. } | Error::TooManyStreams { .. } | Error::RateLimited { .. }
            ) && let Some(record) = session.record()
            {
                // Turned away for load, not for what it said: the query is enough, and a
                // flood of them must not carry whole conversations to the writer.
                record.client_messages = serde_json::Value::Null;
            }
            session.finish(
                Outcome::Error,
                error.status().as_u16(),
                Some(error.to_string()),
            );
            return logged_by_session(error.into_response());
        }
    };
    // One snapshot of the prompts for the whole request: an edit saved mid-request
    // cannot mix the classifier's prompt of one version with the answer's of another.
    let prompts = state.prompts.load_full();
    let decision = state
        .routing
        .decide(&prompts, &request, &headers, &mut session)
        .await;
    let label = decision.classification.clone().unwrap_or_default();
    if let Some(record) = session.decision() {
        *record = decision;
    }
    logged_by_session(state.proxy.run(prompts, &label, request, session).await)
}

/// `response` without the error the request layer would log: a chat's session logs
/// its own "session finished" line with the error, and one line per error is enough.
fn logged_by_session(mut response: Response) -> Response {
    response.extensions_mut().remove::<LoggedError>();
    response
}

/// Everything a chat request must pass before it is routed: its key's rate, its body
/// (size, time, JSON), the router's capacity, its key's open streams, a place in the
/// session writer's queue. The body is read before any place is taken, so slow uploads
/// cannot hold the router's places or the writer's. A request the router turns away
/// (capacity, streams) gives its key's rate place back.
/// The places it takes are held by the session until the answer ends.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
    session: &mut Session,
) -> Result<ChatRequest, Error> {
    let server = &state.config.server;
    if let Some(key) = key {
        state.key_limits.admit(key)?;
    }
    let read_timeout = std::time::Duration::from_secs(server.body_read_timeout_secs);
    let bytes =
        super::limits::read_body(headers, body, server.max_body_bytes, read_timeout).await?;
    let request = match ChatRequest::parse(&bytes) {
        Ok(request) => request,
        Err(error) => {
            // What the client sent is kept (cut), so a review can see why it failed.
            session.set_rejected_body(&bytes);
            return Err(error);
        }
    };
    session.set_request(
        request.messages(),
        &request.last_user_text(),
        request.stream,
    );
    request.check_choices(server.max_choices)?;
    let places = take_places(state, request.stream, key, session);
    if let (Err(_), Some(key)) = (&places, key) {
        state.key_limits.refund(key);
    }
    places?;
    // Last, and only for a request that will be answered: the wait is for the writer
    // (a slow disk), and the bounded queue keeps the records held in memory bounded.
    session.reserve_slot().await;
    Ok(request)
}

/// The places a request being answered holds: one under `max_concurrent_requests`, and
/// for a stream its key's stream slot. Also for passed-through requests.
pub(super) fn take_places(
    state: &AppState,
    stream: bool,
    key: Option<&str>,
    session: &mut Session,
) -> Result<(), Error> {
    let permit = state
        .capacity
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Overloaded {
            limit: state.config.server.max_concurrent_requests,
        })?;
    session.hold(permit);
    if let (Some(key), true) = (key, stream)
        && let Some(slot) = state.key_limits.open_stream(key)?
    {
        session.hold(slot);
    }
    Ok(())
}
