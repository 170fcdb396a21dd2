//! A request's life beyond the happy path: the client leaving mid-stream, and the
//! router shutting down with a stream in flight.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure should panic with its message"
)]

mod common;

use std::time::Duration;

use common::fake::{Fake, Reply, chunk_json};
use common::{TestRouter, read_sse, session_files, user};
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_call_and_is_logged() {
    let fake = Fake::with(|_| Reply::Forever(Duration::from_millis(20))).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let mut body = user("tell me a long story");
    body["stream"] = json!(true);
    let response = router.chat(&body).await;
    let mut events = common::sse_events(response);
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap();
        assert!(event.unwrap().contains("tick"));
    }
    assert_eq!(fake.abandoned(), 0);
    drop(events);
    // vLLM frees the GPU slot when its connection closes: the fake sees the same close.
    fake.wait_abandoned(1, Duration::from_secs(2)).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "client_disconnected");
    assert_eq!(session["http_status"], 499);
    let relayed = common::answer(session)["response_content"]
        .as_str()
        .unwrap();
    assert!(relayed.starts_with("tick tick tick"), "{relayed:?}");
    assert!(common::answer(session)["duration_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_client_that_leaves_before_a_json_answer_is_logged_too() {
    let fake = Fake::with(|_| Reply::Hang).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let request = common::client()
        .post(format!("{}/v1/chat/completions", router.url))
        .json(&user("hi"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(request.is_err(), "the fake never answers");
    fake.wait_abandoned(1, Duration::from_secs(2)).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "client_disconnected");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish_and_flushes_its_log() {
    let events: Vec<String> = (0..10)
        .map(|i| chunk_json(&format!("w{i} "), None))
        .chain([chunk_json("", Some("stop")), "[DONE]".into()])
        .collect();
    let fake = Fake::with(move |_| Reply::Sse(events.clone(), Duration::from_millis(100))).await;
    let mut router = TestRouter::start(&fake.url, |_| {}).await;
    let mut body = user("hi");
    body["stream"] = json!(true);
    let response = router.chat(&body).await;
    assert_eq!(response.status(), 200);
    router.signal_shutdown();
    // New connections are refused once shutdown has begun.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = common::client()
        .post(format!("{}/v1/chat/completions", router.url))
        .json(&user("late"))
        .send()
        .await;
    assert!(late.is_err(), "a new request was accepted during shutdown");
    let data = read_sse(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(data.len(), 12, "the stream was cut short: {data:?}");
    router.join().await.unwrap();
    let sessions = router.sessions(1).await;
    assert_eq!(sessions[0]["outcome"], "ok");
    assert_eq!(session_files(&router.sessions_dir).len(), 1);
}

#[tokio::test]
async fn past_the_grace_period_streams_end_with_an_error_and_waiting_calls_get_503() {
    let fake = Fake::with(|body| {
        if body["stream"] == true {
            Reply::Forever(Duration::from_millis(50))
        } else {
            Reply::Hang
        }
    })
    .await;
    let mut router = TestRouter::start(&fake.url, |c| {
        c.server.shutdown_grace_secs = 1;
        c.backends.primary.response_timeout_secs = 30;
    })
    .await;
    let mut body = user("an endless story");
    body["stream"] = json!(true);
    let stream = router.chat(&body).await;
    assert_eq!(stream.status(), 200);
    let waiting = tokio::spawn({
        let url = router.url.clone();
        async move {
            common::client()
                .post(format!("{url}/v1/chat/completions"))
                .json(&user("a slow question"))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    router.signal_shutdown();
    let data = read_sse(stream).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let error: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "router_shutdown");
    let waiting = waiting.await.unwrap();
    assert_eq!(waiting.status(), 503);
    let error: serde_json::Value = waiting.json().await.unwrap();
    assert_eq!(error["error"]["code"], "router_shutdown");
    router.join().await.unwrap();
    let sessions = router.sessions(2).await;
    assert!(
        sessions.iter().all(|s| s["outcome"] == "error"),
        "ended by the router, not by the clients: {sessions:?}"
    );
}
