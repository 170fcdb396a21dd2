//! The HTTP route table and its thin handlers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::Error;
use crate::health;
use crate::openai::ChatRequest;
use crate::pipeline;
use crate::request_context::{self, RequestContext};
use crate::route;
use crate::session::{Outcome, Session, SessionStart};
use crate::state::AppState;

/// The router's HTTP surface. Paths are served with and without `/v1` because clients
/// disagree on whether the base URL includes it.
pub fn routes(state: Arc<AppState>) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    let protect = axum::middleware::from_fn_with_state(state.clone(), crate::client_keys::require);
    // The API needs a client key when keys are configured; /health never does.
    let mut api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models));
    let mut stats = Router::new()
        .route("/stats", get(crate::stats::stats))
        .route("/metrics", get(crate::metrics::handler));
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
        // Bodies over the limit are refused while reading; the handler turns that into a 413.
        .layer(DefaultBodyLimit::max(body_limit))
        // Outermost: gives every request its id, span, `x-request-id` and final log line.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context::layer,
        ))
        .with_state(state)
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(context): Extension<RequestContext>,
    key: Option<Extension<crate::client_keys::KeyId>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
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
    if let (Some(Extension(key)), Some(record)) = (key, session.record()) {
        record.client_key = Some(key.0);
    }
    session.reserve_slot().await;
    match state.capacity.clone().try_acquire_owned() {
        Ok(permit) => session.hold(permit),
        Err(_) => {
            let error = Error::Overloaded {
                limit: state.config.server.max_concurrent_requests,
            };
            session.finish(Outcome::Error, 503, Some(error.to_string()));
            return error.into_response();
        }
    }
    let request = match body
        .map_err(|rejection| body_error(&rejection, state.config.server.max_body_bytes))
        .and_then(|bytes| ChatRequest::parse(&bytes))
    {
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
    let decision = route::decide(&state, &prompts, &request, &headers, &mut session).await;
    pipeline::run(state, prompts, decision, request, session).await
}

fn body_error(rejection: &BytesRejection, limit: usize) -> Error {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::BodyTooLarge { limit }
    } else {
        Error::BodyUnreadable(rejection.body_text())
    }
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
