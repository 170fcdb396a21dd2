//! `POST /dashboard/api/chat`: the playground's chat, answered by the same chat handler
//! as `/v1/chat/completions` (admitted, decided, answered, logged), streamed. It needs no
//! client key (the dashboard's own guard stands in front); a chosen route travels as its
//! `expose_as` model id, the way a client's model menu chooses one.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::edge::chat::chat_completions;
use crate::edge::context::RequestContext;
use crate::edge::state::AppState;
use crate::error::Error;

/// What the playground sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ask {
    /// The conversation, as a client would send it.
    messages: Value,
    /// A label (`SIMPLE`, `COMPLEX`…) to answer on, instead of asking the classifier.
    #[serde(default)]
    route: Option<String>,
}

/// The handler.
pub(super) async fn chat(
    State(state): State<Arc<AppState>>,
    Extension(context): Extension<RequestContext>,
    body: String,
) -> Response {
    let ask: Ask = match serde_json::from_str(&body) {
        Ok(ask) => ask,
        Err(e) => return Error::InvalidJson(e.to_string()).into_response(),
    };
    let model = match model_for(&state, ask.route.as_deref()) {
        Ok(model) => model,
        Err(error) => return error.into_response(),
    };
    let chat = json!({"model": model, "messages": ask.messages, "stream": true});
    // Only what a chat needs: the browser's cookie and headers stay out of the record.
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("ai-router dashboard playground"),
    );
    let body = Body::from(chat.to_string());
    chat_completions(State(state), Extension(context), None, headers, body).await
}

/// The model id that asks for `route`, or the automatic one.
fn model_for(state: &AppState, route: Option<&str>) -> Result<String, Error> {
    let Some(wanted) = route.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(state.config.server.virtual_model.clone());
    };
    let table = &state.routing.table;
    table
        .label(wanted)
        .and_then(|label| table.get(label))
        .and_then(|route| route.exposed_as.clone())
        .ok_or_else(|| {
            Error::invalid(
                format!("route {wanted} cannot be chosen: it has no expose_as model id (or server.expose_routes is false)"),
                "route",
            )
        })
}
