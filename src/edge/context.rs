//! The outermost layer: gives each request its id (the session id, returned in
//! `x-request-id`), its real client IP, a tracing span, and one final log line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::edge::client_ip;
use crate::edge::state::AppState;
use crate::error::LoggedError;
use crate::record::session::{millis, new_id};

/// The response header carrying the request (session) id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What handlers learn about the request from this layer.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// 8 hex chars; the session log's `id`. Always ours: a client-sent id is ignored
    /// because it also names a file.
    pub id: String,
    /// The real client address (see `client_ip::resolve`).
    pub client_ip: IpAddr,
}

/// The middleware function.
pub async fn layer(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = new_id();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |info| info.0.ip());
    let client_ip = client_ip::resolve(
        peer,
        request.headers(),
        &state.config.server.trusted_proxies,
    );
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        route = tracing::field::Empty,
        backend = tracing::field::Empty,
    );
    request.extensions_mut().insert(RequestContext {
        id: id.clone(),
        client_ip,
    });
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let ms = millis(started.elapsed());
    span.in_scope(|| match response.extensions().get::<LoggedError>() {
        Some(error) => tracing::warn!(status, ms, error = %error.0, "request finished"),
        // Open WebUI polls /v1/models constantly: successes stay at debug.
        None => tracing::debug!(status, ms, "request finished"),
    });
    response
}
