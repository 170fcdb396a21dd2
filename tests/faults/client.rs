//! The client leaving before its answer is complete: mid-stream, while a JSON answer is
//! being generated, or during ENRICH's search. The router closes the backend call within
//! 100 ms (vLLM frees the GPU slot when its connection closes) and logs
//! `client_disconnected` with what had been relayed.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, chunk_json, label_reply};
use crate::common::{self, TestRouter, still_serves, streaming, user};

/// How soon after the client leaves the backend's connection must be closed.
const CLOSE_WITHIN: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_client_that_leaves_mid_stream_closes_the_upstream_within_100_ms() {
    // While tokens flow, and while the backend is silent (thinking) after a first one.
    let fake = Fake::with(|body| match crate::question(body) {
        "a long story" => Reply::Forever(Duration::from_millis(20)),
        _ => Reply::Stall(vec![chunk_json("tick ", None)]),
    })
    .await;
    let router = TestRouter::start(&fake.url, |c| c.backend("primary").timeout_secs = 30).await;
    for (n, (question, ticks)) in [("a long story", 3), ("a pause", 1)]
        .into_iter()
        .enumerate()
    {
        let response = router.chat(&streaming(user(question), true)).await;
        let mut events = common::sse_events(response);
        for _ in 0..ticks {
            let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
            assert!(event.unwrap().unwrap().contains("tick"));
        }
        // The client reads on for a moment (the backend thinks, or ticks on), then leaves.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fake.abandoned(), n);
        drop(events);
        let left = Instant::now();
        fake.wait_abandoned(n + 1, CLOSE_WITHIN).await;
        println!(
            "{question}: upstream closed {:?} after the client left",
            left.elapsed()
        );
    }
    let sessions = router.sessions(2).await;
    for (question, relayed) in [("a long story", "tick tick tick"), ("a pause", "tick ")] {
        let session = crate::session_for(&sessions, question);
        assert_eq!(session["outcome"], "client_disconnected");
        assert_eq!(session["http_status"], 499);
        assert!(session["error"].is_null());
        let step = common::answer(session);
        let content = step["response_content"].as_str().unwrap();
        assert!(content.starts_with(relayed), "{question}: {content:?}");
        assert!(step["duration_ms"].as_u64().unwrap() > 0);
    }
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn a_client_that_leaves_before_its_json_answer_closes_the_upstream_within_100_ms() {
    let fake = Fake::with(|_| Reply::Hang).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let request = common::client()
        .post(format!("{}/v1/chat/completions", router.url))
        .json(&user("hi"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(request.unwrap_err().is_timeout(), "the fake never answers");
    let left = Instant::now();
    fake.wait_abandoned(1, CLOSE_WITHIN).await;
    println!("upstream closed {:?} after the client left", left.elapsed());
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "client_disconnected");
    assert_eq!(session["http_status"], 499);
    assert!(common::answer(session)["status"].is_null());
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn a_client_that_leaves_during_the_search_closes_it_and_the_log_shows_it() {
    let primary = Fake::start().await;
    let xai = Fake::with(|_| Reply::Hang).await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into()
    })
    .await;
    router.classifier.set(label_reply("ENRICH"));
    let response = router.chat(&streaming(user("news?"), true)).await;
    assert_eq!(response.status(), 200, "ENRICH streams its headers at once");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(response);
    let left = Instant::now();
    xai.wait_abandoned(1, CLOSE_WITHIN).await;
    println!("search closed {:?} after the client left", left.elapsed());
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "client_disconnected");
    let steps = common::step_names(session);
    assert_eq!(
        steps,
        ["classify", "enrich"],
        "the search in flight is recorded"
    );
    assert!(
        primary.received().is_empty(),
        "no answer was started for nobody"
    );
    xai.set(common::fake::vllm_reply);
    router.classifier.set(label_reply("SIMPLE"));
    still_serves(&router, &primary).await;
}
