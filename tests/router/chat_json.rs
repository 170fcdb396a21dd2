//! Non-streamed chats: what the client gets, what the backend receives.

use crate::common;
use crate::common::fake::Fake;
use crate::common::{SYSTEM_PROMPT, TestRouter};
use serde_json::{Value, json};

#[tokio::test]
async fn non_stream_answer_names_the_virtual_model_and_shapes_the_upstream_request() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let body = json!({
        "model": "ai-router:latest",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"}
        ],
        "max_tokens": 50,
        "max_completion_tokens": 60,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["\n\n"],
        "user": "alice"
    });
    let response = router.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 8);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "ai-router");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(
        answer["choices"][0]["message"]["reasoning_content"], "The user greets.",
        "reasoning passes through untouched"
    );

    let sent = fake.last_body();
    assert_eq!(sent["model"], "served-model");
    assert!(
        sent.get("max_tokens").is_none(),
        "max_tokens reached the local model"
    );
    assert!(sent.get("max_completion_tokens").is_none());
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["top_p"], 0.8);
    assert_eq!(sent["stop"], json!(["\n\n"]));
    assert_eq!(sent["user"], "alice");
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[0]["content"],
        format!("{SYSTEM_PROMPT}\n\nYou are terse.")
    );
    assert_eq!(messages[1], json!({"role": "user", "content": "Say hello"}));

    let sessions = router.sessions(1).await;
    assert_eq!(sessions[0]["id"], id);
}

#[tokio::test]
async fn the_clients_authorization_never_reaches_the_backend() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let response = common::client()
        .post(format!("{}/v1/chat/completions", router.url))
        .bearer_auth("sk-client-secret")
        .json(&common::user("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = fake.received();
    let headers = &received[0].headers;
    assert!(headers.get("authorization").is_none());
    assert_eq!(headers["x-request-id"], response.headers()["x-request-id"]);
}

#[tokio::test]
async fn paths_without_v1_work_too() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let response = common::client()
        .post(format!("{}/chat/completions", router.url))
        .json(&common::user("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let models: Value = common::client()
        .get(format!("{}/models", router.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "ai-router");
}

/// A JSON answer reaches the client as the backend wrote it, only `model` renamed: its
/// key order, its numbers, the fields the router does not know. One that cannot be
/// renamed in place (its model written with an escape, or no model at all) is still
/// renamed, and the session log records the answer the same either way.
#[tokio::test]
async fn a_json_answer_passes_as_the_backend_wrote_it_with_only_the_model_renamed() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let written = r#"{"id":"c-1","object":"chat.completion","model":"served-model","created":1.50e3,"choices":[{"index":0,"message":{"role":"assistant","content":"Hi","reasoning_content":"think"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"x_vendor":{"b":1,"a":2}}"#;
    let escaped = r#"{"model":"served\u002dmodel","choices":[{"message":{"content":"Hi"}}]}"#;
    let unnamed = r#"{"choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}]}"#;
    for (i, (backend, expected)) in [
        (written, written.replace("served-model", "ai-router")),
        (escaped, r#"{"choices":[{"message":{"content":"Hi"}}],"model":"ai-router"}"#.into()),
        (unnamed, r#"{"choices":[{"finish_reason":"stop","message":{"content":"Hi"}}],"model":"ai-router"}"#.into()),
    ]
    .into_iter()
    .enumerate()
    {
        fake.set(move |_| common::fake::Reply::Raw("application/json", backend.into()));
        let response = router.chat(&common::user("hello")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), expected, "answer {i}");
        let session = router.sessions(i + 1).await.pop().unwrap();
        let step = answer_step(&session);
        assert_eq!(step["response_content"], "Hi", "answer {i}");
    }
    let sessions = router.sessions(3).await;
    let step = answer_step(&sessions[0]);
    assert_eq!(step["reasoning_content"], "think");
    assert_eq!(step["finish_reason"], "stop");
    assert_eq!(step["usage"]["total_tokens"], 4);
}

fn answer_step(session: &Value) -> &Value {
    let steps = session["steps"].as_array().unwrap();
    steps.iter().find(|s| s["step"] == "answer").unwrap()
}
