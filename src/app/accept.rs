//! The accept loop: one hyper connection per client, served on a worker thread
//! (`workers`), with the limits `axum::serve` does not offer. A client that dribbles its
//! headers, or never sends a byte, is cut off after `server.header_read_timeout_secs`
//! (otherwise a few hundred idle sockets could hold the router's file descriptors
//! forever), and the header buffer is bounded.
//! Graceful shutdown: stop accepting at once, keep open connections while requests are
//! being answered (every response then closes its connection), then close the idle ones.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::in_flight::{InFlight, Tracked};
use super::workers::Workers;

/// Per-connection limits, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// The most header bytes the router reads; the request layer answers an
    /// OpenAI-shaped 431 below this, hyper a bare 431 beyond twice this.
    pub max_header_bytes: usize,
    /// The most headers a request may have; the same split as `max_header_bytes`.
    pub max_headers: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, each connection on one of
/// `workers`, then waits for every request being answered to finish and closes the
/// connections (the caller bounds how long).
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    workers: &Workers,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = builder(limits);
    let graceful = GracefulShutdown::new();
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let in_flight = InFlight::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                backoff_after(&error).await;
                continue;
            }
        };
        // Small SSE chunks must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        // The socket leaves this thread's event loop for its worker's: otherwise every
        // read and write it waits for would be seen here and handed over to the worker.
        let Ok(tcp) = tcp.into_std() else { continue };
        let service = answer(app.clone(), remote, &in_flight, &closing_rx);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let mut closing = closing_rx.clone();
        workers.spawn(async move {
            let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else {
                return;
            };
            // hyper's header timer starts only with the first byte: a socket that never
            // sends one would stay open for ever. Shutdown does not wait for it either.
            let mut first = [0u8; 1];
            let spoke = tokio::select! {
                peeked = tokio::time::timeout(limits.header_read_timeout, tcp.peek(&mut first)) => {
                    matches!(peeked, Ok(Ok(n)) if n > 0)
                }
                _ = closing.wait_for(|closing| *closing) => false,
            };
            if !spoke {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(tcp),
                TowerToHyperService::new(service),
            );
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::trace!(%remote, %error, "connection ended with an error");
            }
        });
    }
    // No new connections from here, and silent ones are closed now. Open connections
    // stay while requests are being answered: a load balancer's keep-alive connection
    // then hears `/health/ready` say "draining" instead of finding its connection shut
    // under a request it just sent, and each response closes its connection. Once
    // nothing is being answered, the idle ones are closed.
    drop(listener);
    let _ = closing_tx.send(true);
    in_flight.idle().await;
    graceful.shutdown().await;
    Ok(())
}

/// The service for one connection from `remote`: `app`, with each request counted in
/// `in_flight` until its body is sent, and, once `closing`, every HTTP/1 response
/// closing its connection (HTTP/2 has GOAWAY for that, sent by the graceful shutdown).
fn answer(
    app: Router,
    remote: std::net::SocketAddr,
    in_flight: &std::sync::Arc<InFlight>,
    closing: &tokio::sync::watch::Receiver<bool>,
) -> impl tower::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let (in_flight, closing) = (in_flight.clone(), closing.clone());
    tower::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let guard = in_flight.start();
        let http1 = request.version() < Version::HTTP_2;
        let (app, closing) = (app.clone(), closing.clone());
        async move {
            let Ok(mut response) = app.oneshot(request.map(Body::new)).await;
            if http1 && *closing.borrow() {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| Body::new(Tracked::new(body, guard))))
        }
    })
}

fn builder(limits: ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Twice the configured limit, so the request layer sees (and explains) anything
    // between the two; hyper refuses a buffer under 8 KiB.
    let buffer = limits.max_header_bytes.saturating_mul(2).max(8192);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(buffer)
        // hyper's default of 100 headers answers a bare 431 to a client with 101 small
        // ones. Twice our bound, like the buffer: the request layer explains anything
        // in between, and the count stays bounded (hyper sets aside room for it on
        // every request).
        .max_headers(limits.max_headers.saturating_mul(2));
    builder
        .http2()
        .timer(TokioTimer::new())
        // A peer that stops answering pings is gone: close it rather than hold it (and
        // shutdown) open.
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(Duration::from_secs(20))
        .max_header_list_size(u32::try_from(buffer).unwrap_or(u32::MAX));
    builder
}

/// Accept errors are not fatal. Out of file descriptors (EMFILE/ENFILE) is the one that
/// repeats at once, so wait a moment for connections to close instead of spinning.
async fn backoff_after(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
