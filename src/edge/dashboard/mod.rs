//! The web dashboard under `/dashboard`: its pages and assets, the guard in front of them
//! (and the admin key it may ask for), the live overview feed, sessions, the playground
//! and the prompts in use.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use super::state::AppState;

mod admin_key;
mod assets;
mod guard;
mod live;
mod overview;
mod playground;
mod prompts;
mod sessions;

use admin_key::AdminKey;
use live::Feeds;

/// What the dashboard keeps while the router runs: the admin key, and bounds on its
/// live feeds and on its reads of the session logs.
#[derive(Debug)]
pub struct Dashboard {
    admin_key: AdminKey,
    feeds: Feeds,
    /// Session-log reads running at once: a hung disk keeps each one's thread until the
    /// read ends, so clicks on a stuck page cannot pile threads up.
    reads: Arc<tokio::sync::Semaphore>,
}

impl Dashboard {
    /// The dashboard `config` describes. An admin key that is named but unset, or that is
    /// also one of `client_keys`, is an error.
    pub fn new(
        config: &crate::config::DashboardConfig,
        client_keys: &super::client_keys::ClientKeys,
    ) -> Result<Self, String> {
        let admin_key = AdminKey::load(config)?;
        if let Some(key) = admin_key.secret()
            && client_keys.is_key(key.expose())
        {
            // A client key opens chats for whoever holds it; the dashboard shows everyone's.
            return Err("the dashboard's admin key is also a client key: give the dashboard a key of its own".into());
        }
        Ok(Dashboard {
            admin_key,
            feeds: Feeds::new(config.max_live_feeds),
            reads: Arc::new(tokio::sync::Semaphore::new(4)),
        })
    }
}

/// The dashboard's paths, for the route table; empty when `dashboard.enabled = false`.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    if !state.config.dashboard.enabled {
        return Router::new();
    }
    Router::new()
        .route("/dashboard", get(assets::index))
        .route("/dashboard/", get(assets::index))
        .route("/dashboard/login", get(assets::login))
        .route("/dashboard/assets/{file}", get(assets::file))
        .route("/dashboard/api/login", post(admin_key::login))
        .route("/dashboard/api/overview", get(overview::overview))
        .route("/dashboard/api/live", get(live::feed))
        .route("/dashboard/api/sessions", get(sessions::list))
        .route("/dashboard/api/sessions/{id}", get(sessions::story))
        .route("/dashboard/api/chat", post(playground::chat))
        .route("/dashboard/api/prompts", get(prompts::list))
        // Inner: only a permitted client reaches a handler.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require,
        ))
        // Outer: every answer, a refusal too, carries the browser's safety headers.
        .layer(axum::middleware::from_fn(security_headers))
}

/// What the browser is told about every dashboard response: scripts and styles only from
/// the router's own files (no inline script, so a message that carries `<script>` can run
/// nothing even if it were ever written as HTML), never framed, no referrer, no sniffing,
/// no caching (pages show conversations).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `value` with every backend key, URL password and the admin key written as `***`
/// wherever one might appear (an error text quoting a URL, a logged record). Strings are
/// redacted one by one, so the JSON around them stays whole.
fn redact(state: &AppState, value: &mut serde_json::Value) {
    let mut secrets = state.backends.secrets();
    secrets.extend(state.dashboard.admin_key.secret().cloned());
    fn walk(value: &mut serde_json::Value, secrets: &[crate::secret::Secret]) {
        match value {
            serde_json::Value::String(text) => crate::secret::redact_all(text, secrets),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, secrets)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, secrets)),
            _ => {}
        }
    }
    if !secrets.is_empty() {
        walk(value, &secrets);
    }
}

/// `value` as a JSON response, redacted (`redact`).
fn redacted_json(state: &AppState, mut value: serde_json::Value) -> Response {
    use axum::response::IntoResponse;
    redact(state, &mut value);
    axum::Json(value).into_response()
}
