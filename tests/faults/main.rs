//! The fault suite (`make faults`): every way a backend, the classifier, xAI or the
//! client can fail, injected against a real router. Each case checks what the client
//! gets, what the session log says, and that the router keeps serving afterwards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure should panic with its message"
)]

#[path = "../common/mod.rs"]
mod common;

mod classifier;
mod client;
mod garbage;
mod hostile;
mod hostile_edges;
mod hostile_files;
mod pool;
mod primary;
mod shutdown;
mod sigterm;
mod xai;

use std::net::SocketAddr;

use common::TestRouter;
use common::fake::{Fake, Reply};
use serde_json::Value;
use tokio::net::TcpSocket;

/// Asks `question` as JSON and streamed, and checks that both were answered after a
/// failover: the `x-ai-router-failover` header (`primary->xai`) and the route that
/// really answered, and a stream that ends with `[DONE]`.
async fn answered_by_failover(router: &TestRouter, question: &str, failover: &str, route: &str) {
    for stream in [false, true] {
        let response = router
            .chat(&common::streaming(common::user(question), stream))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ai-router-failover"], failover);
        assert_eq!(response.headers()["x-ai-router-route"], route);
        if stream {
            let data = common::read_sse(response).await;
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        }
    }
}

/// The in-band error event of a stream that broke off: every event but the error is
/// JSON, exactly one error comes last before `[DONE]`, and the body closed after it.
fn in_band_error(data: &[String]) -> Value {
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("every data line is JSON"))
        .collect();
    let errors = events.iter().filter(|e| e.get("error").is_some()).count();
    assert_eq!(errors, 1, "{data:?}");
    let error = events.last().unwrap()["error"].clone();
    assert!(error["message"].is_string(), "{error}");
    error
}

/// A port that refuses connections, and its base URL. The socket is bound but not
/// listening: the port stays reserved for `back_up` (a port given back to the system
/// could be taken by any of the many connections other tests open).
fn closed_port() -> (TcpSocket, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let url = format!("http://{}/v1", socket.local_addr().unwrap());
    (socket, url)
}

/// The backend behind a `closed_port` comes back, answering with `script`.
fn back_up(socket: TcpSocket, script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Fake {
    Fake::on(socket.listen(128).unwrap(), script)
}

/// The session whose `user_query` is `query` (for cases run at once).
fn session_for<'a>(sessions: &'a [Value], query: &str) -> &'a Value {
    sessions
        .iter()
        .find(|s| s["user_query"] == query)
        .unwrap_or_else(|| panic!("no session for {query:?}"))
}

/// The last message's text in a body a fake received: the client's question.
fn question(body: &Value) -> &str {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
}
