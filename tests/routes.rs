//! The five labels end to end: what the client gets, what each backend received, and
//! what the session log says — against fake classifier, primary and xAI backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure should panic with its message"
)]

mod common;

use std::time::{Duration, Instant};

use common::fake::{Fake, Reply, completion_json, label_reply, responses_json};
use common::{TestRouter, read_sse, user};
use serde_json::{Value, json};

/// A router whose classifier says `label`, with its own primary and xAI fakes.
async fn routed(label: &'static str) -> (TestRouter, Fake, Fake) {
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backends.xai.base_url = xai_url;
        c.backends.xai.model = "grok-test".into();
    })
    .await;
    router.classifier.set(label_reply(label));
    xai.set(|body| {
        if body.get("input").is_some() {
            Reply::Json(responses_json(
                "Oslo: 4 °C and rain today.",
                "https://met.example/oslo",
            ))
        } else {
            common::fake::vllm_reply(body)
        }
    });
    (router, primary, xai)
}

/// A fake's script, as a plain function.
type Script = fn(&Value) -> Reply;

fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
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
        let steps: Vec<&str> = session["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
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
        let mut body = body.clone();
        body["stream"] = json!(stream);
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
        let mut body = user("weather in Oslo today?");
        body["stream"] = json!(stream);
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
        let steps: Vec<&str> = session["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
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
        let mut body = user("latest news?");
        body["stream"] = json!(stream);
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
        c.backends.xai.base_url = xai_url;
        c.xai.enrich_timeout_secs = 3;
    })
    .await;
    router.classifier.set(label_reply("ENRICH"));
    let started = Instant::now();
    let response = router.chat(&streaming(user("who won last night?"))).await;
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
async fn classifier_failures_fall_back_within_its_timeout() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| c.backends.classifier.timeout_secs = 1).await;
    let cases: [(Script, &str); 4] = [
        (|_| Reply::Hang, "timed out after 1 s"),
        (
            |_| {
                Reply::Status(
                    500,
                    r#"{"error":{"message":"engine dead","type":"x","code":500}}"#.into(),
                )
            },
            "engine dead",
        ),
        (
            |_| Reply::Json(completion_json("I cannot decide.")),
            "without a label",
        ),
        (|_| Reply::Raw("text/html", "<html>".into()), "not JSON"),
    ];
    for (script, _) in cases {
        router.classifier.set(script);
        let started = Instant::now();
        let response = router.chat(&user("explain monads")).await;
        assert_eq!(
            response.status(),
            200,
            "a classifier failure never fails the request"
        );
        assert_eq!(response.headers()["x-ai-router-route"], "primary");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    let sessions = router.sessions(4).await;
    for (session, (_, why)) in sessions.iter().zip(cases) {
        assert_eq!(session["classification"], "MODERATE");
        let fallback = session["classification_fallback"].as_str().unwrap();
        assert!(
            fallback.contains(why) && fallback.contains("used MODERATE"),
            "{fallback}"
        );
        assert!(session["classification_ms"].is_u64());
    }
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
async fn shutdown_does_not_wait_for_a_hanging_search() {
    let primary = Fake::start().await;
    let xai = Fake::with(|_| Reply::Hang).await;
    let xai_url = xai.url.clone();
    let mut router = TestRouter::start(&primary.url, |c| {
        c.backends.xai.base_url = xai_url;
        c.server.shutdown_grace_secs = 1;
    })
    .await;
    router.classifier.set(label_reply("ENRICH"));
    let response = router.chat(&streaming(user("news?"))).await;
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    router.signal_shutdown();
    let data = read_sse(response).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(data[0].contains("router_shutdown"), "{data:?}");
    router.join().await.unwrap();
    assert_eq!(router.sessions(1).await[0]["outcome"], "error");
}

#[tokio::test]
async fn a_client_leaving_during_the_search_still_shows_the_search_in_its_log() {
    let primary = Fake::start().await;
    let xai = Fake::with(|_| Reply::Hang).await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| c.backends.xai.base_url = xai_url).await;
    router.classifier.set(label_reply("ENRICH"));
    let response = router.chat(&streaming(user("news?"))).await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(response);
    xai.wait_abandoned(1, Duration::from_secs(2)).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "client_disconnected");
    let steps: Vec<&str> = session["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["classify", "enrich"],
        "the search in flight is recorded"
    );
}

#[tokio::test]
async fn a_repeated_conversation_is_classified_once() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| c.routing.cache_entries = 16).await;
    router.classifier.set(label_reply("SIMPLE"));
    // Open WebUI's "regenerate" sends the same conversation again.
    router.chat(&user("hello there")).await;
    router.chat(&streaming(user("hello there"))).await;
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
    let steps: Vec<&str> = sessions[1]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["answer"]);
    assert_eq!(sessions[2]["classification_cached"], false);
}

#[tokio::test]
async fn keyword_rules_refine_the_fallback() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.routing.fallback_rules = vec![ai_router::config::KeywordRule {
            label: ai_router::config::Label::Enrich,
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
async fn without_an_xai_key_complex_is_answered_locally_and_says_why() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.backends.xai.api_key_env = "AI_ROUTER_TEST_UNSET_KEY".into();
    })
    .await;
    router.classifier.set(label_reply("COMPLEX"));
    let response = router.chat(&user("prove it")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    let session = &router.sessions(1).await[0];
    assert_eq!(session["classification"], "COMPLEX");
    assert_eq!(session["route"], "primary");
    assert!(
        session["route_fallback"]
            .as_str()
            .unwrap()
            .contains("AI_ROUTER_TEST_UNSET_KEY is not set")
    );

    let strict = TestRouter::start(&primary.url, |c| {
        c.backends.xai.api_key_env = "AI_ROUTER_TEST_UNSET_KEY".into();
        c.xai.missing_key = ai_router::config::MissingKey::Error;
    })
    .await;
    strict.classifier.set(label_reply("ENRICH"));
    let response = strict.chat(&user("news?")).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "xai_not_configured");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AI_ROUTER_TEST_UNSET_KEY")
    );
}

#[tokio::test]
async fn the_xai_key_is_sent_as_a_bearer_token_and_never_logged() {
    // PATH is certainly set in the test's environment: it stands in for XAI_API_KEY.
    let key = std::env::var("PATH").unwrap();
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backends.xai.base_url = xai_url;
        c.backends.xai.api_key_env = "PATH".into();
    })
    .await;
    router.classifier.set(label_reply("COMPLEX"));
    assert_eq!(router.chat(&user("hard question")).await.status(), 200);
    let headers = xai.received().last().unwrap().headers.clone();
    assert_eq!(headers["authorization"], format!("Bearer {key}").as_str());
    router.sessions(1).await;
    let file = common::session_files(&router.sessions_dir).pop().unwrap();
    assert!(!std::fs::read_to_string(file).unwrap().contains(&key));
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

#[tokio::test]
async fn a_prompt_edit_takes_effect_on_the_next_request() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    router.chat(&user("one")).await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT
    );
    std::fs::write(
        router.prompts_dir.join("primary/system.md"),
        "EDITED PROMPT.",
    )
    .unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("two")).await;
        primary.last_body()["messages"][0]["content"] == "EDITED PROMPT."
    })
    .await;
    assert!(seen, "the edited prompt was not used");

    // A broken edit (its required placeholder gone) keeps the last good version, while
    // other files saved at the same time are picked up.
    std::fs::write(
        router.prompts_dir.join("routing/request.md"),
        "no placeholder",
    )
    .unwrap();
    std::fs::write(
        router.prompts_dir.join("primary/system.md"),
        "EDITED AGAIN.",
    )
    .unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("three")).await;
        primary.last_body()["messages"][0]["content"] == "EDITED AGAIN."
    })
    .await;
    assert!(seen, "the second edit was not used");
    let classified = router.classifier.last_body()["messages"][1]["content"].clone();
    assert_eq!(
        classified, "CONTEXT: \nCLASSIFY: three",
        "the last good routing/request.md stays"
    );
}

#[tokio::test]
async fn a_replaced_prompts_folder_keeps_hot_reloading() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    let dir = router.prompts_dir.clone();
    // As a deploy or `git checkout` does: build a new folder, swap it in.
    let staged = dir.with_file_name("prompts.new");
    std::fs::create_dir_all(staged.join("primary")).unwrap();
    for (name, text) in common::PROMPTS {
        let path = staged.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(staged.join("primary/system.md"), "FROM THE NEW FOLDER.").unwrap();
    std::fs::rename(&dir, dir.with_file_name("prompts.old")).unwrap();
    std::fs::rename(&staged, &dir).unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("one")).await;
        primary.last_body()["messages"][0]["content"] == "FROM THE NEW FOLDER."
    })
    .await;
    assert!(seen, "the swapped-in folder was not read");
    // And edits inside the new folder are still seen.
    std::fs::write(dir.join("primary/system.md"), "EDITED IN THE NEW FOLDER.").unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("two")).await;
        primary.last_body()["messages"][0]["content"] == "EDITED IN THE NEW FOLDER."
    })
    .await;
    assert!(seen, "hot reload stopped after the folder was replaced");
}

/// Retries `check` for up to 3 s: the watcher reloads shortly after a file changes.
async fn wait_for<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_failing_primary_can_fail_over_to_xai_before_the_first_byte() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&dead, |c| {
        c.backends.xai.base_url = xai_url;
        c.failover.primary_to_xai = true;
    })
    .await;
    for stream in [false, true] {
        let mut body = user("hi");
        body["stream"] = json!(stream);
        let response = router.chat(&body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ai-router-failover"], "primary->xai");
        assert_eq!(response.headers()["x-ai-router-route"], "xai");
        if stream {
            assert_eq!(
                read_sse(response).await.last().map(String::as_str),
                Some("[DONE]")
            );
        }
    }
    assert!(
        xai.last_body()["messages"][0]["content"]
            .as_str()
            .unwrap()
            .starts_with("TEST XAI SYSTEM")
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
}

#[tokio::test]
async fn a_failing_xai_falls_over_to_the_primary_on_complex() {
    let (router, primary, xai) = routed("COMPLEX").await;
    xai.set(|_| Reply::Status(500, r#"{"code":"internal","error":"grok is down"}"#.into()));
    let response = router.chat(&user("prove it")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-failover"], "xai->primary");
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT
    );
    let session = &router.sessions(1).await[0];
    assert_eq!(session["classification"], "COMPLEX");
    assert!(
        session["route_fallback"]
            .as_str()
            .unwrap()
            .contains("grok is down")
    );
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
