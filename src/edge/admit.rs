//! What every request the router answers (a chat, a passed-through path) passes through
//! at the edge: its session record started, its key's rate and its body (size, time)
//! checked, then its places taken — the router's capacity, its key's stream slot, a
//! place in the session writer's queue — and, when it is turned away, its one record
//! and one log line. The body is read before any place is taken, so slow uploads cannot
//! hold the router's places or the writer's.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::context::RequestContext;
use super::state::AppState;
use crate::error::{Error, LoggedError};
use crate::record::log::Outcome;
use crate::record::session::{Session, SessionStart};

/// The request's session record, started now, with the client's key fingerprint.
pub(super) fn start(
    state: &AppState,
    context: RequestContext,
    key: Option<&str>,
    headers: &HeaderMap,
) -> Session {
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
    if let (Some(key), Some(record)) = (key, session.record()) {
        record.client_key = Some(key.to_string());
    }
    session
}

/// The body, once its key's rate allows it and it arrived within its size and time.
pub(super) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
) -> Result<Bytes, Error> {
    let server = &state.config.server;
    if let Some(key) = key {
        state.key_limits.admit(key)?;
    }
    let read_timeout = std::time::Duration::from_secs(server.body_read_timeout_secs);
    super::limits::read_body(headers, body, server.max_body_bytes, read_timeout).await
}

/// The places a request being answered holds until it ends: one under
/// `max_concurrent_requests`, for a stream its key's stream slot, and last a place in
/// the session writer's queue. A request turned away gives its key's rate place back.
pub(super) async fn take_places(
    state: &AppState,
    stream: bool,
    key: Option<&str>,
    session: &mut Session,
) -> Result<(), Error> {
    let places = capacity_and_stream(state, stream, key, session);
    if let (Err(_), Some(key)) = (&places, key) {
        state.key_limits.refund(key);
    }
    places?;
    // Last, and only for a request that will be answered: the wait is for the writer
    // (a slow disk), and the bounded queue keeps the records held in memory bounded.
    session.reserve_slot().await;
    Ok(())
}

fn capacity_and_stream(
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

/// Ends the record of a request turned away with `error`, and answers it.
pub(super) fn refuse(mut session: Session, error: Error) -> Response {
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
    logged_by_session(error.into_response())
}

/// `response` without the error the request layer would log: the session logs its own
/// "session finished" line with the error, and one line per error is enough.
pub(super) fn logged_by_session(mut response: Response) -> Response {
    response.extensions_mut().remove::<LoggedError>();
    response
}
