//! The five labels end to end: what the client gets, what each backend received, and
//! what the session log says — against fake classifier, primary and xAI backends.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, completion_json, label_reply};
use crate::common::{TestRouter, read_sse, streaming, user};
use serde_json::{Value, json};

/// A router whose classifier says `label`, with its own primary and xAI fakes.
async fn routed(label: &'static str) -> (TestRouter, Fake, Fake) {
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into();
        c.backend("xai").model = "grok-test".into();
    })
    .await;
    router.classifier.set(label_reply(label));
    xai.set(common::fake::xai_reply);
    (router, primary, xai)
}

#[tokio::test]
async fn simple_and_moderate_are_answered_by_the_primary() {
    for label in ["SIMPLE", "MODERATE"] {
        let (router, primary, xai) = routed(label).await;
        let response = router.chat(&user("hi there")).await;
        assert_eq!(response.headers()["x-ai-router-route"], "primary");
        assert_eq!(response.status(), 200);
        assert_eq!(primary.bodies("/v1/chat/completions").len(), 1);
        assert!(xai.received().is_empty());
        let session = &router.sessions(1).await[0];
        assert_eq!(session["classification"], label);
        assert_eq!(session["classification_raw"], label);
        assert_eq!(session["classification_fallback"], Value::Null);
        let steps = common::step_names(session);
        assert_eq!(steps, ["classify", "answer"]);
    }
}

#[tokio::test]
async fn the_classifier_gets_the_routing_prompts_and_no_length_cap() {
    let (router, _primary, _xai) = routed("SIMPLE").await;
    let body = json!({"messages": [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "and tomorrow?"}
    ], "max_tokens": 5});
    router.chat(&body).await;
    let sent = router.classifier.last_body();
    assert_eq!(sent["model"], "cyankiwi/Nemotron-Orchestrator-8B-AWQ-4bit");
    assert_eq!(sent["stream"], false);
    assert!(sent.get("max_tokens").is_none());
    assert_eq!(sent["messages"][0]["content"], "TEST ROUTING SYSTEM.");
    assert_eq!(
        sent["messages"][1]["content"],
        "CONTEXT: user: weather in Oslo?\nassistant: Sunny.\nCLASSIFY: and tomorrow?"
    );
}

#[tokio::test]
async fn complex_goes_to_xai_shaped_for_grok() {
    let (router, primary, xai) = routed("COMPLEX").await;
    let body = json!({"messages": [{"role": "user", "content": "prove the conjecture"}],
                      "max_tokens": 100, "presence_penalty": 0.3, "stop": ["END"], "temperature": 0.2});
    for stream in [false, true] {
        let body = streaming(body.clone(), stream);
        let response = router.chat(&body).await;
        assert_eq!(response.headers()["x-ai-router-route"], "xai");
        if stream {
            let data = read_sse(response).await;
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
            assert!(data[0].contains("\"model\":\"ai-router\""));
        } else {
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["model"], "ai-router");
        }
        let sent = xai.last_body();
        assert_eq!(sent["model"], "grok-test");
        assert_eq!(sent["max_tokens"], 16384);
        assert!(sent.get("presence_penalty").is_none() && sent.get("stop").is_none());
        assert_eq!(sent["temperature"], 0.2);
        let system = sent["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("TEST XAI SYSTEM 20"), "{system}");
    }
    assert!(
        primary.received().is_empty(),
        "COMPLEX must not touch the primary"
    );
    let session = &router.sessions(2).await[0];
    assert_eq!(session["route"], "xai");
    assert_eq!(common::answer(session)["provider"], "xai");
}

#[tokio::test]
async fn enrich_searches_with_xai_then_the_primary_answers_with_the_context() {
    let (router, primary, xai) = routed("ENRICH").await;
    for stream in [false, true] {
        let body = streaming(user("weather in Oslo today?"), stream);
        let response = router.chat(&body).await;
        assert_eq!(response.headers()["x-ai-router-route"], "enrich");
        assert_eq!(response.status(), 200);
        if stream {
            let data = read_sse(response).await;
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
            assert!(data.iter().any(|d| d.contains("Hello")), "{data:?}");
        }
    }
    let search = xai.bodies("/v1/responses");
    assert_eq!(search.len(), 2);
    assert_eq!(search[0]["instructions"], "TEST ENRICH INSTRUCTIONS.");
    assert_eq!(
        search[0]["store"], false,
        "users' chats must not be kept at xAI"
    );
    assert_eq!(
        search[0]["tools"],
        json!([{"type": "web_search"}, {"type": "x_search"}])
    );
    assert_eq!(
        search[0]["input"],
        json!([{"role": "user", "content": "weather in Oslo today?"}])
    );
    let answered = primary.bodies("/v1/chat/completions");
    let system = answered[0]["messages"][0]["content"].as_str().unwrap();
    assert_eq!(
        system,
        format!(
            "{}\n\nTEST INJECTION: Oslo: 4 °C and rain today.\nSOURCES:\n- https://met.example/oslo",
            common::SYSTEM_PROMPT
        )
    );
    let sessions = router.sessions(2).await;
    for session in &sessions {
        let steps = common::step_names(session);
        assert_eq!(
            steps,
            ["classify", "enrich", "answer"],
            "the handoff is two visible steps"
        );
        assert_eq!(
            session["steps"][1]["response_content"],
            "Oslo: 4 °C and rain today."
        );
        assert_eq!(session["route_fallback"], Value::Null);
        assert_eq!(session["outcome"], "ok");
    }
}

#[tokio::test]
async fn a_failed_search_still_gets_an_answer_without_context() {
    let (router, primary, xai) = routed("ENRICH").await;
    xai.set(|_| {
        Reply::Status(
            500,
            r#"{"code":"internal","error":"search is down"}"#.into(),
        )
    });
    for stream in [false, true] {
        let body = streaming(user("latest news?"), stream);
        let response = router.chat(&body).await;
        assert_eq!(response.status(), 200);
        if stream {
            assert_eq!(
                read_sse(response).await.last().map(String::as_str),
                Some("[DONE]")
            );
        }
    }
    let system = primary.last_body()["messages"][0]["content"].clone();
    assert_eq!(
        system,
        common::SYSTEM_PROMPT,
        "no injection without context"
    );
    for session in router.sessions(2).await {
        let why = session["route_fallback"].as_str().unwrap();
        assert!(
            why.contains("search hop failed") && why.contains("search is down"),
            "{why}"
        );
        assert_eq!(session["steps"][1]["status"], 500);
    }
}

#[tokio::test]
async fn streaming_enrich_keeps_the_client_alive_while_searching() {
    // The search never answers; the hop gives up after 3 s, with keep-alives meanwhile.
    let primary = Fake::start().await;
    let xai = Fake::with(|_| Reply::Hang).await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.server.sse_keepalive_secs = 1;
        c.backend("xai").base_url = xai_url.as_str().into();
        c.route("ENRICH").search.as_mut().unwrap().timeout_secs = 3;
    })
    .await;
    router.classifier.set(label_reply("ENRICH"));
    let started = Instant::now();
    let response = router
        .chat(&streaming(user("who won last night?"), true))
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "headers waited for the search hop"
    );
    let text = response.text().await.unwrap();
    assert!(text.matches(": keep-alive").count() >= 2, "{text}");
    let data = common::parse_sse(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        data.iter().any(|d| d.contains("Hello")),
        "the primary still answered"
    );
    let session = &router.sessions(1).await[0];
    let why = session["route_fallback"].as_str().unwrap();
    assert!(why.contains("did not answer within 3 s"), "{why}");
}

#[tokio::test]
async fn a_meta_label_from_the_classifier_is_not_trusted() {
    let (router, primary, _xai) = routed("META").await;
    let response = router
        .chat(&user("Generate a catchy title for my sourdough blog post"))
        .await;
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    assert_ne!(
        primary.last_body()["messages"][0]["content"],
        "TEST META SYSTEM."
    );
    let session = &router.sessions(1).await[0];
    assert_eq!(session["classification"], "MODERATE");
    let why = session["classification_fallback"].as_str().unwrap();
    assert!(why.contains("the classifier said META"), "{why}");
}

#[tokio::test]
async fn a_repeated_conversation_is_classified_once() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| c.routing.cache_entries = 16).await;
    router.classifier.set(label_reply("SIMPLE"));
    // Open WebUI's "regenerate" sends the same conversation again.
    router.chat(&user("hello there")).await;
    router.chat(&streaming(user("hello there"), true)).await;
    router.chat(&user("something else")).await;
    assert_eq!(
        router.classifier.received().len(),
        2,
        "the repeat cost a classifier call"
    );
    let sessions = router.sessions(3).await;
    assert_eq!(sessions[0]["classification_cached"], false);
    assert_eq!(sessions[1]["classification_cached"], true);
    assert_eq!(sessions[1]["classification"], "SIMPLE");
    assert_eq!(sessions[1]["classification_raw"], "SIMPLE");
    let steps = common::step_names(&sessions[1]);
    assert_eq!(steps, ["answer"]);
    assert_eq!(sessions[2]["classification_cached"], false);
}

#[tokio::test]
async fn keyword_rules_refine_the_fallback() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.routing.fallback_rules = vec![ai_router::config::KeywordRule {
            label: "ENRICH".into(),
            keywords: vec!["weather".into()],
        }];
    })
    .await;
    router
        .classifier
        .set(|_| Reply::Json(completion_json("no idea")));
    let response = router.chat(&user("Weather in Rome?")).await;
    assert_eq!(response.headers()["x-ai-router-route"], "enrich");
    let session = &router.sessions(1).await[0];
    assert!(
        session["classification_fallback"]
            .as_str()
            .unwrap()
            .contains("keyword \"weather\"")
    );
}

#[tokio::test]
async fn meta_requests_never_call_the_classifier() {
    let (router, primary, _xai) = routed("COMPLEX").await;
    let response = router
        .task_chat(
            "title_generation",
            &user("### Task:\nGenerate a concise title…"),
        )
        .await;
    assert_eq!(response.headers()["x-ai-router-route"], "meta");
    assert!(
        router.classifier.received().is_empty(),
        "META paid for classification"
    );
    let sent = primary.last_body();
    assert_eq!(sent["messages"][0]["content"], "TEST META SYSTEM.");
    assert_eq!(sent["chat_template_kwargs"]["enable_thinking"], false);
    let session = &router.sessions(1).await[0];
    assert_eq!(session["classification"], "META");
    assert_eq!(
        session["meta_match"],
        "header x-openwebui-task: title_generation"
    );
    assert_eq!(session["classification_ms"], 0);

    // An empty task header is Open WebUI's normal chat.
    let normal = router.task_chat("", &user("prove it")).await;
    assert_eq!(normal.headers()["x-ai-router-route"], "xai");
    assert_eq!(router.classifier.received().len(), 1);
}

#[tokio::test]
async fn the_task_model_marks_meta() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.server.task_model = "ai-router-tasks".into()
    })
    .await;
    let body = json!({"model": "ai-router-tasks", "messages": [{"role": "user", "content": "Tags for this chat"}]});
    let response = router.chat(&body).await;
    assert_eq!(response.headers()["x-ai-router-route"], "meta");
    assert!(router.classifier.received().is_empty());
    assert_eq!(
        router.sessions(1).await[0]["meta_match"],
        "task model ai-router-tasks"
    );
}

#[tokio::test]
async fn long_input_is_truncated_for_the_classifier_only() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| c.routing.max_input_chars = 1000).await;
    let long = format!("BEGIN {} END", "word ".repeat(2000));
    router.chat(&user(&long)).await;
    let classified = router.classifier.last_body()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(classified.contains("BEGIN") && classified.contains("END"));
    assert!(classified.contains("[CUT 9010]"), "{}", &classified[..200]);
    assert!(classified.chars().count() < 1200);
    let answered = primary.last_body();
    assert_eq!(
        answered["messages"][1]["content"], long,
        "the answering backend gets everything"
    );
}

/// An admin's own route, in config alone: a `CODE` label answered by its own backend
/// with its own prompt, next to the shipped routes.
const CODE_ROUTE: &str = r#"
[backends.coder]
base_url = "http://127.0.0.1:9/v1"
model = "qwen-coder"

[routes.CODE]
backend = "coder"
prompt = "code/system.md"
max_tokens = "pass"
failover = ["MODERATE"]
"#;

/// A router on the shipped config plus `CODE_ROUTE`, its coder backend a fake.
async fn with_code_route(dir: &std::path::Path) -> (TestRouter, Fake, Fake) {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/router.toml"))
            .unwrap();
    let file = dir.join("router.toml");
    std::fs::write(&file, format!("{shipped}\n{CODE_ROUTE}")).unwrap();
    let coder = Fake::start().await;
    let primary = Fake::start().await;
    let (coder_url, primary_url) = (coder.url.clone(), primary.url.clone());
    let router = TestRouter::loaded(&file, |c| {
        c.backend("coder").base_url = coder_url.as_str().into();
        c.backend("primary").base_url = primary_url.as_str().into();
        // The route's prompt file: without it the router would not start.
        let code = c.server.prompts_dir.join("code");
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("system.md"), "TEST CODE SYSTEM.").unwrap();
    })
    .await;
    (router, coder, primary)
}

#[tokio::test]
async fn a_route_added_in_config_alone_answers_its_label() {
    let dir = tempfile::tempdir().unwrap();
    let (router, coder, primary) = with_code_route(dir.path()).await;
    router.classifier.set(label_reply("CODE"));
    let body =
        json!({"messages": [{"role": "user", "content": "write a parser"}], "max_tokens": 300});
    for stream in [false, true] {
        let response = router.chat(&streaming(body.clone(), stream)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ai-router-route"], "code");
        if stream {
            assert_eq!(
                read_sse(response).await.last().map(String::as_str),
                Some("[DONE]")
            );
        }
    }
    let sent = coder.last_body();
    assert_eq!(sent["model"], "qwen-coder");
    assert_eq!(
        sent["max_tokens"], 300,
        "max_tokens = \"pass\" keeps the client's cap"
    );
    assert_eq!(sent["messages"][0]["content"], "TEST CODE SYSTEM.");
    assert!(
        primary.received().is_empty(),
        "CODE must not touch the primary"
    );
    for session in router.sessions(2).await {
        assert_eq!(session["classification"], "CODE");
        assert_eq!(session["route"], "code");
        assert_eq!(common::answer(&session)["provider"], "coder");
    }
    // Its failover list is used like any other: the coder down, the primary answers.
    coder.set(|_| Reply::Status(503, r#"{"error":{"message":"loading"}}"#.into()));
    let response = router.chat(&user("write another parser")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-failover"], "coder->primary");
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT
    );
}
