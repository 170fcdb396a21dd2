//! `POST /v1/chat/completions`: a request is admitted (`admit`: its key's rate, its
//! body, the router's capacity, its key's streams), decided (`routing`), then answered
//! (`proxy`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::admit;
use super::client_keys::KeyId;
use super::context::RequestContext;
use super::state::AppState;
use crate::error::Error;
use crate::openai::ChatRequest;
use crate::record::session::Session;

/// `POST /v1/chat/completions`: admit, decide, answer.
pub(super) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(context): Extension<RequestContext>,
    key: Option<Extension<KeyId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let key = key.map(|Extension(key)| key.0);
    let mut session = admit::start(&state, context, key.as_deref(), &headers);
    let request = match admit_chat(&state, &headers, body, key.as_deref(), &mut session).await {
        Ok(request) => request,
        Err(error) => return admit::refuse(session, error),
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
    admit::logged_by_session(state.proxy.run(prompts, &label, request, session).await)
}

/// Everything a chat request must pass before it is routed: its key's rate and its body
/// (`admit`), a chat in JSON with a sane `n`, then its places (`admit`).
async fn admit_chat(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    key: Option<&str>,
    session: &mut Session,
) -> Result<ChatRequest, Error> {
    let bytes = admit::read_body(state, headers, body, key).await?;
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
    request.check_choices(state.config.server.max_choices)?;
    admit::take_places(state, request.stream, key, session).await?;
    Ok(request)
}
