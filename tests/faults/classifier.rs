//! The classifier failing: refused, hanging, or answering garbage. A failing
//! classifier never fails the request: it is answered on the fallback route (MODERATE)
//! within the classifier's timeout, and the session log says why.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::closed_port;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, completion_json, label_reply};
use crate::common::{self, TestRouter, user};

/// A fake's script, as a plain function.
type Script = fn(&Value) -> Reply;

/// Each failure once the classifier is listening, and what the log says about it.
const FAILURES: [(&str, Script, &str); 7] = [
    ("hangs", |_| Reply::Hang, "timed out after 1 s"),
    (
        "sends its headers, then nothing",
        |_| Reply::Stall(Vec::new()),
        "timed out after 1 s",
    ),
    (
        "fails with a 500",
        |_| {
            Reply::Status(
                500,
                r#"{"error":{"message":"engine dead","code":500}}"#.into(),
            )
        },
        "engine dead",
    ),
    (
        "answers HTML",
        |_| Reply::Raw("text/html", "<html>".into()),
        "not JSON",
    ),
    (
        "answers binary junk",
        |_| Reply::Chunks("application/json", vec![(Duration::ZERO, vec![0xff, 0x00])]),
        "not JSON",
    ),
    (
        "answers JSON that is not a completion",
        |_| Reply::Json(serde_json::json!({"label": "SIMPLE"})),
        "without a label",
    ),
    (
        "answers without a label",
        |_| Reply::Json(completion_json("I cannot decide.")),
        "without a label",
    ),
];

/// Asks `router` a question naming the failure; the answer must be a 200 from the
/// primary within the classifier's timeout (1 s) and a margin.
async fn ask(router: &TestRouter, failure: &str) {
    let started = Instant::now();
    let response = router.chat(&user(&format!("classifier {failure}"))).await;
    assert_eq!(response.status(), 200, "{failure}: the request failed");
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "{failure}: {took:?}");
}

#[tokio::test]
async fn a_failing_classifier_falls_back_to_moderate_within_its_timeout() {
    let primary = Fake::start().await;
    let (socket, url) = closed_port();
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("classifier").base_url = url.as_str().into();
        c.backend("classifier").timeout_secs = 1;
    })
    .await;
    ask(&router, "refused").await;
    // The classifier listens now, and fails in every other way.
    let classifier = crate::back_up(socket, |_| Reply::Hang);
    for (failure, script, _) in FAILURES {
        classifier.set(script);
        ask(&router, failure).await;
    }
    let sessions = router.sessions(FAILURES.len() + 1).await;
    let refused = ("refused", "connection refused");
    for (failure, why) in std::iter::once(refused).chain(FAILURES.map(|(f, _, why)| (f, why))) {
        let session = crate::session_for(&sessions, &format!("classifier {failure}"));
        assert_eq!(session["outcome"], "ok", "{failure}");
        assert_eq!(session["route"], "primary", "{failure}");
        assert_eq!(session["classification"], "MODERATE", "{failure}");
        let fallback = session["classification_fallback"].as_str().unwrap();
        assert!(fallback.contains(why), "{failure}: {fallback}");
        assert!(fallback.contains("used MODERATE"), "{failure}: {fallback}");
        assert!(session["classification_ms"].as_u64().unwrap() < 2500);
        let step = &session["steps"][0];
        assert_eq!(step["step"], "classify", "{failure}");
        let error = step["error"].as_str().unwrap();
        assert!(error.contains(why), "{failure}: {step}");
    }
    // The classifier recovers: its labels are used again.
    classifier.set(label_reply("SIMPLE"));
    assert_eq!(router.chat(&user("hello again")).await.status(), 200);
    let sessions = router.sessions(FAILURES.len() + 2).await;
    let recovered = crate::session_for(&sessions, "hello again");
    assert_eq!(recovered["classification"], "SIMPLE");
    assert!(recovered["classification_fallback"].is_null());
    assert_eq!(common::answer(recovered)["provider"], "primary");
}
