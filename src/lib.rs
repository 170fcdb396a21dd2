//! ai-router: an OpenAI-compatible reverse proxy that decides, for every chat request,
//! which backend answers it, relays the answer, and writes one session log per request.
//!
//! # Layout
//! Folders in the order a request meets them; dependencies point down this list.
//! - `app`: build and serve (accept loop, shutdown, tracing, prompt hot reload)
//! - `edge`: the HTTP route table and handlers, request context, limits, client keys, `AppState`
//! - `proxy`: runs a decision: failover, shaping, the search hop, the SSE relay
//! - `routing`: the decision: META detection, the classifier and its cache, labels
//! - `upstream`: the backends, the call to one, and their health
//! - `record`: the session record and its drop guard, writer, rotation, store, summaries
//! - `observe`: Prometheus metrics and live counters
//! - `tools`: the command line and its commands (`check`, `classify`, `sessions …`)
//! - leaves: `config`, `prompts`, `openai` (wire format), `error`, `secret`

#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod edge;
pub mod error;
pub mod observe;
pub mod openai;
pub mod prompts;
pub mod proxy;
pub mod record;
pub mod routing;
pub mod secret;
pub mod tools;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use edge::state::AppState;

/// The HTTP application for `state`; tests drive it with `oneshot` or a listener.
pub fn app(state: Arc<AppState>) -> axum::Router {
    edge::http::routes(state)
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
    let limits = app::accept::ConnectionLimits {
        header_read_timeout: Duration::from_secs(state.config.server.header_read_timeout_secs),
        max_header_bytes: state.config.server.max_header_bytes,
    };
    let server = app::accept::run(listener, app(state), limits, async move {
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
