//! Errors the router answers for the request itself and the backends' error shapes:
//! OpenAI's envelope, the right status, the router still serving afterwards. Backends,
//! the classifier and clients failing are the fault suite's (`tests/faults/`).

use std::time::{Duration, Instant};

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply};
use crate::common::{TestRouter, client, error_of, still_serves, streaming, user};
use serde_json::{Value, json};

#[tokio::test]
async fn bad_input_is_a_400_naming_the_problem() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let cases: [(&str, Value); 6] = [
        ("{\"messages\": [", Value::Null),
        ("[]", Value::Null),
        ("{\"model\":\"x\"}", json!("messages")),
        ("{\"messages\":\"hello\"}", json!("messages")),
        (
            "{\"messages\":[{\"content\":\"no role\"}]}",
            json!("messages[0].role"),
        ),
        (
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}",
            json!("stream"),
        ),
    ];
    for (body, param) in cases {
        let (status, error) = error_of(router.post_raw(body).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], param, "{body}");
    }
    assert!(fake.received().is_empty(), "bad input reached the backend");
    // Every rejected request still leaves a session log.
    let sessions = router.sessions(6).await;
    assert!(
        sessions
            .iter()
            .all(|s| s["outcome"] == "error" && s["http_status"] == 400)
    );
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn body_over_the_limit_is_a_413() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.max_body_bytes = 1024).await;
    let big = user(&"x".repeat(4096));
    let (status, error) = error_of(router.chat(&big).await).await;
    assert_eq!(status, 413);
    assert_eq!(error["code"], "request_too_large");
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn unknown_route_is_a_404_and_wrong_method_a_405() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let response = client()
        .get(format!("{}/v1/embeddings", router.url))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let (status, error) = error_of(response).await;
    assert_eq!(status, 404);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("/v1/embeddings")
    );
    let response = client()
        .get(format!("{}/v1/chat/completions", router.url))
        .send()
        .await
        .unwrap();
    let (status, _) = error_of(response).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn backend_errors_keep_their_status_and_message_in_every_shape() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let cases = [
        (
            400,
            r#"{"error":{"message":"This model's maximum context length is 32768 tokens","type":"BadRequestError","param":null,"code":400}}"#,
            "This model's maximum context length is 32768 tokens",
            "BadRequestError",
        ),
        (
            404,
            r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#,
            "The model `x` does not exist.",
            "NotFoundError",
        ),
        (
            401,
            r#"{"error":"Invalid model name"}"#,
            "the primary backend rejected the router's API key: Invalid model name",
            "upstream_error",
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#,
            "the request exceeds the available context size",
            "exceed_context_size_error",
        ),
        (
            400,
            r#"{"code":"Client specified an invalid argument","error":"Argument not supported: n"}"#,
            "Argument not supported: n",
            "invalid_request_error",
        ),
        (
            429,
            r#"{"code":"rate","error":"Too many requests"}"#,
            "Too many requests",
            "rate_limit_error",
        ),
        (
            500,
            "Internal Server Error",
            "Internal Server Error",
            "upstream_error",
        ),
        (
            503,
            "",
            "the primary backend answered 503 Service Unavailable",
            "upstream_error",
        ),
    ];
    for (code, body, message, kind) in cases {
        fake.set(move |_| Reply::Status(code, body.to_string()));
        for stream in [false, true] {
            let request = streaming(user("hi"), stream);
            let (status, error) = error_of(router.chat(&request).await).await;
            // A backend refusing the router's own key is the router's failure: 502.
            let expected = if code == 401 { 502 } else { code };
            assert_eq!(status, expected, "{body}");
            assert_eq!(error["message"], message, "{body}");
            assert_eq!(error["type"], kind, "{body}");
        }
    }
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn an_error_event_before_any_token_is_an_http_error() {
    let fake = Fake::with(|_| {
        Reply::Sse(
            vec![
                r#"{"error":{"message":"prompt too long","type":"BadRequestError","code":400}}"#
                    .into(),
                "[DONE]".into(),
            ],
            Duration::ZERO,
        )
    })
    .await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let body = streaming(user("hi"), true);
    let (status, error) = error_of(router.chat(&body).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["message"], "prompt too long");
}

#[tokio::test]
async fn beyond_the_concurrency_limit_requests_get_503_with_retry_after() {
    // Two slow streams take both places; the third request is refused at once.
    let fake = Fake::with(|body| {
        if body["stream"] == true {
            Reply::Forever(Duration::from_millis(50))
        } else {
            common::fake::vllm_reply(body)
        }
    })
    .await;
    let router = TestRouter::start(&fake.url, |c| c.server.max_concurrent_requests = 2).await;
    let body = streaming(user("long story"), true);
    let first = router.chat(&body).await;
    let second = router.chat(&body).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let started = Instant::now();
    let third = router.chat(&user("hi")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not queued"
    );
    assert_eq!(third.headers()["retry-after"], "1");
    let (status, error) = error_of(third).await;
    assert_eq!(status, 503);
    assert_eq!(error["code"], "router_overloaded");
    // A place frees when a stream ends.
    drop(first);
    fake.wait_abandoned(1, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(router.chat(&user("hi again")).await.status(), 200);
}

#[tokio::test]
async fn refused_429_and_5xx_are_retried_before_the_first_byte_but_4xx_are_not() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    // The first two calls fail (503, then 429 asking for 1 s), the third answers.
    let fake = Fake::with(move |body| match counter.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::Status(503, "{}".into()),
        1 => Reply::RetryAfter(429, 1),
        _ => common::fake::vllm_reply(body),
    })
    .await;
    let router = TestRouter::start(&fake.url, |c| c.backend("primary").retries = 2).await;
    let started = Instant::now();
    let response = router.chat(&user("hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );

    // A 400 is the request's fault: one call, no retry.
    calls.store(0, Ordering::SeqCst);
    fake.set(|_| Reply::Status(400, r#"{"error":{"message":"bad","code":400}}"#.into()));
    let (status, _) = error_of(router.chat(&user("hi")).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        fake.bodies("/v1/chat/completions").len(),
        4,
        "a 4xx was retried"
    );

    // Retries are bounded: three 503s in a row give up with the backend's error.
    fake.set(|_| Reply::Status(503, "{}".into()));
    let (status, _) = error_of(router.chat(&user("hi")).await).await;
    assert_eq!(status, 503);
    assert_eq!(fake.bodies("/v1/chat/completions").len(), 7);
}
