//! The session log: one complete file per request, the design's fields, the real
//! client IP, no secrets, and rotation.

use std::time::Duration;

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::Fake;
use crate::common::{TestRouter, client, session_files, user};
use serde_json::{Value, json};

#[tokio::test]
async fn one_file_per_request_with_the_designs_fields() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let long_question = format!("{} end", "q".repeat(600));
    let body = json!({
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": long_question}
        ],
        "temperature": 0.5
    });
    let response = client()
        .post(format!("{}/v1/chat/completions", router.url))
        .header("user-agent", "OpenAI/Python 1.99.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.status(), 200);
    let session = &router.sessions(1).await[0];
    let name = session_files(&router.sessions_dir)[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.ends_with(&format!("_{id}.json")), "{name}");
    for field in [
        "schema_version",
        "id",
        "timestamp",
        "client_ip",
        "user_agent",
        "user_query",
        "client_messages",
        "stream",
        "route",
        "classification",
        "classification_raw",
        "classification_ms",
        "classification_fallback",
        "meta_match",
        "steps",
        "total_ms",
        "outcome",
        "error",
    ] {
        assert!(session.get(field).is_some(), "missing {field}");
    }
    assert_eq!(session["schema_version"], 1);
    assert_eq!(session["id"], id);
    assert!(session["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(session["client_ip"], "127.0.0.1");
    assert_eq!(session["user_agent"], "OpenAI/Python 1.99.0");
    assert_eq!(session["user_query"].as_str().unwrap().chars().count(), 500);
    assert_eq!(session["client_messages"], body["messages"]);
    assert_eq!(session["route"], "primary");
    assert_eq!(session["outcome"], "ok");
    assert_eq!(session["error"], Value::Null);
    let step = common::answer(session);
    assert_eq!(step["step"], "answer");
    assert_eq!(step["provider"], "primary");
    assert_eq!(step["url"], format!("{}/chat/completions", fake.url));
    assert_eq!(step["model"], "served-model");
    assert_eq!(
        step["messages_sent"][0]["content"],
        format!("{}\n\nBe brief.", common::SYSTEM_PROMPT)
    );
    assert_eq!(step["params"]["temperature"], 0.5);
    assert!(step["params"].get("messages").is_none());
    assert_eq!(step["response_content"], "Hello there!");
    assert_eq!(step["reasoning_content"], "The user greets.");
    assert_eq!(step["status"], 200);
    assert_eq!(step["finish_reason"], "stop");
    assert_eq!(step["usage"]["total_tokens"], 17);
}

#[tokio::test]
async fn client_ip_comes_from_proxy_headers_only_when_the_peer_is_trusted() {
    let fake = Fake::start().await;
    let trusted = TestRouter::start(&fake.url, |_| {}).await;
    let send = |url: String| async move {
        client()
            .post(format!("{url}/v1/chat/completions"))
            .header("x-forwarded-for", "198.51.100.23")
            .json(&user("hi"))
            .send()
            .await
            .unwrap()
    };
    send(trusted.url.clone()).await;
    assert_eq!(trusted.sessions(1).await[0]["client_ip"], "198.51.100.23");

    let untrusted = TestRouter::start(&fake.url, |c| c.server.trusted_proxies = vec![]).await;
    send(untrusted.url.clone()).await;
    assert_eq!(untrusted.sessions(1).await[0]["client_ip"], "127.0.0.1");
}

#[tokio::test]
async fn no_key_or_authorization_value_reaches_a_session_file() {
    // The backend key is read from an environment variable the test process has: PATH's
    // value is certainly set and long enough to be treated as a secret.
    let path_value = std::env::var("PATH").unwrap();
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| {
        c.backend("primary").api_key_env = "PATH".into()
    })
    .await;
    let response = client()
        .post(format!("{}/v1/chat/completions", router.url))
        .bearer_auth("sk-client-key-123456")
        .json(&user(&format!("my path is {path_value}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let auth = fake.received()[0].headers["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        auth,
        format!("Bearer {path_value}"),
        "the backend key is sent as a bearer token"
    );
    router.sessions(1).await;
    let text = std::fs::read_to_string(&session_files(&router.sessions_dir)[0]).unwrap();
    assert!(
        !text.contains(&path_value),
        "backend key leaked into the session log"
    );
    assert!(
        !text.contains("sk-client-key-123456"),
        "client key leaked into the session log"
    );
    assert!(text.contains("my path is ***"));
}

#[tokio::test]
async fn files_are_complete_json_and_rotation_keeps_max_files() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.sessions.max_files = 3).await;
    for i in 0..6 {
        let response = router.chat(&user(&format!("question {i}"))).await;
        assert_eq!(response.status(), 200);
        // Distinct millisecond stamps keep the "oldest first" order unambiguous.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sessions = router.sessions(3).await;
    let queries: Vec<&str> = sessions
        .iter()
        .map(|s| s["user_query"].as_str().unwrap())
        .collect();
    assert_eq!(queries, ["question 3", "question 4", "question 5"]);
    let leftovers: Vec<_> = std::fs::read_dir(&router.sessions_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[tokio::test]
async fn session_files_appear_whole_by_rename_never_by_writing_in_place() {
    // inotify shows how each file came to be: a `.json` name must only ever appear by a
    // rename (of a complete temp file), never be created and then written, which is the
    // window in which a reader would see half a file.
    use notify::event::{CreateKind, EventKind, ModifyKind, RenameMode};
    use notify::{RecursiveMode, Watcher};
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).unwrap();
    watcher
        .watch(&router.sessions_dir, RecursiveMode::NonRecursive)
        .unwrap();
    for i in 0..5 {
        assert_eq!(router.chat(&user(&format!("q{i}"))).await.status(), 200);
    }
    router.sessions(5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(watcher);
    let mut renamed_into_place = 0;
    for event in rx.try_iter() {
        let event = event.unwrap();
        let json_paths = event
            .paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count();
        match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                renamed_into_place += json_paths;
            }
            EventKind::Create(CreateKind::File | CreateKind::Any)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                assert_eq!(
                    json_paths, 0,
                    "a session file was written in place: {event:?}"
                );
            }
            _ => {}
        }
    }
    assert!(renamed_into_place >= 5, "saw {renamed_into_place} renames");
}
