//! `[passthrough."/v1/PATH"]` requests (`/v1/embeddings`, `/v1/completions`…): admitted
//! as a chat is (its key's rate, its body, the router's capacity, its key's streams, a
//! place in the session writer's queue), then passed to its backend (`proxy`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::chat::take_places;
use super::client_keys::KeyId;
use super::context::RequestContext;
use super::state::AppState;
use crate::error::Error;
use crate::record::log::Outcome;
use crate::record::session::{Session, SessionStart};

/// A passed-through path's handler.
pub(super) async fn pass(
    State(state): State<Arc<AppState>>,
    Extension(context): Extension<RequestContext>,
    uri: Uri,
    key: Option<Extension<KeyId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Served with and without `/v1`, configured with it (the routes are exact paths).
    let path = match uri.path() {
        p if p.starts_with("/v1/") => p.to_string(),
        p => format!("/v1{p}"),
    };
    let Some(pass) = state.config.passthrough.get(&path) else {
        return Error::NotFound {
            method: "POST".into(),
            path,
        }
        .into_response();
    };
    // Its name in the log, the metrics and `x-ai-router-route`: `embeddings`.
    let name = path.trim_start_matches("/v1/").replace('/', "-");
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
    if let Some(record) = session.record() {
        record.client_key.clone_from(&key);
        record.decision.route = Some(name.as_str().into());
    }
    match admit(&state, &headers, body, key.as_deref(), &mut session).await {
        Ok(body) => {
            let response =
                crate::proxy::passthrough::run(&state.proxy, &path, &name, pass, body, session)
                    .await;
            without_logged_error(response)
        }
        Err(error) => {
            session.finish(
                Outcome::Error,
                error.status().as_u16(),
                Some(error.to_string()),
            );
            without_logged_error(error.into_response())
        }
    }
}

/// The request's key rate, body (size, time, a JSON object), places and writer slot.
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
    session: &mut Session,
) -> Result<serde_json::Map<String, Value>, Error> {
    let server = &state.config.server;
    if let Some(key) = key {
        state.key_limits.admit(key)?;
    }
    let read_timeout = std::time::Duration::from_secs(server.body_read_timeout_secs);
    let bytes =
        super::limits::read_body(headers, body, server.max_body_bytes, read_timeout).await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        session.set_rejected_body(&bytes);
        Error::InvalidJson(e.to_string())
    })?;
    let Value::Object(body) = body else {
        session.set_rejected_body(&bytes);
        return Err(Error::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            param: None,
        });
    };
    if let Some(record) = session.record() {
        // A completion's prompt is what a review needs; embeddings inputs are not kept.
        record.client_messages = body.get("prompt").cloned().unwrap_or(Value::Null);
        record.stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    }
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let places = take_places(state, stream, key, session);
    if let (Err(_), Some(key)) = (&places, key) {
        state.key_limits.refund(key);
    }
    places?;
    session.reserve_slot().await;
    Ok(body)
}

/// The session logs the request's one line; the request layer need not log it again.
fn without_logged_error(mut response: Response) -> Response {
    response
        .extensions_mut()
        .remove::<crate::error::LoggedError>();
    response
}
