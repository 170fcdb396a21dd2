//! ai-router: an OpenAI-compatible reverse proxy that decides, for every chat request,
//! which backend answers it, relays the answer, and writes one session log per request.
//!
//! # Layout
//! - `config`: settings structs and `load()` (defaults < TOML < environment), `validate()`
//! - `secret`: `Secret`, a string that prints as `***`
//! - `state`: `AppState`, built once and shared by every request
//! - `http`: the route table and thin handlers
//! - `request_context`: request id, client IP, span and final log line for every request
//! - `client_ip`: the real client address behind trusted proxies
//! - `client_keys`: optional client API keys, checked in constant time
//! - `key_limits`: per-key requests per minute and open streams
//! - `request_limits`: header size, body size and body read time
//! - `server`: the accept loop: hyper connections with header timeout and size limits
//! - `openai`: the typed parts of the chat wire format the router reads
//! - `route`: the routing decision (`Route`, `Decision`, `decide`)
//! - `meta`: recognises client task prompts (header, task model, text rules)
//! - `meta_rules`: the text rules for task prompts, loaded from a TOML file
//! - `classify`: the classifier's request, call and lenient label parsing
//! - `classify_cache`: recent classifier decisions by exact input
//! - `enrich`: ENRICH's search hop through xAI's Responses API
//! - `pipeline`: runs a decision: which backends, in which order, with which prompts
//! - `answer`: calls one backend and relays its answer (JSON or SSE), with failover
//! - `shape`: per-backend request shaping (model, length rules, one system message)
//! - `upstream`: one backend's client, URL, model, key and timeouts
//! - `upstream_error`: backends' error bodies normalised to OpenAI's envelope
//! - `relay`: the SSE relay, event by event, with in-band errors
//! - `capture`: what the session log keeps from an answer
//! - `session`: the session record and its drop guard
//! - `session_sink`: where finished records go, and the observers that count them
//! - `session_writer`: the off-path, atomic, redacting session-log writer
//! - `rotation`: keeps the session folder within its age and count limits
//! - `session_store`: reads the session folder back, skipping broken and foreign files
//! - `summary`: shares, percentiles, reasons, tokens and cost over logged sessions
//! - `sessions_command`: `ai-router sessions list|show|stats|export`
//! - `replay`: `ai-router sessions replay`, re-classifying logged traffic
//! - `live_stats`: counters since start-up
//! - `metrics`: Prometheus metrics and `GET /metrics`
//! - `stats`: `GET /stats`
//! - `cli`: the command line
//! - `prompts`: the prompt files, placeholders and built-in fallbacks
//! - `prompt_watch`: hot reload of the prompt files
//! - `health`: liveness and readiness
//! - `backend_health`: up/down per backend from probes and real calls
//! - `error`: the request path's `Error` and its OpenAI-shaped response
//! - `fd_limit`: raises the open-file limit at start-up
//! - `check`: the `ai-router check` report
//! - `classify_command`: the `ai-router classify` report
//! - `telemetry`: tracing set-up
//! - `shutdown`: SIGTERM/SIGINT as a future

#![forbid(unsafe_code)]

pub mod answer;
pub mod backend_health;
pub mod capture;
pub mod check;
pub mod classify;
pub mod classify_cache;
pub mod classify_command;
pub mod cli;
pub mod client_ip;
pub mod client_keys;
pub mod config;
pub mod enrich;
pub mod error;
pub mod fd_limit;
pub mod health;
pub mod http;
pub mod key_limits;
pub mod live_stats;
pub mod meta;
pub mod meta_rules;
pub mod metrics;
pub mod openai;
pub mod pipeline;
pub mod prompt_watch;
pub mod prompts;
pub mod relay;
pub mod replay;
pub mod request_context;
pub mod request_limits;
pub mod rotation;
pub mod route;
pub mod secret;
pub mod server;
pub mod session;
pub mod session_sink;
pub mod session_store;
pub mod session_writer;
pub mod sessions_command;
pub mod shape;
pub mod shutdown;
pub mod state;
pub mod stats;
pub mod summary;
pub mod telemetry;
pub mod upstream;
pub mod upstream_error;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use state::AppState;

/// The HTTP application for `state`; tests drive it with `oneshot` or a listener.
pub fn app(state: Arc<AppState>) -> axum::Router {
    http::routes(state)
}

/// How long requests get to say goodbye (an in-band error, `[DONE]`) once the grace
/// period is over.
const FAREWELL: Duration = Duration::from_secs(2);

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight requests
/// (streams included) finish for up to `grace`. Requests still running after that are
/// ended on purpose (see `AppState::drain`), so every client gets a complete answer or
/// an error, and every session record is finished before this returns.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (fired, on_fire) = tokio::sync::oneshot::channel::<()>();
    let drain = state.clone();
    let limits = server::ConnectionLimits {
        header_read_timeout: Duration::from_secs(state.config.server.header_read_timeout_secs),
        max_header_bytes: state.config.server.max_header_bytes,
    };
    let server = server::run(listener, app(state), limits, async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections, finishing in-flight requests"
        );
        let _ = fired.send(());
    });
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        _ = on_fire => {}
    }
    if let Ok(result) = tokio::time::timeout(grace, &mut server).await {
        return result;
    }
    tracing::warn!("grace period over: ending the requests still running");
    drain.drain();
    match tokio::time::timeout(FAREWELL, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("requests still running after the farewell period are dropped");
            Ok(())
        }
    }
}
