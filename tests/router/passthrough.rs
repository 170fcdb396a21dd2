//! The rest of the OpenAI API (`[passthrough."/v1/PATH"]`): embeddings and completions
//! passed to their backend as they came, with the backend's model name on the way in
//! and the client's on the way out, failover, and a lean session record.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake::{Fake, Reply};
use crate::common::{ConfigExt, TestRouter, client, read_sse};
use ai_router::config::PassthroughConfig;

fn pass(backend: &str, failover: &[&str]) -> PassthroughConfig {
    PassthroughConfig {
        backend: backend.into(),
        failover: failover.iter().map(|b| b.to_string()).collect(),
    }
}

async fn post(router: &TestRouter, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", router.url))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn embedding(_: &Value) -> Reply {
    Reply::Json(json!({"object": "list", "model": "served-model",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}}))
}

#[tokio::test]
async fn embeddings_go_to_their_backend_and_the_log_keeps_no_input() {
    let fake = Fake::with(embedding).await;
    let router = TestRouter::start(&fake.url, |c| {
        c.passthrough
            .insert("/v1/embeddings".into(), pass("primary", &[]));
    })
    .await;
    let body = json!({"model": "text-embed", "input": ["my private notes"]});
    for path in ["/v1/embeddings", "/embeddings"] {
        let response = post(&router, path, &body).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-ai-router-route"], "embeddings");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["model"], "text-embed",
            "the client's model comes back"
        );
        assert_eq!(answer["data"][0]["embedding"], json!([0.25, -0.5]));
    }
    let received = fake.received();
    assert_eq!(received[0].path, "/v1/embeddings");
    assert_eq!(received[0].body["model"], "served-model");
    assert_eq!(received[0].body["input"], json!(["my private notes"]));
    assert!(
        router.classifier.received().is_empty(),
        "an embedding was classified"
    );
    let sessions = router.sessions(2).await;
    let text = serde_json::to_string(&sessions).unwrap();
    assert!(!text.contains("my private notes"), "the input was logged");
    assert_eq!(sessions[0]["route"], "embeddings");
    assert_eq!(
        sessions[0]["steps"][0]["messages_sent"],
        "[1 input(s), not logged]"
    );
    assert_eq!(sessions[0]["steps"][0]["usage"]["prompt_tokens"], 3);
    // Not listed: the 404 envelope as before.
    let (status, _, body) = router.get("/v1/audio/speech").await;
    assert!(status == 404 || status == 405, "{status} {body}");
}

#[tokio::test]
async fn a_streamed_completion_is_relayed_like_a_chat_and_fails_over() {
    let primary =
        Fake::with(|_| Reply::Status(500, r#"{"error":{"message":"boom"}}"#.into())).await;
    let second = Fake::with(|_| {
        let chunk = |text: &str| {
            json!({"id": "cmpl-1", "object": "text_completion", "model": "served-model",
                   "choices": [{"index": 0, "text": text, "finish_reason": null}]})
            .to_string()
        };
        Reply::Sse(
            vec![chunk("Once"), chunk(" upon"), "[DONE]".into()],
            Duration::from_millis(5),
        )
    })
    .await;
    let second_url = second.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        let mut other = c.backend("primary").clone();
        other.base_url = second_url.as_str().into();
        c.backends.insert("second".into(), other);
        c.passthrough
            .insert("/v1/completions".into(), pass("primary", &["second"]));
    })
    .await;
    let body = json!({"model": "ai-router", "prompt": "Tell a story", "stream": true});
    let response = post(&router, "/v1/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-ai-router-failover"],
        "primary->second"
    );
    let events = read_sse(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["text"], "Once");
    assert_eq!(first["model"], "ai-router");
    assert_eq!(second.received()[0].path, "/v1/completions");
    let session = &router.sessions(1).await[0];
    assert_eq!(session["route"], "completions");
    assert_eq!(session["client_messages"], "Tell a story");
    let answer = session["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(answer["response_content"], "Once upon");
    assert!(
        session["route_fallback"]
            .as_str()
            .unwrap()
            .contains("(failover)")
    );
}

#[test]
fn only_v1_paths_the_router_does_not_answer_may_be_passed_through() {
    for (path, ok) in [
        ("/v1/embeddings", true),
        ("/v1/audio/speech", true),
        ("/v1/chat/completions", false),
        ("/v1/models", false),
        ("/embeddings", false),
        ("/v1/../admin", false),
        ("/v1/Embeddings", false),
    ] {
        let mut config = ai_router::config::Config::default();
        config.passthrough.insert(path.into(), pass("primary", &[]));
        assert_eq!(ai_router::config::validate(&config).is_ok(), ok, "{path}");
    }
    let mut config = ai_router::config::Config::default();
    config
        .passthrough
        .insert("/v1/embeddings".into(), pass("nope", &[]));
    assert!(ai_router::config::validate(&config).is_err());
}
