//! The HTTP route table and its smallest handlers; the chat handler is in `chat`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::chat::chat_completions;
use super::state::AppState;
use super::{client_keys, context, health, limits, passthrough, stats};
use crate::error::Error;

/// The router's HTTP surface. Paths are served with and without `/v1` because clients
/// disagree on whether the base URL includes it.
pub fn routes(state: Arc<AppState>) -> Router {
    let protect = axum::middleware::from_fn_with_state(state.clone(), client_keys::require);
    // The API needs a client key when keys are configured; /health never does.
    let mut api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models));
    // The rest of the API an admin listed, with and without `/v1` like the above.
    for path in state.config.passthrough.keys() {
        let short = path.trim_start_matches("/v1");
        api = api
            .route(path, post(passthrough::pass))
            .route(short, post(passthrough::pass));
    }
    let mut stats = Router::new()
        .route("/stats", get(stats::stats))
        .route("/metrics", get(stats::metrics));
    api = api.route_layer(protect.clone());
    if state.config.server.protect_stats {
        stats = stats.route_layer(protect);
    }
    Router::new()
        .merge(api)
        .merge(stats)
        // Its own guard (loopback, or the admin key), never the client keys.
        .merge(super::dashboard::routes(&state))
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::check_headers,
        ))
        // Outermost: gives every request its id, span, `x-request-id` and final log line.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::layer,
        ))
        .with_state(state)
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
