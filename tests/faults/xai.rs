//! xAI failing on a COMPLEX request: a rejected key (xAI says so with a 400), 410 Gone
//! (a retired feature), 429 with `Retry-After`, 500. With COMPLEX's failover route the
//! primary answers instead; without it the client gets a clear error.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::answered_by_failover;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, label_reply, vllm_reply};
use crate::common::{self, TestRouter, error_of, streaming, user};

/// A router that labels everything COMPLEX, with its own primary and xAI fakes.
async fn complex(failover: bool, retries: u32) -> (TestRouter, Fake, Fake) {
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into();
        c.backend("xai").retries = retries;
        if !failover {
            c.route("COMPLEX").failover.clear();
        }
    })
    .await;
    router.classifier.set(label_reply("COMPLEX"));
    (router, primary, xai)
}

/// How many chat calls xAI received.
fn calls(xai: &Fake) -> usize {
    xai.bodies("/v1/chat/completions").len()
}

const BAD_KEY: &str = r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***."}"#;
const GONE: &str = r#"{"code":"Some requested entity was not found","error":"Live search is deprecated. Please switch to the Agent Tools API"}"#;

#[tokio::test]
async fn a_rejected_xai_key_is_a_502_upstream_auth_failed_and_is_not_retried() {
    let (router, _primary, xai) = complex(false, 2).await;
    xai.set(|_| Reply::Status(400, BAD_KEY.into()));
    for stream in [false, true] {
        let response = router.chat(&streaming(user("prove it"), stream)).await;
        assert_eq!(response.headers()["x-ai-router-route"], "xai");
        let (status, error) = error_of(response).await;
        // A 400 would make SDKs blame the caller's request; the router's key is wrong.
        assert_eq!(status, 502);
        assert_eq!(error["code"], "upstream_auth_failed");
        assert_eq!(error["type"], "upstream_error");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("xai backend rejected the router's API key"),
            "{message}"
        );
    }
    assert_eq!(calls(&xai), 2, "a rejected key was retried");
    for session in router.sessions(2).await {
        assert_eq!(
            (&session["outcome"], &session["http_status"]),
            (&"error".into(), &502.into())
        );
        assert_eq!(session["route"], "xai");
        let step = common::answer(&session);
        assert_eq!(step["provider"], "xai");
        assert!(
            step["error"]
                .as_str()
                .unwrap()
                .contains("Incorrect API key")
        );
    }
    xai.set(vllm_reply);
    assert_eq!(router.chat(&user("prove it again")).await.status(), 200);
}

#[tokio::test]
async fn a_410_from_xai_is_the_routers_failure_a_502_or_a_failover() {
    let (router, _primary, xai) = complex(false, 2).await;
    xai.set(|_| Reply::Status(410, GONE.into()));
    let (status, error) = error_of(router.chat(&user("prove it")).await).await;
    assert_eq!(
        status, 502,
        "the client's request did not ask for anything retired"
    );
    assert_eq!(error["code"], "upstream_gone");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Live search is deprecated")
    );
    assert_eq!(calls(&xai), 1, "a 410 was retried");
    let session = &router.sessions(1).await[0];
    assert_eq!(session["http_status"], 502);
    assert!(
        session["error"]
            .as_str()
            .unwrap()
            .contains("no longer offers")
    );
    // The step says what the router made of it and what xAI really sent.
    let step = common::answer(session);
    assert_eq!(
        (&step["status"], &step["backend_status"]),
        (&502.into(), &410.into())
    );

    // With failover on, the primary answers instead.
    let (router, primary, xai) = complex(true, 0).await;
    xai.set(|_| Reply::Status(410, GONE.into()));
    let response = router.chat(&user("prove it")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-failover"], "xai->primary");
    assert_eq!(primary.bodies("/v1/chat/completions").len(), 1);
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "ok");
    assert!(
        session["route_fallback"]
            .as_str()
            .unwrap()
            .contains("Live search is deprecated")
    );
}

#[tokio::test]
async fn a_429_from_xai_is_retried_after_its_retry_after_and_then_handed_to_the_client() {
    let (router, _primary, xai) = complex(false, 1).await;
    // Busy once: the retry after Retry-After gets the answer.
    let busy_once = std::sync::atomic::AtomicBool::new(true);
    xai.set(move |body| {
        if busy_once.swap(false, std::sync::atomic::Ordering::SeqCst) {
            Reply::RetryAfter(429, 1)
        } else {
            vllm_reply(body)
        }
    });
    let started = Instant::now();
    assert_eq!(router.chat(&user("prove it")).await.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(calls(&xai), 2);

    // Busy every time: after the configured retry, the client gets the 429 and the
    // backend's Retry-After, which its SDK honours.
    xai.set(|_| Reply::RetryAfter(429, 1));
    let response = router.chat(&user("prove it again")).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 429);
    assert_eq!(error["message"], "busy", "the backend's own message");
    assert_eq!(calls(&xai), 4, "one try and one retry");

    // Asked to wait beyond the request's deadline: no retry, the client waits instead.
    xai.set(|_| Reply::RetryAfter(429, 30));
    let started = Instant::now();
    let response = router.chat(&user("prove it once more")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(calls(&xai), 5);

    // An absurd wait is capped at an hour, not an overflow that drops the connection.
    xai.set(|_| Reply::RetryAfter(429, u64::MAX));
    let response = router.chat(&user("prove it forever")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3600");
    assert_eq!(calls(&xai), 6);

    let sessions = router.sessions(4).await;
    assert_eq!(sessions[0]["outcome"], "ok");
    for session in &sessions[1..] {
        assert_eq!(
            (&session["outcome"], &session["http_status"]),
            (&"error".into(), &429.into())
        );
        assert_eq!(common::answer(session)["status"], 429);
    }
    xai.set(vllm_reply);
    assert_eq!(router.chat(&user("and now?")).await.status(), 200);
}

#[tokio::test]
async fn a_500_from_xai_reaches_the_client_or_fails_over_to_the_primary() {
    let grok_down =
        |_: &Value| Reply::Status(500, r#"{"code":"internal","error":"grok is down"}"#.into());
    let (router, _primary, xai) = complex(false, 1).await;
    xai.set(grok_down);
    for stream in [false, true] {
        let (status, error) =
            error_of(router.chat(&streaming(user("prove it"), stream)).await).await;
        assert_eq!(status, 500);
        assert_eq!(error["message"], "grok is down");
    }
    assert_eq!(calls(&xai), 4, "each request: one try and one retry");
    for session in router.sessions(2).await {
        assert_eq!(
            (&session["outcome"], &session["http_status"]),
            (&"error".into(), &500.into())
        );
        assert_eq!(common::answer(&session)["status"], 500);
    }
    xai.set(vllm_reply);
    assert_eq!(router.chat(&user("prove it now")).await.status(), 200);

    // The default: the primary answers with its own system prompt, and says so.
    let (router, primary, xai) = complex(true, 0).await;
    xai.set(grok_down);
    answered_by_failover(&router, "prove it", "xai->primary", "primary").await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT
    );
    for session in router.sessions(2).await {
        assert_eq!(session["classification"], "COMPLEX");
        assert_eq!(session["route"], "primary");
        assert_eq!(session["outcome"], "ok");
        assert!(
            session["route_fallback"]
                .as_str()
                .unwrap()
                .contains("grok is down")
        );
        let providers: Vec<&str> = session["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["provider"].as_str().unwrap())
            .collect();
        assert_eq!(providers, ["classifier", "xai", "primary"]);
    }
    // A 4xx is about the request: no failover.
    xai.set(|_| {
        Reply::Status(
            400,
            r#"{"code":"x","error":"Argument not supported: n"}"#.into(),
        )
    });
    let response = router.chat(&user("prove more")).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("x-ai-router-failover").is_none());
}
