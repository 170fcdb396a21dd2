//! What an admin reads back stays whole and in one vocabulary: what a refused client
//! sent, one word for a request without a route, a backend error kind that says what
//! happened, and figures without float noise.

use serde_json::json;

use crate::common::fake::{Fake, Reply, chunk_json};
use crate::common::{TestRouter, read_sse, streaming, user};

const BIN: &str = env!("CARGO_BIN_EXE_ai-router");

#[tokio::test]
async fn a_refused_request_keeps_what_the_client_sent() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    router.post_raw("{not json").await;
    router.post_raw(r#"{"model":"x","messages":"hello"}"#).await;
    let too_many = json!({"messages":[{"role":"user","content":"hi"}],"n":1000});
    assert_eq!(router.chat(&too_many).await.status(), 400);
    let sessions = router.sessions(3).await;
    let by_status = |body: &str| {
        sessions
            .iter()
            .find(|s| s["rejected_body"] == body)
            .unwrap_or_else(|| panic!("no session kept {body}: {sessions:#?}"))
    };
    assert_eq!(by_status("{not json")["http_status"], 400);
    assert_eq!(
        by_status(r#"{"model":"x","messages":"hello"}"#)["client_messages"],
        json!(null)
    );
    // Understood but refused: the conversation is kept as for any chat.
    let refused = sessions.iter().find(|s| s["user_query"] == "hi").unwrap();
    assert_eq!(refused["client_messages"][0]["content"], "hi");
    assert!(refused.get("rejected_body").is_none());
}

#[tokio::test]
async fn a_request_without_a_route_is_rejected_everywhere() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    router.post_raw("{not json").await;
    router.chat(&user("hi")).await;
    router.sessions(2).await;
    let (_, _, stats) = router.get("/stats").await;
    assert_eq!(stats["since_start"]["routes"]["rejected"], 1, "{stats}");
    assert_eq!(stats["last_24h"]["routes"]["rejected"], 1, "{stats}");
    assert!(stats["last_24h"]["routes"].get("none").is_none(), "{stats}");
    let out = std::process::Command::new(BIN)
        .args(["sessions", "--dir"])
        .arg(&router.sessions_dir)
        .args(["stats", "--json"])
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["routes"]["rejected"], 1, "{summary}");
}

#[tokio::test]
async fn a_stream_cut_after_its_first_token_is_a_bad_answer_not_a_2xx_error() {
    let fake = Fake::with(|_| Reply::Cut(vec![chunk_json("Hel", None).to_string()])).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    read_sse(router.chat(&streaming(user("hi"), true)).await).await;
    router.sessions(1).await;
    let metrics = router.metrics().await;
    assert!(
        metrics
            .contains(r#"ai_router_backend_errors_total{backend="primary",kind="bad_answer"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"kind="2xx""#), "{metrics}");
}
