//! An in-process fake of a vLLM-style backend: real HTTP on 127.0.0.1:0, scripted
//! replies (JSON, SSE with gaps, error shapes, hangs), a record of what it received,
//! and a count of streams the router abandoned (the GPU slot vLLM would free).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

mod wire;
pub use wire::*;

/// What the fake does with one request.
pub enum Reply {
    /// 200 with this JSON body.
    Json(Value),
    /// This status with this raw body (sent as application/json).
    Status(u16, String),
    /// This status with a `Retry-After` of so many seconds.
    RetryAfter(u16, u64),
    /// 200 with this content type and raw body.
    Raw(&'static str, String),
    /// An SSE stream: each string is one `data:` payload, sent `gap` apart.
    Sse(Vec<String>, Duration),
    /// Sends `first`, waits for `gate`, then sends `rest`.
    Gated(Vec<String>, Arc<Notify>, Vec<String>),
    /// Sends these events, then stays silent forever with the connection open.
    Stall(Vec<String>),
    /// A chunk every `gap`, forever, until the router goes away.
    Forever(Duration),
    /// Sends `events` and then closes the connection abruptly (no `[DONE]`).
    Cut(Vec<String>),
    /// Never answers at all.
    Hang,
    /// Waits this long before answering at all (no headers yet), then answers so.
    Late(Duration, Box<Reply>),
    /// 200 with this content type, then each raw piece after its delay (no SSE
    /// framing added: garbage, binary junk, a body that is not SSE), then a clean end.
    Chunks(&'static str, Vec<(Duration, Vec<u8>)>),
    /// An SSE stream: these events, then these raw bytes every `gap`, until the router
    /// goes away.
    Spew(Vec<String>, Vec<u8>, Duration),
}

type Script = dyn Fn(&Value) -> Reply + Send + Sync;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `/v1/chat/completions` or `/v1/responses`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Arc<Script>>>,
    received: Arc<Mutex<Vec<Received>>>,
    abandoned: Arc<AtomicUsize>,
    abandoned_note: Arc<Notify>,
    /// It takes requests in but answers none, `/models` neither (`silence`).
    silent: Arc<AtomicBool>,
}

/// A running fake backend.
pub struct Fake {
    /// Base URL including `/v1`, as the router's config wants it.
    pub url: String,
    shared: Shared,
}

impl Fake {
    /// Starts a fake that answers like vLLM with reasoning (see `vllm_reply`).
    pub async fn start() -> Fake {
        Self::with(vllm_reply).await
    }

    /// Starts a fake that answers with `script`.
    pub async fn with(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    /// Starts a fake on `listener`: e.g. a backend coming back where it was down.
    pub fn on(
        listener: tokio::net::TcpListener,
        script: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> Fake {
        Self::serve(listener, script)
    }

    fn serve(
        listener: tokio::net::TcpListener,
        script: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> Fake {
        let shared = Shared {
            script: Arc::new(Mutex::new(Arc::new(script))),
            received: Arc::default(),
            abandoned: Arc::default(),
            abandoned_note: Arc::default(),
            silent: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/responses", post(chat))
            .route("/v1/embeddings", post(chat))
            .route("/v1/completions", post(chat))
            .route("/v1/models", get(models))
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                unless_silent,
            ))
            .with_state(shared.clone());
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { url, shared }
    }

    /// Replaces the script for the next requests.
    pub fn set(&self, script: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Arc::new(script);
    }

    /// From now on it answers nothing, its `/models` neither, as a host whose link went
    /// down; requests are still taken in (and recorded), as a kernel still accepts
    /// connections for a process that no longer answers.
    pub fn silence(&self) {
        self.shared.silent.store(true, Ordering::SeqCst);
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The bodies received on `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }

    /// The last request body received.
    pub fn last_body(&self) -> Value {
        self.received()
            .last()
            .expect("the fake received no request")
            .body
            .clone()
    }

    /// How many calls were dropped before they ended (the router hung up).
    pub fn abandoned(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` streams were abandoned, or panics after `limit`.
    pub async fn wait_abandoned(&self, n: usize, limit: Duration) {
        tokio::time::timeout(limit, async {
            while self.abandoned() < n {
                let _ = tokio::time::timeout(
                    Duration::from_millis(20),
                    self.shared.abandoned_note.notified(),
                )
                .await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the upstream stream was not closed within {limit:?}"));
    }
}

/// Passes the request on, unless the fake was silenced: then it is recorded and never
/// answered.
async fn unless_silent(
    State(shared): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !shared.silent.load(Ordering::SeqCst) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    shared.received.lock().unwrap().push(Received {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    std::future::pending().await
}

async fn models() -> impl IntoResponse {
    axum::Json(json!({"object":"list","data":[{"id":"fake-model","object":"model"}]}))
}

async fn chat(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers,
        body: body.clone(),
    });
    let script = shared.script.lock().unwrap().clone();
    let reply = match script(&body) {
        Reply::Late(delay, reply) => {
            // Dropped during the wait when the router hangs up: counts as abandoned.
            let mut watch = Watch {
                shared: shared.clone(),
                finished: false,
            };
            tokio::time::sleep(delay).await;
            watch.finished = true;
            *reply
        }
        reply => reply,
    };
    match reply {
        Reply::Json(value) => axum::Json(value).into_response(),
        Reply::Status(code, text) => (
            StatusCode::from_u16(code).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response(),
        Reply::RetryAfter(code, secs) => (
            StatusCode::from_u16(code).unwrap(),
            [(header::RETRY_AFTER, secs.to_string())],
            r#"{"error":{"message":"busy","type":"server_error","code":null}}"#,
        )
            .into_response(),
        Reply::Raw(content_type, text) => {
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        Reply::Hang => {
            // Dropped when the router hangs up: counts as an abandoned call.
            let _watch = Watch {
                shared,
                finished: false,
            };
            std::future::pending::<()>().await;
            unreachable!()
        }
        reply => sse(reply, shared),
    }
}

/// Counts a stream as abandoned if it is dropped before its last event.
struct Watch {
    shared: Shared,
    finished: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.abandoned.fetch_add(1, Ordering::SeqCst);
            self.shared.abandoned_note.notify_waiters();
        }
    }
}

fn frame(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn sse(reply: Reply, shared: Shared) -> Response {
    let watch = Watch {
        shared,
        finished: false,
    };
    let content_type = match &reply {
        Reply::Chunks(content_type, _) => content_type,
        _ => "text/event-stream",
    };
    let stream = async_stream(reply, watch);
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap()
}

fn async_stream(
    reply: Reply,
    watch: Watch,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut watch = watch;
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        match reply {
            Reply::Sse(events, gap) => {
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    if !send(frame(e)).await {
                        return;
                    }
                }
                watch.finished = true;
            }
            Reply::Gated(first, gate, rest) => {
                for e in &first {
                    if !send(frame(e)).await {
                        return;
                    }
                }
                gate.notified().await;
                for e in &rest {
                    if !send(frame(e)).await {
                        return;
                    }
                }
                watch.finished = true;
            }
            Reply::Stall(events) => {
                for e in &events {
                    if !send(frame(e)).await {
                        return;
                    }
                }
                // Silent, but notice when the router hangs up.
                tx.closed().await;
            }
            Reply::Forever(gap) => loop {
                if !send(frame(&chunk_json("tick ", None))).await {
                    return;
                }
                // Between ticks, notice at once when the router hangs up.
                tokio::select! {
                    () = tokio::time::sleep(gap) => {}
                    () = tx.closed() => return,
                }
            },
            Reply::Chunks(_, pieces) => {
                for (delay, piece) in pieces {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = tx.closed() => return,
                    }
                    if !send(Bytes::from(piece)).await {
                        return;
                    }
                }
                watch.finished = true;
            }
            Reply::Spew(events, junk, gap) => {
                for e in &events {
                    if !send(frame(e)).await {
                        return;
                    }
                }
                loop {
                    if !send(Bytes::from(junk.clone())).await {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(gap) => {}
                        () = tx.closed() => return,
                    }
                }
            }
            Reply::Cut(events) => {
                for e in &events {
                    if !send(frame(e)).await {
                        return;
                    }
                }
                watch.finished = true;
                let _ = tx
                    .send(Err(std::io::Error::other("connection cut by the fake")))
                    .await;
            }
            _ => unreachable!("not a stream reply"),
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// A fake backend on a runtime of its own, which `kill` stops dead, as when its host
/// dies: every connection dropped at once, the port closed.
pub struct Host {
    pub fake: Fake,
    /// Where it listened, to come back on.
    pub address: std::net::SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Host {
    /// Starts a host answering with `script`.
    pub fn start(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Host {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self::on(listener, script)
    }

    /// Starts a host on `listener` (a host coming back on its old address).
    pub fn on(
        listener: std::net::TcpListener,
        script: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> Host {
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fake = {
            let _inside = runtime.enter();
            Fake::on(tokio::net::TcpListener::from_std(listener).unwrap(), script)
        };
        Host {
            fake,
            address,
            runtime: Some(runtime),
        }
    }

    /// Stops everything it runs now: its connections close mid-answer.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Comes back on the same address, answering with `script`.
    pub fn restart(&mut self, script: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        self.kill();
        let socket = listen_again(self.address);
        *self = Host::on(socket, script);
    }
}

/// A listener on `address` again, right after the old one closed.
fn listen_again(address: std::net::SocketAddr) -> std::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    let listener = socket.listen(128).unwrap();
    listener.into_std().unwrap()
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::ops::Deref for Host {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.fake
    }
}
