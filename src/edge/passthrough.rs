//! `[passthrough."/v1/PATH"]` requests (`/v1/embeddings`, `/v1/completions`…): admitted
//! as a chat is (`admit`), then passed to its backend (`proxy`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::admit;
use super::client_keys::KeyId;
use super::context::RequestContext;
use super::state::AppState;
use crate::error::Error;
use crate::record::session::Session;

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
    let key = key.map(|Extension(key)| key.0);
    let mut session = admit::start(&state, context, key.as_deref(), &headers);
    if let Some(record) = session.record() {
        record.decision.route = Some(name.as_str().into());
    }
    match admit_pass(&state, &headers, body, key.as_deref(), &mut session).await {
        Ok(body) => admit::logged_by_session(
            crate::proxy::passthrough::run(&state.proxy, &path, &name, pass, body, session).await,
        ),
        Err(error) => admit::refuse(session, error),
    }
}

/// Its key's rate and body (`admit`), a JSON object, then its places (`admit`).
async fn admit_pass(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
    session: &mut Session,
) -> Result<serde_json::Map<String, Value>, Error> {
    let bytes = admit::read_body(state, headers, body, key).await?;
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
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let content = session.keeps_content();
    if let Some(record) = session.record() {
        // A completion's prompt is what a review needs; embeddings inputs are not kept.
        if content {
            record.client_messages = body.get("prompt").cloned().unwrap_or(Value::Null);
        }
        record.stream = stream;
    }
    admit::take_places(state, stream, key, session).await?;
    Ok(body)
}
