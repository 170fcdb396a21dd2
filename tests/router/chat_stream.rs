//! Streamed chats: relayed event by event, model renamed, reasoning kept, usage only
//! when asked, `[DONE]` then the body closes.

use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, chunk_json, reasoning_json, stream_events};
use crate::common::{TestRouter, read_sse};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

fn stream_body(include_usage: Option<bool>) -> Value {
    let mut body = json!({
        "model": "anything",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true,
        "max_tokens": 10
    });
    if let Some(flag) = include_usage {
        body["stream_options"] = json!({"include_usage": flag});
    }
    body
}

#[tokio::test]
async fn stream_is_relayed_in_order_with_model_renamed_and_done_last() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let response = router.chat(&stream_body(None)).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    let data = read_sse(response).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("every data line is JSON"))
        .collect();
    assert_eq!(
        chunks.len(),
        4,
        "role, reasoning, two content chunks: {data:?}"
    );
    assert!(chunks.iter().all(|c| c["model"] == "ai-router"));
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["reasoning"],
        "The user greets. "
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["reasoning_content"],
        "The user greets. "
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there!");
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );

    // The backend was asked for usage (for the session log) and got no length cap.
    let sent = fake.last_body();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(sent.get("max_tokens").is_none());

    let session = &router.sessions(1).await[0];
    assert_eq!(session["stream"], true);
    assert_eq!(session["outcome"], "ok");
    let step = common::answer(session);
    assert_eq!(step["response_content"], "Hello there!");
    assert_eq!(step["reasoning_content"], "The user greets. ");
    assert_eq!(step["finish_reason"], "stop");
    assert_eq!(
        step["usage"]["total_tokens"], 17,
        "usage captured though the client did not ask"
    );
    assert!(step["ttft_ms"].is_u64());
}

#[tokio::test]
async fn usage_chunk_reaches_the_client_only_when_asked() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let asked = read_sse(router.chat(&stream_body(Some(true))).await).await;
    let usage: Vec<Value> = asked
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|c| c["choices"] == json!([]))
        .collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["usage"]["total_tokens"], 17);
    assert_eq!(usage[0]["model"], "ai-router");

    let not_asked = read_sse(router.chat(&stream_body(Some(false))).await).await;
    assert!(
        !not_asked.iter().any(|d| d.contains("\"usage\"")),
        "{not_asked:?}"
    );
}

#[tokio::test]
async fn each_event_is_forwarded_before_the_next_one_exists() {
    // The fake sends one chunk, then waits until the test has seen it. A router that
    // buffered would never deliver it, and this test would time out.
    let gate = Arc::new(Notify::new());
    let fake_gate = gate.clone();
    let fake = Fake::with(move |_| {
        Reply::Gated(
            vec![chunk_json("first", None)],
            fake_gate.clone(),
            vec![chunk_json(" second", Some("stop")), "[DONE]".into()],
        )
    })
    .await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let response = router.chat(&stream_body(None)).await;
    let mut events = common::sse_events(response);
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("the first chunk was held back")
        .unwrap();
    assert!(first.contains("first"));
    gate.notify_one();
    let rest: Vec<String> = events.collect().await;
    assert!(rest[0].contains(" second"));
    assert_eq!(rest.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn a_stream_without_done_gets_one_when_it_finished_properly() {
    let fake = Fake::with(|_| {
        Reply::Sse(
            vec![reasoning_json("think"), chunk_json("ok", Some("stop"))],
            Duration::from_millis(1),
        )
    })
    .await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let data = read_sse(router.chat(&stream_body(None)).await).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(!data.iter().any(|d| d.contains("\"error\"")), "{data:?}");
    assert_eq!(router.sessions(1).await[0]["outcome"], "ok");
}

#[tokio::test]
async fn many_streams_at_once_all_complete() {
    let fake = Fake::with(|body| Reply::Sse(stream_events(body), Duration::from_millis(10))).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let runs = (0..20).map(|_| async {
        let data = read_sse(router.chat(&stream_body(None)).await).await;
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    });
    futures_util::future::join_all(runs).await;
    let sessions = router.sessions(20).await;
    assert!(sessions.iter().all(|s| s["outcome"] == "ok"));
}

#[tokio::test]
async fn a_silent_stream_gets_keep_alive_comments() {
    let gate = Arc::new(Notify::new());
    let fake_gate = gate.clone();
    let fake = Fake::with(move |_| {
        Reply::Gated(
            vec![chunk_json("thinking…", None)],
            fake_gate.clone(),
            vec![chunk_json("done", Some("stop")), "[DONE]".into()],
        )
    })
    .await;
    let router = TestRouter::start(&fake.url, |c| {
        c.server.sse_keepalive_secs = 1;
        c.backend("primary").timeout_secs = 10;
    })
    .await;
    let response = router.chat(&stream_body(None)).await;
    let mut bytes = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(": keep-alive\n") {
        let chunk = tokio::time::timeout_at(deadline, bytes.next())
            .await
            .expect("no keep-alive comment within 5 s of silence")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    gate.notify_one();
    while let Some(chunk) = bytes.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let data = common::parse_sse(&seen);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(data.iter().any(|d| d.contains("done")));
}

/// Chunks are passed on as the backend wrote them, but for `model`: field order, fields
/// the router does not know, escapes and all; and the record keeps the same text.
#[tokio::test]
async fn chunks_keep_every_byte_the_backend_sent_but_the_model_name() {
    let sent = [
        r#"{"id":"chatcmpl-7","object":"chat.completion.chunk","model":"served-model","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"a \"quoted\"\nline \u00e9 </script>"},"logprobs":null,"finish_reason":null}],"custom":{"nested":[1,2.50]}}"#,
        r#"{"model":"served-model","choices":[{"index":0,"delta":{"content":"."},"finish_reason":"stop"}],"usage":null}"#,
    ];
    let events: Vec<String> = sent.iter().map(|s| s.to_string()).collect();
    let fake = Fake::with(move |_| Reply::Sse(events.clone(), Duration::ZERO)).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let data = read_sse(router.chat(&stream_body(None)).await).await;
    assert_eq!(data.len(), 3, "{data:?}");
    for (got, sent) in data.iter().zip(sent) {
        assert_eq!(*got, sent.replace("\"served-model\"", "\"ai-router\""));
    }
    let session = &router.sessions(1).await[0];
    let answer = common::answer(session);
    assert_eq!(
        answer["response_content"],
        "a \"quoted\"\nline é </script>."
    );
    assert_eq!(answer["finish_reason"], "stop");
}
