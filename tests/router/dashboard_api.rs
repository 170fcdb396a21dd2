//! The dashboard's JSON APIs and feeds: the live overview (bounded), sessions and a
//! session's story (with no secret in any answer), the playground's chat through the real
//! pipeline, and the prompts in use with their reloads.

use serde_json::{Value, json};

use crate::common::fake::Fake;
use crate::common::{ConfigExt, TestRouter, client, user};

/// The playground's chat: "hi there", on `route` or the classifier's choice.
async fn play(router: &TestRouter, route: Option<&str>) -> reqwest::Response {
    let ask = json!({"messages": [{"role": "user", "content": "hi there"}], "route": route});
    client()
        .post(format!("{}/dashboard/api/chat", router.url))
        .json(&ask)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_list_filter_and_tell_their_story_with_no_secret() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| {
        // A key the backend would need, and a password in a URL: neither may show.
        c.backend("primary").base_url = fake
            .url
            .replace("http://", "http://me:pa55-w0rd-secret@")
            .as_str()
            .into();
    })
    .await;
    assert_eq!(
        router
            .chat(&user("hello <script>alert(1)</script>"))
            .await
            .status(),
        200
    );
    assert_eq!(router.post_raw("{not json").await.status(), 400);
    router.flush().await;
    let (status, _, list) = router.get("/dashboard/api/sessions").await;
    assert_eq!(status, 200, "{list}");
    let rows = list["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    // Newest first: the refused one.
    assert_eq!(rows[0]["outcome"], "error");
    assert_eq!(rows[1]["user_query"], "hello <script>alert(1)</script>");
    let (_, _, errors) = router.get("/dashboard/api/sessions?error=true").await;
    assert_eq!(errors["sessions"].as_array().unwrap().len(), 1);
    let (_, _, primary) = router
        .get("/dashboard/api/sessions?route=primary&q=SCRIPT")
        .await;
    assert_eq!(
        primary["sessions"].as_array().unwrap().len(),
        1,
        "{primary}"
    );
    let (_, _, none) = router.get("/dashboard/api/sessions?label=COMPLEX").await;
    assert_eq!(none["sessions"].as_array().unwrap().len(), 0);
    let id = rows[1]["id"].as_str().unwrap();
    let (status, _, story) = router.get(&format!("/dashboard/api/sessions/{id}")).await;
    assert_eq!(status, 200, "{story}");
    assert_eq!(
        story["client_messages"][0]["content"],
        "hello <script>alert(1)</script>"
    );
    assert_eq!(story["classification"], "MODERATE");
    assert!(
        story["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "answer")
    );
    assert!(story["cost"]["cloud"]["cost_usd"].is_number(), "{story}");
    let (status, _, missing) = router.get("/dashboard/api/sessions/0badf00d").await;
    assert_eq!(status, 404, "{missing}");
    let (status, _, bad) = router.get("/dashboard/api/sessions/..%2f..%2fetc").await;
    assert_eq!(status, 400, "{bad}");
    // No secret in any answer.
    let (_, _, overview) = router.get("/dashboard/api/overview").await;
    for body in [&list, &story, &overview] {
        assert!(!body.to_string().contains("pa55-w0rd-secret"), "{body}");
    }
}

#[tokio::test]
async fn the_playground_streams_through_the_real_pipeline_and_can_choose_a_route() {
    let (router, _primary, xai) = TestRouter::with_primary_and_xai(|c| {
        c.server.api_keys_env = "PATH".into(); // client keys on: the playground needs none
    })
    .await;
    let response = play(&router, None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    assert!(text.contains("data: [DONE]"), "{text}");
    // A chosen route: no classifier call, the route the label names.
    let calls_before = router.classifier.received().len();
    let response = play(&router, Some("complex")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "xai");
    response.text().await.unwrap();
    assert_eq!(router.classifier.received().len(), calls_before);
    assert!(!xai.received().is_empty());
    // A label that cannot be chosen: a clear 400.
    let response = play(&router, Some("NOPE")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "route");
    router.flush().await;
    let (status, _, story) = router.get(&format!("/dashboard/api/sessions/{id}")).await;
    assert_eq!(status, 200, "{story}");
    assert_eq!(story["user_agent"], "ai-router dashboard playground");
}

#[tokio::test]
async fn the_live_feed_pushes_overviews_and_is_bounded() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.dashboard.max_live_feeds = 1).await;
    let mut feed = client()
        .get(format!("{}/dashboard/api/live", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let first = feed.chunk().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("event: overview\ndata: {"), "{text}");
    // A second feed while the first is open: 503 in OpenAI's envelope.
    let (status, headers, body) = router.get("/dashboard/api/live").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_live_feeds");
    assert!(headers.contains_key("retry-after"));
    // A request flows; a later event counts it.
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    let counted = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let chunk = feed.chunk().await.unwrap().unwrap();
            let text = String::from_utf8_lossy(&chunk).to_string();
            if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                let overview: Value = serde_json::from_str(data).unwrap();
                if overview["since_start"]["requests"] == 1 {
                    return overview;
                }
            }
        }
    })
    .await
    .expect("an event counted the request within 5 s");
    assert_eq!(counted["recent"]["requests"], 1);
    drop(feed);
    // The permit comes back when the feed closes.
    let reopened = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let (status, _, _) = router.get("/dashboard/api/overview").await;
            assert_eq!(status, 200);
            let r = client()
                .get(format!("{}/dashboard/api/live", router.url))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a closed feed gives its place back");
}

#[tokio::test]
async fn the_prompts_page_lists_the_files_in_use() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let (status, _, body) = router.get("/dashboard/api/prompts").await;
    assert_eq!(status, 200, "{body}");
    let prompts = body["prompts"].as_array().unwrap();
    let system = prompts
        .iter()
        .find(|p| p["name"] == "primary/system.md")
        .expect("primary/system.md");
    assert_eq!(system["text"], crate::common::SYSTEM_PROMPT);
    assert_eq!(system["fallback"], false);
    assert!(system["file_modified"].is_string());
}

#[tokio::test]
async fn the_prompts_page_shows_a_reload_and_a_reload_error() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let prompt = |body: &Value, name: &str| {
        body["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    let (_, _, before) = router.get("/dashboard/api/prompts").await;
    let loaded_before = prompt(&before, "primary/system.md")["loaded_at"].clone();
    std::fs::write(
        router.prompts_dir.join("primary/system.md"),
        "EDITED <b>PROMPT</b>.",
    )
    .unwrap();
    // A broken file (its required placeholder gone) saved with it.
    std::fs::write(
        router.prompts_dir.join("routing/request.md"),
        "no placeholder",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let (_, _, body) = router.get("/dashboard/api/prompts").await;
        let edited = prompt(&body, "primary/system.md")["text"] == "EDITED <b>PROMPT</b>.";
        if edited && prompt(&body, "routing/request.md")["reload_error"].is_string() {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload seen: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let system = prompt(&after, "primary/system.md");
    assert_ne!(system["loaded_at"], loaded_before, "the reload time moved");
    assert_eq!(system["reload_error"], Value::Null);
    let broken = prompt(&after, "routing/request.md");
    assert!(
        broken["reload_error"]
            .as_str()
            .unwrap()
            .contains("placeholder"),
        "{broken}"
    );
    assert_eq!(
        broken["text"], "CONTEXT: {{context}}\nCLASSIFY: {{query}}",
        "the last good text stays"
    );
    // Mended: the error goes.
    std::fs::write(
        router.prompts_dir.join("routing/request.md"),
        "MENDED {{query}} {{context}}",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, body) = router.get("/dashboard/api/prompts").await;
        let mended = prompt(&body, "routing/request.md");
        if mended["reload_error"].is_null() && mended["text"] == "MENDED {{query}} {{context}}" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mended file was not reloaded: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_session_logs_the_sessions_say_why() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.sessions.enabled = false).await;
    let (status, _, body) = router.get("/dashboard/api/sessions").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "sessions_unreadable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sessions.enabled = false")
    );
}

#[tokio::test]
async fn an_open_live_feed_does_not_hold_the_router_at_shutdown() {
    let fake = Fake::start().await;
    let mut router = TestRouter::start(&fake.url, |c| c.server.shutdown_grace_secs = 30).await;
    let mut feed = client()
        .get(format!("{}/dashboard/api/live", router.url))
        .send()
        .await
        .unwrap();
    assert!(feed.chunk().await.unwrap().is_some(), "the feed is open");
    let started = std::time::Instant::now();
    router.signal_shutdown();
    // The feed ends (no event left), and the router stops well within its 30 s grace.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Ok(Some(_)) = feed.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the feed was still open 5 s after shutdown began"
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), router.join())
        .await
        .expect("the router stopped within 5 s")
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn the_overview_shows_todays_cloud_spend_and_the_saving() {
    // xAI at a price that makes the fake's usage (12 tokens in, 5 out) cost $1.00.
    let (router, _primary, _xai) = TestRouter::with_primary_and_xai(|c| {
        c.prices.insert(
            "grok-dollar".into(),
            ai_router::config::Price {
                input_per_million: 50_000.0,
                output_per_million: 80_000.0,
            },
        );
        c.backend("xai").model = "grok-dollar".into();
    })
    .await;
    let (_, _, before) = router.get("/dashboard/api/overview").await;
    assert_eq!(
        before["spend"]["day"]["cloud_usd"], 0.0,
        "{}",
        before["spend"]
    );
    router
        .classifier
        .set(crate::common::fake::label_reply("COMPLEX"));
    assert_eq!(router.chat(&user("prove it")).await.status(), 200);
    router
        .classifier
        .set(crate::common::fake::label_reply("SIMPLE"));
    assert_eq!(router.chat(&user("hello")).await.status(), 200);
    let (_, _, after) = router.get("/dashboard/api/overview").await;
    let day = &after["spend"]["day"];
    assert_eq!(day["cloud_usd"], 1.0, "{day}");
    // All-cloud would have paid for the local answer too: the saving is what it cost.
    let all_cloud = day["all_cloud_usd"].as_f64().unwrap();
    assert!(all_cloud > 1.0, "{day}");
    assert_eq!(
        day["saving_usd"].as_f64().unwrap(),
        all_cloud - 1.0,
        "{day}"
    );
    assert_eq!(after["spend"]["month"]["cloud_usd"], 1.0);
    assert!(after["spend"]["backends"]["xai"]["day"]["spent_usd"].is_number());
}
