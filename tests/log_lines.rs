//! The router's own log: every request's "session finished" line carries its request id,
//! also when the answer ends outside the handler (a streamed ENRICH answer, a client that
//! left mid-stream), so an admin can follow one request from its `x-request-id`.
//! Its own test binary: it installs the process-wide tracing subscriber.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure should panic with its message"
)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ConfigExt;
use common::fake::{Fake, Reply, label_reply, responses_json, vllm_reply};
use common::{TestRouter, read_sse, streaming, user};
use futures_util::StreamExt;

/// Everything the router logs, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn finished_lines(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("session finished"))
            .map(String::from)
            .collect()
    }
}

/// The process-wide log, captured: installed once for every test of this binary.
fn captured() -> &'static Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    })
}

#[tokio::test]
async fn every_finished_session_is_logged_with_its_request_id() {
    let log = captured();

    // A streamed ENRICH answer: it ends after the handler has returned.
    let primary = Fake::start().await;
    let xai = Fake::with(|body| {
        if body.get("input").is_some() {
            Reply::Json(responses_json("Oslo: rain.", "https://met.example/oslo"))
        } else {
            vllm_reply(body)
        }
    })
    .await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into()
    })
    .await;
    router.classifier.set(label_reply("ENRICH"));
    let body = streaming(user("weather in Oslo today?"), true);
    let enrich = router.chat(&body).await;
    let enrich_id = enrich.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    read_sse(enrich).await;

    // A client that leaves mid-stream: its session is dropped, not finished.
    primary.set(|_| Reply::Forever(Duration::from_millis(20)));
    router.classifier.set(label_reply("SIMPLE"));
    let left = router.chat(&body).await;
    let left_id = left.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut events = common::sse_events(left);
    events.next().await;
    drop(events);

    let sessions = router.sessions(2).await;
    assert!(
        sessions
            .iter()
            .any(|s| s["outcome"] == "client_disconnected")
    );
    let lines: Vec<String> = log
        .finished_lines()
        .into_iter()
        .filter(|l| l.contains(&enrich_id) || l.contains(&left_id))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for id in [&enrich_id, &left_id] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("request_id={id}"))),
            "no finished line names {id}: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn a_backend_cannot_write_a_line_of_its_own_into_the_log() {
    let log = captured();
    let forged = "INFO ai_router: admin logged in from 10.0.0.1";
    let primary = Fake::with(move |_| {
        let message = format!("engine failed\n2026-12-05T00:00:00Z {forged}\r\u{1b}[2K");
        Reply::Status(
            500,
            serde_json::json!({"error": {"message": message}}).to_string(),
        )
    })
    .await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    let response = router.chat(&user("hi")).await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("engine failed\\n2026"), "{message}");
    router.sessions(1).await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("admin logged in"))
        .collect();
    assert!(
        !lines.is_empty(),
        "the backend's message was not logged at all"
    );
    for line in lines {
        assert!(
            line.contains("engine failed"),
            "a forged line reached the log: {line:?}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "a terminal escape reached the log: {line:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_chat_is_one_warning_line_not_two() {
    let log = captured();
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    for body in ["{not json", r#"{"messages":"hello"}"#] {
        let response = router.post_raw(body).await;
        assert_eq!(response.status(), 400);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        router.flush().await;
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&id)).collect();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("session finished"),
            "{lines:#?}"
        );
    }
}

#[tokio::test]
async fn a_budget_warns_once_when_nearly_spent_and_once_when_spent() {
    let log = captured();
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        // $1.00 for each of the fakes' answers (12 tokens in, 5 out).
        c.prices.insert(
            "grok-dollar".into(),
            ai_router::config::Price {
                input_per_million: 50_000.0,
                output_per_million: 80_000.0,
            },
        );
        let xai = c.backend("xai");
        xai.model = "grok-dollar".into();
        xai.base_url = xai_url.as_str().into();
        c.budget.insert(
            "xai".into(),
            ai_router::config::BudgetConfig {
                daily_usd: 2.5,
                ..Default::default()
            },
        );
    })
    .await;
    router.classifier.set(label_reply("COMPLEX"));
    let mut routes = Vec::new();
    for _ in 0..5 {
        let response = router.chat(&user("prove it")).await;
        routes.push(
            response.headers()["x-ai-router-route"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    // $1, $2 (80 %: the warning), $3 (spent), then the primary answers.
    assert_eq!(routes, ["xai", "xai", "xai", "primary", "primary"]);
    router.sessions(5).await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("cloud budget nearly spent"), 1, "{text}");
    assert_eq!(count("cloud budget spent"), 1, "{text}");
    assert!(
        text.lines().any(|l| l.contains("cloud budget spent")
            && l.contains("spent_usd=3")
            && l.contains("limit_usd=2.5")),
        "{text}"
    );
}
