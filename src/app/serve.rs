//! Serving: the HTTP application on a listener until shutdown, then the grace period
//! for in-flight requests, then the farewell for the ones still running.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::accept;
use super::workers::Workers;
use crate::edge::state::AppState;

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
    let draining = state.clone();
    let limits = accept::ConnectionLimits {
        header_read_timeout: Duration::from_secs(state.config.server.header_read_timeout_secs),
        max_header_bytes: state.config.server.max_header_bytes,
        max_headers: state.config.server.max_headers,
    };
    let backends = state.backends.clone();
    let prepare = Arc::new(move || backends.prepare_thread());
    let workers = Workers::start(state.config.server.worker_count(), prepare)?;
    let server = accept::run(
        listener,
        crate::edge::http::routes(state),
        limits,
        &workers,
        async move {
            shutdown.await;
            // Before the listener closes: a probe that still gets through hears it.
            draining.begin_draining();
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: readiness says draining, no new connections, finishing in-flight requests"
            );
            let _ = fired.send(());
        },
    );
    let served = until_done(server, on_fire, grace, &drain).await;
    // Nothing is being answered any more (or what still runs is given up).
    workers.stop().await;
    served
}

/// Runs `server` until it ends by itself; once `on_fire` says shutdown began, for
/// `grace` more, then ends what still runs (`AppState::drain`) and waits `FAREWELL`.
async fn until_done(
    server: impl Future<Output = std::io::Result<()>>,
    on_fire: tokio::sync::oneshot::Receiver<()>,
    grace: Duration,
    drain: &AppState,
) -> std::io::Result<()> {
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
