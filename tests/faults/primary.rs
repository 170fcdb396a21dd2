//! The primary (vLLM) failing: refused, hanging, slow to start, going silent or dying
//! mid-stream. Garbage from it is in `garbage.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, chunk_json, vllm_reply};
use crate::common::{self, TestRouter, error_of, read_sse, still_serves, streaming, user};
use crate::{answered_by_failover, back_up, closed_port, in_band_error, session_for};

#[tokio::test]
async fn a_refused_primary_is_a_502_naming_it_and_is_used_again_once_it_is_back() {
    let (socket, url) = closed_port();
    let router = TestRouter::start(&url, |c| c.health.failure_threshold = 2).await;
    for stream in [false, true] {
        let response = router.chat(&streaming(user("hi"), stream)).await;
        assert_eq!(response.headers()["x-ai-router-route"], "primary");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 502);
        assert_eq!(error["code"], "upstream_unreachable");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("primary") && message.contains("refused"),
            "{message}"
        );
        assert!(
            !message.contains("127.0.0.1"),
            "internals leaked: {message}"
        );
    }
    for session in router.sessions(2).await {
        assert_eq!(session["outcome"], "error");
        assert_eq!(session["http_status"], 502);
        assert!(session["error"].as_str().unwrap().contains("refused"));
        let step = common::answer(&session);
        assert!(step["error"].as_str().unwrap().contains("refused"));
        assert!(step["status"].is_null(), "the primary never answered");
    }
    // vLLM restarts on the same address: the very next request is answered. Two
    // failures in a row had marked it down, which that request's log shows.
    let primary = back_up(socket, vllm_reply);
    assert_eq!(router.chat(&user("back?")).await.status(), 200);
    let back = &router.sessions(3).await[2];
    assert_eq!(back["outcome"], "ok");
    assert_eq!(back["backends_down"], serde_json::json!(["primary"]));
    still_serves(&router, &primary).await;
    let after = &router.sessions(5).await[4];
    assert_eq!(after["backends_down"], serde_json::json!([]), "up again");
}

#[tokio::test]
async fn a_refused_primary_fails_over_to_xai_when_allowed_and_says_so() {
    let (socket, url) = closed_port();
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into();
        c.route("MODERATE").failover = vec!["COMPLEX".into()];
    })
    .await;
    answered_by_failover(&router, "hi", "primary->xai", "xai").await;
    let system = &xai.last_body()["messages"][0]["content"];
    assert!(
        system.as_str().unwrap().starts_with("TEST XAI SYSTEM"),
        "{system}"
    );
    for session in router.sessions(2).await {
        assert_eq!(session["route"], "xai");
        assert_eq!(session["outcome"], "ok");
        let why = session["route_fallback"].as_str().unwrap();
        assert!(
            why.contains("primary failed before answering") && why.contains("refused"),
            "{why}"
        );
        let providers: Vec<&str> = session["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["provider"].as_str().unwrap())
            .collect();
        assert_eq!(providers, ["classifier", "primary", "xai"]);
    }
    // Once the primary is back, it answers again: no failover.
    let primary = back_up(socket, vllm_reply);
    let response = router.chat(&user("back?")).await;
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    assert!(response.headers().get("x-ai-router-failover").is_none());
    still_serves(&router, &primary).await;
}

#[tokio::test]
async fn a_hanging_primary_is_a_504_within_its_timeout_and_the_call_is_dropped() {
    let fake = Fake::with(|_| Reply::Hang).await;
    let router = TestRouter::start(&fake.url, |c| {
        c.backend("primary").timeout_secs = 1;
        c.backend("primary").response_timeout_secs = 1;
    })
    .await;
    for stream in [false, true] {
        let started = Instant::now();
        let (status, error) = error_of(router.chat(&streaming(user("hi"), stream)).await).await;
        assert_eq!(status, 504);
        assert_eq!(error["code"], "upstream_timeout");
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
    }
    // The router hung up on the silent calls rather than leaving them open.
    fake.wait_abandoned(2, Duration::from_secs(1)).await;
    for session in router.sessions(2).await {
        assert_eq!(session["outcome"], "error");
        assert_eq!(session["http_status"], 504);
        let why = session["error"].as_str().unwrap();
        assert_eq!(why, "the primary backend did not answer within 1 s");
        assert_eq!(common::answer(&session)["error"], why);
    }
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn a_primary_that_goes_silent_mid_stream_ends_it_with_an_in_band_504() {
    let fake = Fake::with(|_| Reply::Stall(vec![chunk_json("partial", None)])).await;
    let router = TestRouter::start(&fake.url, |c| c.backend("primary").timeout_secs = 1).await;
    let started = Instant::now();
    let response = router.chat(&streaming(user("hi"), true)).await;
    assert_eq!(response.status(), 200);
    let data = read_sse(response).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(data[0].contains("partial"));
    assert_eq!(in_band_error(&data)["code"], "upstream_timeout");
    assert_eq!(data.len(), 3, "{data:?}");
    fake.wait_abandoned(1, Duration::from_secs(1)).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "error");
    assert_eq!(session["http_status"], 200, "the headers had gone out");
    assert_eq!(session["error"], "the primary backend sent nothing for 1 s");
    assert_eq!(common::answer(session)["response_content"], "partial");
    still_serves(&router, &fake).await;
}

/// A stream whose first event comes `delay` after its headers.
fn first_event_after(delay: Duration) -> Reply {
    let frame = |e: String| format!("data: {e}\n\n").into_bytes();
    Reply::Chunks(
        "text/event-stream",
        vec![
            (delay, frame(chunk_json("late", Some("stop")))),
            (Duration::ZERO, frame("[DONE]".into())),
        ],
    )
}

#[tokio::test]
async fn a_slow_first_byte_is_awaited_up_to_the_timeout_and_is_a_504_beyond_it() {
    // The question says how the fake answers: within the 1 s timeout, or not.
    let fake = Fake::with(|body| {
        let question = crate::question(body);
        let delay = if question.starts_with("slow") {
            Duration::from_millis(400)
        } else {
            Duration::from_secs(3)
        };
        match (body["stream"] == true, question.ends_with("headers")) {
            (true, true) => Reply::Late(delay, Box::new(vllm_reply(body))),
            (true, false) => first_event_after(delay),
            (false, _) => Reply::Late(delay, Box::new(vllm_reply(body))),
        }
    })
    .await;
    let router = TestRouter::start(&fake.url, |c| {
        c.backend("primary").timeout_secs = 1;
        c.backend("primary").response_timeout_secs = 1;
    })
    .await;
    let cases = [
        ("slow headers", true),
        ("slow first event", true),
        ("slow json", false),
        ("too slow headers", true),
        ("too slow first event", true),
        ("too slow json", false),
    ];
    let runs = cases.map(|(question, stream)| {
        let router = &router;
        async move {
            let started = Instant::now();
            let response = router.chat(&streaming(user(question), stream)).await;
            (response, started.elapsed())
        }
    });
    let results = futures_util::future::join_all(runs).await;
    for ((question, stream), (response, took)) in cases.iter().zip(results) {
        if question.starts_with("slow") {
            assert_eq!(response.status(), 200, "{question}");
            if *stream {
                let data = read_sse(response).await;
                assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
                assert!(!data.iter().any(|d| d.contains("\"error\"")), "{data:?}");
            }
        } else {
            // Nothing was relayed yet: a real 504, not a 200 that breaks off.
            assert!(took < Duration::from_millis(2500), "{question}: {took:?}");
            let (status, error) = error_of(response).await;
            assert_eq!(
                (status, &error["code"]),
                (504, &Value::from("upstream_timeout"))
            );
        }
    }
    fake.wait_abandoned(3, Duration::from_secs(1)).await;
    let sessions = router.sessions(6).await;
    for (question, _) in cases {
        let session = session_for(&sessions, question);
        let (outcome, status) = if question.starts_with("slow") {
            ("ok", 200)
        } else {
            ("error", 504)
        };
        assert_eq!(session["outcome"], outcome, "{question}");
        assert_eq!(session["http_status"], status, "{question}");
    }
    let slow = common::answer(session_for(&sessions, "slow first event"));
    assert!(slow["ttft_ms"].as_u64().unwrap() >= 400, "{slow}");
    still_serves(&router, &fake).await;
}

/// A fake's script, as a plain function.
type Script = fn(&Value) -> Reply;

#[tokio::test]
async fn a_primary_that_dies_mid_stream_ends_the_answer_with_an_in_band_error() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let cases: [(Script, &str, &str); 3] = [
        // The process died: the connection breaks off.
        (
            |_| Reply::Cut(vec![chunk_json("a", None)]),
            "upstream_stream_error",
            "stream failed",
        ),
        // The connection closed cleanly, but before the answer was finished.
        (
            |_| Reply::Sse(vec![chunk_json("a", None)], Duration::ZERO),
            "upstream_stream_incomplete",
            "before the answer was complete",
        ),
        // vLLM's own report of a dead engine: its error event, then [DONE].
        (
            |_| {
                let error = r#"{"error":{"message":"engine died","type":"InternalServerError","code":500}}"#;
                Reply::Sse(
                    vec![chunk_json("a", None), error.into(), "[DONE]".into()],
                    Duration::ZERO,
                )
            },
            "500",
            "engine died",
        ),
    ];
    for (script, code, why) in cases {
        fake.set(script);
        let response = router.chat(&streaming(user("hi"), true)).await;
        assert_eq!(response.status(), 200);
        let data = read_sse(response).await;
        assert!(
            data[0].contains("\"a\""),
            "what came before is relayed: {data:?}"
        );
        let error = in_band_error(&data);
        assert_eq!(error["code"].to_string().trim_matches('"'), code, "{error}");
        assert!(error["message"].as_str().unwrap().contains(why), "{error}");
    }
    let sessions = router.sessions(3).await;
    for (session, (_, _, why)) in sessions.iter().zip(cases) {
        assert_eq!(session["outcome"], "error");
        assert_eq!(session["http_status"], 200);
        assert!(
            session["error"].as_str().unwrap().contains(why),
            "{session}"
        );
        let step = common::answer(session);
        assert_eq!(step["response_content"], "a");
        assert_eq!(step["error"], session["error"]);
    }
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn a_primary_that_dies_before_its_first_event_is_a_502() {
    let fake = Fake::with(|_| Reply::Cut(Vec::new())).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let (status, error) = error_of(router.chat(&streaming(user("hi"), true)).await).await;
    assert_eq!(status, 502);
    // Whether its headers left before it died is a race on the fake's side: either
    // way the client gets a real 502 naming the primary, not a 200 that breaks off.
    let code = error["code"].as_str().unwrap();
    assert!(
        ["upstream_invalid_response", "upstream_unreachable"].contains(&code),
        "{error}"
    );
    assert!(error["message"].as_str().unwrap().contains("primary"));
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "error");
    assert_eq!(session["http_status"], 502);
    assert_eq!(session["error"], error["message"]);
    still_serves(&router, &fake).await;
}
