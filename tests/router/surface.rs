//! The small endpoints: models, health, readiness, and the headers every response has.

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, chunk_json};
use crate::common::{TestRouter, client};
use serde_json::Value;

#[tokio::test]
async fn models_lists_the_virtual_model_and_the_task_model() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| {
        c.server.task_model = "ai-router-tasks".into()
    })
    .await;
    let (status, headers, body) = router.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"].len(), 8);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // Then the routes a client may choose (their own test: chosen_routes).
    assert_eq!(ids[..2], ["ai-router", "ai-router-tasks"]);
    assert!(
        ids[2..].iter().all(|id| id.starts_with("ai-router/")),
        "{ids:?}"
    );
    assert_eq!(body["data"][0]["object"], "model");
    assert!(
        fake.received().is_empty(),
        "models must be answered from memory"
    );
}

#[tokio::test]
async fn health_is_up_and_ready_reports_each_backend() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let (status, _, body) = router.get("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _, body) = router.get("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    for backend in ["primary", "classifier", "xai"] {
        assert_eq!(body["backends"][backend]["status"], "up", "{body}");
        assert!(body["backends"][backend]["latency_ms"].is_u64());
    }
}

#[tokio::test]
async fn ready_is_503_when_the_primary_is_down() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| {
        c.backend("primary").base_url = dead.as_str().into();
        c.backend("xai").api_key_env = "AI_ROUTER_TEST_KEY_THAT_IS_NEVER_SET".into();
    })
    .await;
    let (status, _, body) = router.get("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["backends"]["primary"]["status"], "down");
    assert!(
        body["backends"]["primary"]["error"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    assert_eq!(body["backends"]["classifier"]["status"], "up");
    assert_eq!(body["backends"]["xai"]["status"], "unconfigured");
    assert!(
        body["backends"]["xai"]["error"]
            .as_str()
            .unwrap()
            .contains("AI_ROUTER_TEST_KEY_THAT_IS_NEVER_SET")
    );
}

#[tokio::test]
async fn metrics_count_requests_backends_and_session_writes() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    router.chat(&common::user("hello")).await;
    let bad = router.post_raw("{oops").await;
    assert_eq!(bad.status(), 400);
    router.sessions(2).await;
    let response = client()
        .get(format!("{}/metrics", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"ai_router_requests_total{route="primary",class="MODERATE",status="2xx",outcome="ok"} 1"#,
        r#"ai_router_requests_total{route="rejected",class="none",status="4xx",outcome="error"} 1"#,
        r#"ai_router_request_duration_seconds_count{route="primary"} 1"#,
        r#"ai_router_classification_duration_seconds_count{result="label"} 1"#,
        r#"ai_router_backend_request_duration_seconds_count{backend="classifier"} 1"#,
        r#"ai_router_backend_request_duration_seconds_count{backend="primary"} 1"#,
        r#"ai_router_overhead_seconds_count{route="primary"} 1"#,
        r#"ai_router_session_log_writes_total{result="ok"} 2"#,
        "ai_router_in_flight_requests 0",
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
}

#[tokio::test]
async fn a_stream_that_fails_after_its_200_counts_as_an_error() {
    let fake = Fake::with(|_| Reply::Cut(vec![chunk_json("partial", None)])).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let body = common::streaming(common::user("hello"), true);
    let response = router.chat(&body).await;
    assert_eq!(response.status(), 200);
    common::read_sse(response).await;
    router.sessions(1).await;
    let text = router.metrics().await;
    let failed = r#"ai_router_requests_total{route="primary",class="MODERATE",status="2xx",outcome="error"} 1"#;
    assert!(text.contains(failed), "{text}");
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    // Produce every series: a stream (first token), a classifier error (backend
    // errors, a fallback), and a prompt edit (a reload).
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let body = common::streaming(common::user("hi"), true);
    common::read_sse(router.chat(&body).await).await;
    router
        .classifier
        .set(|_| common::fake::Reply::Status(500, "{}".into()));
    router.chat(&common::user("again")).await;
    std::fs::write(router.prompts_dir.join("meta/system.md"), "EDITED.").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    router.sessions(2).await;
    let exported = router.metrics().await;
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/infra/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ai_router_"))
            {
                // Every series the dashboard needs is declared in the exposition (HELP/TYPE
                // lines name the family; _bucket and _total are its samples).
                let family = name.trim_end_matches("_bucket").trim_end_matches("_total");
                assert!(
                    exported.contains(&format!("# TYPE {family} ")),
                    "{name} is not exported"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} queries checked");
}

#[tokio::test]
async fn failing_calls_mark_a_backend_down_and_a_success_brings_it_back() {
    let fake = Fake::with(|_| common::fake::Reply::Status(503, "{}".into())).await;
    let router = TestRouter::start(&fake.url, |c| c.health.probe_interval_secs = 3600).await;
    for _ in 0..3 {
        assert_eq!(router.chat(&common::user("hi")).await.status(), 503);
    }
    router.sessions(3).await;
    assert!(
        router
            .metrics()
            .await
            .contains(r#"ai_router_backend_up{backend="primary"} 0"#)
    );
    fake.set(common::fake::vllm_reply);
    assert_eq!(router.chat(&common::user("hi")).await.status(), 200);
    let sessions = router.sessions(4).await;
    assert_eq!(
        sessions[3]["backends_down"],
        serde_json::json!(["primary"]),
        "known at arrival"
    );
    assert_eq!(sessions[0]["backends_down"], serde_json::json!([]));
    assert!(
        router
            .metrics()
            .await
            .contains(r#"ai_router_backend_up{backend="primary"} 1"#)
    );
}

#[tokio::test]
async fn background_probes_find_a_dead_backend_without_traffic() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| {
        c.backend("primary").base_url = dead.as_str().into();
        c.health.probe_interval_secs = 1;
        c.health.failure_threshold = 2;
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = router.metrics().await;
        if text.contains(r#"ai_router_backend_up{backend="primary"} 0"#) {
            assert!(
                text.contains(r#"ai_router_backend_up{backend="classifier"} 1"#),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the probes never marked primary down:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(fake.received().is_empty(), "probes are not chat requests");
}

#[tokio::test]
async fn client_keys_when_configured_guard_the_api_but_not_health() {
    // PATH's value stands in for a key list with one key.
    let key = std::env::var("PATH").unwrap();
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.api_keys_env = "PATH".into()).await;
    let call = |path: &'static str, auth: Option<String>| {
        let url = format!("{}{path}", router.url);
        async move {
            let mut request = if path.ends_with("completions") {
                client().post(url).json(&common::user("hi"))
            } else {
                client().get(url)
            };
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            request.send().await.unwrap()
        }
    };
    for path in ["/v1/chat/completions", "/v1/models", "/metrics", "/stats"] {
        let response = call(path, None).await;
        assert_eq!(response.status(), 401, "{path} is open without a key");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{path}");
        assert_eq!(body["error"]["type"], "authentication_error");
        let wrong = call(path, Some("Bearer not-the-key".into())).await;
        assert_eq!(wrong.status(), 401, "{path} accepted a wrong key");
    }
    assert_eq!(
        call("/health", None).await.status(),
        200,
        "health must stay open"
    );
    let ok = call("/v1/chat/completions", Some(format!("Bearer {key}"))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        call("/v1/models", Some(format!("Bearer {key}")))
            .await
            .status(),
        200
    );
    // Refused chats have no session, but a key being guessed shows in the metrics.
    let metrics = call("/metrics", Some(format!("Bearer {key}"))).await;
    let text = metrics.text().await.unwrap();
    let refused = r#"ai_router_requests_total{route="rejected",class="none",status="4xx",outcome="unauthorized"} 2"#;
    assert!(text.contains(refused), "{text}");
    assert!(!text.contains(&key), "the key reached the metrics");
    let session = &router.sessions(1).await[0];
    let id = session["client_key"].as_str().unwrap();
    assert_eq!(id.len(), 12);
    let file = std::fs::read_to_string(common::session_files(&router.sessions_dir).pop().unwrap())
        .unwrap();
    assert!(!file.contains(&key), "the key reached the session log");
}

#[tokio::test]
async fn configured_but_missing_client_keys_stop_the_router_from_starting() {
    let mut config = ai_router::config::Config::default();
    config.server.api_keys_env = "AI_ROUTER_TEST_NO_SUCH_KEYS".into();
    let error = ai_router::edge::client_keys::ClientKeys::load(&config.server).unwrap_err();
    assert!(error.contains("AI_ROUTER_TEST_NO_SUCH_KEYS"), "{error}");
}
