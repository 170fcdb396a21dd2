//! The HTTP route table and its thin handlers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::edge::context::{self, RequestContext};
use crate::edge::health;
use crate::edge::state::AppState;
use crate::error::Error;
use crate::openai::chat::ChatRequest;
use crate::proxy::pipeline;
use crate::record::session::{Outcome, Session, SessionStart};
use crate::routing::decision;

/// The router's HTTP surface. Paths are served with and without `/v1` because clients
/// disagree on whether the base URL includes it.
pub fn routes(state: Arc<AppState>) -> Router {
    let protect =
        axum::middleware::from_fn_with_state(state.clone(), crate::edge::client_keys::require);
    // The API needs a client key when keys are configured; /health never does.
    let mut api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models));
    let mut stats = Router::new()
        .route("/stats", get(crate::edge::stats::stats))
        .route("/metrics", get(crate::observe::metrics::handler));
    api = api.route_layer(protect.clone());
    if state.config.server.protect_stats {
        stats = stats.route_layer(protect);
    }
    Router::new()
        .merge(api)
        .merge(stats)
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::edge::limits::check_headers,
        ))
        // Outermost: gives every request its id, span, `x-request-id` and final log line.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::layer,
        ))
        .with_state(state)
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(context): Extension<RequestContext>,
    key: Option<Extension<crate::edge::client_keys::KeyId>>,
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
        },
        state.sessions.clone(),
    );
    let key = key.map(|Extension(key)| key.0);
    if let (Some(key), Some(record)) = (&key, session.record()) {
        record.client_key = Some(key.clone());
    }
    session.reserve_slot().await;
    let request = match admit(&state, &headers, body, key.as_deref(), &mut session).await {
        Ok(request) => request,
        Err(error) => {
            session.finish(
                Outcome::Error,
                error.status().as_u16(),
                Some(error.to_string()),
            );
            return error.into_response();
        }
    };
    session.set_request(
        request.messages(),
        &request.last_user_text(),
        request.stream,
    );
    // One snapshot of the prompts for the whole request: an edit saved mid-request
    // cannot mix the classifier's prompt of one version with the answer's of another.
    let prompts = state.prompts.load_full();
    let decision = decision::decide(&state, &prompts, &request, &headers, &mut session).await;
    pipeline::run(state, prompts, decision, request, session).await
}

/// Everything a chat request must pass before it is routed: its key's rate, its body
/// (size, time, JSON), the router's capacity, its key's open streams. The body is read
/// before a place is taken, so slow uploads cannot hold the router's places. A request
/// the router turns away (capacity, streams) gives its key's rate place back.
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
        crate::edge::limits::read_body(headers, body, server.max_body_bytes, read_timeout).await?;
    let request = ChatRequest::parse(&bytes)?;
    let places = take_places(state, &request, key, session);
    if let (Err(_), Some(key)) = (&places, key) {
        state.key_limits.refund(key);
    }
    places.map(|()| request)
}

fn take_places(
    state: &AppState,
    request: &ChatRequest,
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
    if let (Some(key), true) = (key, request.stream)
        && let Some(slot) = state.key_limits.open_stream(key)?
    {
        session.hold_stream_slot(slot);
    }
    Ok(())
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.models_body.clone(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Error {
    Error::NotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}
