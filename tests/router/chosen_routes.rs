//! Routes a client chooses: `/v1/models` lists each route with an `expose_as` model id
//! after the automatic one, and a chat naming one takes that route without asking the
//! classifier (Open WebUI's model menu). Task prompts on such a chat stay META.

use serde_json::json;

use crate::common::{ConfigExt, TestRouter, user};

fn model_ids(body: &serde_json::Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_model_list_offers_the_exposed_routes_after_the_automatic_one() {
    let (router, _, _) = TestRouter::with_primary_and_xai(|_| {}).await;
    let (_, _, body) = router.get("/v1/models").await;
    assert_eq!(
        model_ids(&body),
        [
            "ai-router",
            "ai-router/cloud",
            "ai-router/search",
            "ai-router/local"
        ]
    );
    let (hidden, _, _) = TestRouter::with_primary_and_xai(|c| c.server.expose_routes = false).await;
    let (_, _, body) = hidden.get("/v1/models").await;
    assert_eq!(model_ids(&body), ["ai-router"]);
}

#[tokio::test]
async fn a_chosen_route_answers_without_the_classifier_and_says_so() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|_| {}).await;
    let mut body = user("prove the four colour theorem");
    body["model"] = json!("ai-router/cloud");
    let response = router.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "xai");
    let answer: serde_json::Value = response.json().await.unwrap();
    // Clients see the model they chose.
    assert_eq!(answer["model"], "ai-router/cloud");
    assert!(
        router.classifier.received().is_empty(),
        "the classifier was asked"
    );
    assert_eq!(xai.received().len(), 1);
    assert!(primary.received().is_empty());
    // Streamed too: each chunk names the chosen model.
    let mut body = crate::common::streaming(body, true);
    body["model"] = json!("ai-router/local");
    let chunks = crate::common::read_sse(router.chat(&body).await).await;
    let first: serde_json::Value = serde_json::from_str(&chunks[0]).unwrap();
    assert_eq!(first["model"], "ai-router/local");
    let sessions = router.sessions(2).await;
    let session = sessions
        .iter()
        .find(|s| s["client_choice"] == "ai-router/cloud")
        .unwrap();
    assert_eq!(session["classification"], "COMPLEX");
    assert_eq!(session["route"], "xai");
    assert_eq!(session["classification_ms"], 0);
}

#[tokio::test]
async fn a_task_prompt_on_a_chosen_route_is_still_meta() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|_| {}).await;
    let mut body =
        user("### Task:\nGenerate a concise title.\n<chat_history>\nUSER: hi\n</chat_history>");
    body["model"] = json!("ai-router/cloud");
    let response = router.task_chat("title_generation", &body).await;
    assert_eq!(response.headers()["x-ai-router-route"], "meta");
    assert!(xai.received().is_empty());
    assert_eq!(primary.received().len(), 1);
    let session = &router.sessions(1).await[0];
    assert!(session.get("client_choice").is_none());
}

#[tokio::test]
async fn with_routes_hidden_a_route_name_is_just_a_model_name() {
    let (router, _, xai) =
        TestRouter::with_primary_and_xai(|c| c.server.expose_routes = false).await;
    let mut body = user("hello");
    body["model"] = json!("ai-router/cloud");
    assert_eq!(router.chat(&body).await.status(), 200);
    assert_eq!(router.classifier.received().len(), 1, "not classified");
    assert!(xai.received().is_empty());
    let session = &router.sessions(1).await[0];
    assert_eq!(session["classification"], "MODERATE");
}

#[test]
fn an_exposed_name_must_be_unique_and_not_the_virtual_model() {
    let mut config = ai_router::config::Config::default();
    config.route("SIMPLE").expose_as = "ai-router/cloud".into();
    let error = ai_router::config::validate(&config)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("routes.") && error.contains("expose_as"),
        "{error}"
    );
    let mut config = ai_router::config::Config::default();
    config.route("SIMPLE").expose_as = "ai-router".into();
    assert!(ai_router::config::validate(&config).is_err());
    let mut config = ai_router::config::Config::default();
    config.route("META").expose_as = "ai-router/tasks".into();
    assert!(ai_router::config::validate(&config).is_err());
}
