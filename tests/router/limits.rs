//! Limits a client can run into: its key's requests per minute and open streams, the
//! size of its headers, and the time it takes to send its headers and body. Each one
//! answers clearly (or closes the connection), and the router keeps serving.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::fake::{Fake, Reply, chunk_json, vllm_reply};
use crate::common::{TestRouter, client, streaming, user};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const ALICE: &str = "alice-key-0123456789";
const BOB: &str = "bob-key-9876543210";

/// A router with two client keys, adjusted further by `adjust`.
async fn keyed_router(
    upstream: &str,
    adjust: impl FnOnce(&mut ai_router::config::Config),
) -> (TestRouter, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("keys");
    std::fs::write(&file, format!("# two people\n{ALICE}\n{BOB}\n")).unwrap();
    let router = TestRouter::start(upstream, |c| {
        c.server.api_keys_file = file;
        adjust(c);
    })
    .await;
    (router, keys)
}

async fn chat_as(router: &TestRouter, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", router.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A backend whose streams send one event and then wait for the gate (so they stay
/// open), while JSON answers come at once.
async fn held_streams() -> (Fake, Arc<Notify>) {
    let gate = Arc::new(Notify::new());
    let held = gate.clone();
    let fake = Fake::with(move |body| {
        if body["stream"] == json!(true) {
            Reply::Gated(
                vec![chunk_json("first", None)],
                held.clone(),
                vec![chunk_json("", Some("stop")), "[DONE]".into()],
            )
        } else {
            vllm_reply(body)
        }
    })
    .await;
    (fake, gate)
}

#[tokio::test]
async fn a_key_over_its_requests_per_minute_gets_429_with_retry_after() {
    let fake = Fake::start().await;
    let (router, _keys) = keyed_router(&fake.url, |c| c.server.key_requests_per_minute = 2).await;
    for _ in 0..2 {
        assert_eq!(chat_as(&router, ALICE, &user("hi")).await.status(), 200);
    }
    let refused = chat_as(&router, ALICE, &user("hi")).await;
    assert_eq!(refused.status(), 429);
    // Two a minute: the next place frees 30 s after the first request.
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry), "Retry-After: {retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    // The limit is per key: Bob is still served.
    assert_eq!(chat_as(&router, BOB, &user("hi")).await.status(), 200);
    assert_eq!(
        fake.received().len(),
        3,
        "the refused request reached the backend"
    );
    let sessions = router.sessions(4).await;
    let limited: Vec<_> = sessions
        .iter()
        .filter(|s| s["http_status"] == 429)
        .collect();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["outcome"], "error");
    assert!(limited[0]["client_key"].is_string());
}

#[tokio::test]
async fn a_key_over_its_open_streams_gets_429_until_one_ends() {
    let (fake, gate) = held_streams().await;
    let (router, _keys) = keyed_router(&fake.url, |c| c.server.key_max_streams = 1).await;
    let open = chat_as(&router, ALICE, &streaming(user("one"), true)).await;
    assert_eq!(open.status(), 200);
    let second = chat_as(&router, ALICE, &streaming(user("two"), true)).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    // Only streams count: the same key may still ask for a JSON answer, and Bob may stream.
    assert_eq!(chat_as(&router, ALICE, &user("json")).await.status(), 200);
    let bob = chat_as(&router, BOB, &streaming(user("bob"), true)).await;
    assert_eq!(bob.status(), 200);
    // The first stream ends: its place is free again.
    gate.notify_waiters();
    common::read_sse(open).await;
    common::read_sse(bob).await;
    let again = chat_as(&router, ALICE, &streaming(user("three"), true)).await;
    assert_eq!(again.status(), 200);
    gate.notify_waiters();
    drop(again);
}

#[tokio::test]
async fn oversized_headers_get_431_and_the_router_keeps_serving() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.max_header_bytes = 8192).await;
    // Over the limit but within hyper's buffer: the router explains in OpenAI's envelope.
    let big = client()
        .post(format!("{}/v1/chat/completions", router.url))
        .header("x-padding", "a".repeat(10_000))
        .json(&user("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 431);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");
    // Far over it: refused before the router reads on (a bare 431 or a closed connection).
    let huge = client()
        .get(format!("{}/v1/models", router.url))
        .header("x-padding", "a".repeat(100_000))
        .send()
        .await;
    if let Ok(response) = huge {
        assert_eq!(response.status(), 431);
    }
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
}

#[tokio::test]
async fn a_client_dribbling_its_headers_or_silent_is_disconnected() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.header_read_timeout_secs = 1).await;
    let address = router.url.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // And one that connects and never sends a byte.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    for socket in [&mut slow, &mut silent] {
        let mut buffer = Vec::new();
        // The router answers 408 or just closes; either way the read ends, and soon.
        let read =
            tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buffer)).await;
        assert!(read.is_ok(), "the connection was still open after 5 s");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_a_408_and_logged() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.body_read_timeout_secs = 1).await;
    let address = router.url.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"messages\":",
    )
    .await
    .unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buffer)).await;
    let n = read.expect("no answer within 5 s").unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    let session = &router.sessions(1).await[0];
    assert_eq!(session["http_status"], 408);
    assert!(fake.received().is_empty());
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_without_reading_it() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.max_body_bytes = 1000).await;
    let address = router.url.trim_start_matches("http://").to_string();
    let mut client_socket = TcpStream::connect(&address).await.unwrap();
    // Headers only: the router must answer without waiting for the megabyte.
    client_socket
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), client_socket.read(&mut buffer))
        .await
        .expect("no answer before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
}

#[tokio::test]
async fn slow_uploads_do_not_take_the_places_of_other_requests() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.max_concurrent_requests = 2).await;
    let address = router.url.trim_start_matches("http://").to_string();
    let mut uploads = Vec::new();
    for _ in 0..3 {
        let mut socket = TcpStream::connect(&address).await.unwrap();
        socket
            .write_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        uploads.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Three uploads are still arriving; the router's two places are free for answers.
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    assert_eq!(router.chat(&user("hi again")).await.status(), 200);
    drop(uploads);
}

#[tokio::test]
async fn a_request_the_router_turns_away_does_not_count_against_the_key() {
    let (fake, gate) = held_streams().await;
    let (router, _keys) = keyed_router(&fake.url, |c| {
        c.server.key_requests_per_minute = 2;
        c.server.key_max_streams = 1;
    })
    .await;
    let open = chat_as(&router, ALICE, &streaming(user("one"), true)).await;
    assert_eq!(open.status(), 200);
    let refused = chat_as(&router, ALICE, &streaming(user("two"), true)).await;
    assert_eq!(refused.status(), 429);
    // The refused stream gave its place back: the minute still has room for one more.
    assert_eq!(chat_as(&router, ALICE, &user("three")).await.status(), 200);
    let over = chat_as(&router, ALICE, &user("four")).await;
    let body: Value = over.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    gate.notify_waiters();
    drop(open);
}
