//! The xAI key: without one, COMPLEX and ENRICH are answered locally and say why (or get
//! a 503 when the config asks for that); with one, it travels only as xAI's bearer token
//! and never reaches a session log.

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, label_reply};
use crate::common::{TestRouter, user};
use serde_json::Value;

#[tokio::test]
async fn a_backend_without_its_key_degrades_readiness_only_when_its_routes_fail() {
    let primary = Fake::start().await;
    for (missing_key, overall) in [
        (ai_router::config::MissingKey::Fallback, "ready"),
        (ai_router::config::MissingKey::Error, "degraded"),
    ] {
        let router = TestRouter::start(&primary.url, |c| {
            c.backend("xai").api_key_env = "AI_ROUTER_TEST_UNSET_KEY".into();
            c.routing.missing_key = missing_key;
        })
        .await;
        let (status, _, ready) = router.get("/health/ready").await;
        assert_eq!(status, 200);
        assert_eq!(ready["status"], overall, "{ready}");
        assert_eq!(ready["backends"]["xai"]["status"], "unconfigured");
    }
}

#[tokio::test]
async fn without_an_xai_key_complex_is_answered_locally_and_says_why() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").api_key_env = "AI_ROUTER_TEST_UNSET_KEY".into();
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
        c.backend("xai").api_key_env = "AI_ROUTER_TEST_UNSET_KEY".into();
        c.routing.missing_key = ai_router::config::MissingKey::Error;
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
        c.backend("xai").base_url = xai_url.as_str().into();
        c.backend("xai").api_key_env = "PATH".into();
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
