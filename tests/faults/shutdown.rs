//! Shutdown with requests in flight, in process: streams finish within the grace
//! period, are ended with an in-band `router_shutdown` after it, calls still waiting get
//! a 503, and every request's session log is on disk when `serve` returns. The same
//! with the real binary, SIGTERM and 1,000 streams is in `sigterm.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, chunk_json, label_reply};
use crate::common::{self, TestRouter, read_sse, session_files, streaming, user};
use crate::in_band_error;

/// No temp file left behind in the session folder (every record renamed into place).
fn no_temp_files(router: &TestRouter) {
    let leftovers: Vec<_> = std::fs::read_dir(&router.sessions_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".json"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish_and_refuses_new_connections() {
    let events: Vec<String> = (0..20)
        .map(|i| chunk_json(&format!("w{i} "), None))
        .chain([chunk_json("", Some("stop")), "[DONE]".into()])
        .collect();
    let fake = Fake::with(move |_| Reply::Sse(events.clone(), Duration::from_millis(100))).await;
    let mut router = TestRouter::start(&fake.url, |_| {}).await;
    let response = router.chat(&streaming(user("hi"), true)).await;
    assert_eq!(response.status(), 200);
    router.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = common::client()
        .post(format!("{}/v1/chat/completions", router.url))
        .json(&user("late"))
        // Well before the stream (and so the server) ends: a refusal is immediate.
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(late.is_err(), "a new request was accepted during shutdown");
    assert!(
        !late.unwrap_err().is_timeout(),
        "a new request hung during shutdown"
    );
    let data = read_sse(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(data.len(), 22, "the stream was cut short: {data:?}");
    router.join().await.unwrap();
    let sessions = router.sessions(1).await;
    assert_eq!(sessions[0]["outcome"], "ok");
    assert_eq!(session_files(&router.sessions_dir).len(), 1);
    no_temp_files(&router);
}

#[tokio::test]
async fn once_shutdown_begins_readiness_says_draining_on_a_kept_alive_connection() {
    let events: Vec<String> = (0..20)
        .map(|i| chunk_json(&format!("w{i} "), None))
        .chain([chunk_json("", Some("stop")), "[DONE]".into()])
        .collect();
    let fake = Fake::with(move |_| Reply::Sse(events.clone(), Duration::from_millis(100))).await;
    let mut router = TestRouter::start(&fake.url, |_| {}).await;
    // One client, as a load balancer holds its connections: the stream keeps one busy,
    // so the next call opens a second one, which then waits in the pool.
    let client = common::client();
    let stream = client
        .post(format!("{}/v1/chat/completions", router.url))
        .json(&streaming(user("hi"), true))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let health = client.get(format!("{}/health", router.url)).send().await;
    assert_eq!(health.unwrap().status(), 200);
    router.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let ready = client
        .get(format!("{}/health/ready", router.url))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .expect("the kept-alive connection must still answer during the grace period");
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "a draining router closes each connection after its answer"
    );
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "draining", "{body}");
    // New connections are still refused at once.
    let fresh = common::client()
        .get(format!("{}/health/ready", router.url))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        fresh.is_err_and(|e| !e.is_timeout()),
        "a new connection was accepted while draining"
    );
    // And the stream in flight finishes whole.
    let data = read_sse(stream).await;
    assert_eq!(data.len(), 22, "the stream was cut short: {data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    router.join().await.unwrap();
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
        c.backend("primary").response_timeout_secs = 30;
    })
    .await;
    let stream = router
        .chat(&streaming(user("an endless story"), true))
        .await;
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
    let started = Instant::now();
    router.signal_shutdown();
    let data = read_sse(stream).await;
    assert_eq!(in_band_error(&data)["code"], "router_shutdown");
    let waiting = waiting.await.unwrap();
    assert_eq!(waiting.status(), 503);
    let error: Value = waiting.json().await.unwrap();
    assert_eq!(error["error"]["code"], "router_shutdown");
    router.join().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Both backend calls were closed, not left running.
    fake.wait_abandoned(2, Duration::from_secs(1)).await;
    let sessions = router.sessions(2).await;
    assert!(
        sessions.iter().all(|s| s["outcome"] == "error"),
        "ended by the router, not by the clients: {sessions:?}"
    );
    no_temp_files(&router);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_hanging_search() {
    let primary = Fake::start().await;
    let xai = Fake::with(|_| Reply::Hang).await;
    let xai_url = xai.url.clone();
    let mut router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into();
        c.server.shutdown_grace_secs = 1;
    })
    .await;
    router.classifier.set(label_reply("ENRICH"));
    let response = router.chat(&streaming(user("news?"), true)).await;
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    router.signal_shutdown();
    let data = read_sse(response).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(in_band_error(&data)["code"], "router_shutdown");
    router.join().await.unwrap();
    assert_eq!(router.sessions(1).await[0]["outcome"], "error");
    no_temp_files(&router);
}
