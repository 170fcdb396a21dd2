//! A chat carrying images goes only where they can be seen: the cloud model when it has
//! its key, a local vision backend when one is configured, else a clear 400. The
//! classifier still reads the text; the log says images were there, never their bytes.

use serde_json::{Value, json};

use crate::common::fake::{Fake, label_reply};
use crate::common::{ConfigExt, TestRouter, error_of};

fn with_image(text: &str) -> Value {
    let png = format!("data:image/png;base64,{}", "iVBORw0KGgo".repeat(100));
    json!({"model": "ai-router", "messages": [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": png}}
    ]}]})
}

#[tokio::test]
async fn an_image_chat_goes_to_the_cloud_model_that_can_see_it() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|_| {}).await;
    router.classifier.set(label_reply("MODERATE"));
    let response = router.chat(&with_image("what is in this picture?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "xai");
    assert!(primary.received().is_empty(), "a text model got the image");
    assert!(
        xai.last_body()
            .to_string()
            .contains("data:image/png;base64,")
    );
    // The classifier reads the text, not the picture.
    let classified = router.classifier.last_body().to_string();
    assert!(classified.contains("what is in this picture?"));
    assert!(!classified.contains("base64"), "{classified}");
    let session = &router.sessions(1).await[0];
    assert_eq!(session["classification"], "MODERATE");
    assert_eq!(
        session["images"],
        json!({"count": 1, "types": ["image/png"], "bytes": 825})
    );
    let why = session["route_fallback"].as_str().unwrap();
    assert!(
        why.contains("1 image(s) and the MODERATE route cannot see them"),
        "{why}"
    );
    // Never the bytes.
    assert!(
        !session["client_messages"]
            .to_string()
            .contains("iVBORw0KGgo")
    );
}

#[tokio::test]
async fn a_local_vision_backend_is_used_when_configured() {
    let primary = Fake::start().await;
    let vision = Fake::start().await;
    let vision_url = vision.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        let mut backend = c.backend("primary").clone();
        backend.base_url = vision_url.as_str().into();
        c.backends.insert("vision".into(), backend);
        let mut route = c.route("MODERATE").clone();
        route.name = "vision".into();
        route.backend = "vision".into();
        route.images = true;
        route.expose_as = String::new();
        route.classifier_may_choose = false;
        c.routes.insert("VISION".into(), route);
        c.routing.image_routes = vec!["VISION".into(), "COMPLEX".into()];
    })
    .await;
    let response = router.chat(&with_image("describe it")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "vision");
    assert_eq!(vision.received().len(), 1);
    assert!(primary.received().is_empty());
}

#[tokio::test]
async fn with_no_route_that_can_see_images_the_client_is_told_what_to_configure() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").api_key_env = "AI_ROUTER_TEST_UNSET_KEY".into();
    })
    .await;
    let response = router.chat(&with_image("what is this?")).await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "images_not_supported");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("AI_ROUTER_TEST_UNSET_KEY"), "{message}");
    assert!(message.contains("routing.image_routes"), "{message}");
    assert!(
        primary.received().is_empty(),
        "a text model was asked to see"
    );
    // A text chat on the same router is answered as ever.
    let text = json!({"messages": [{"role": "user", "content": "hello"}]});
    assert_eq!(router.chat(&text).await.status(), 200);
}

#[tokio::test]
async fn a_route_the_client_chose_is_never_swapped_for_one_that_sees_images() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|_| {}).await;
    let mut body = with_image("what is this?");
    body["model"] = json!("ai-router/local");
    let (status, error) = error_of(router.chat(&body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("images_not_supported"))
    );
    assert!(
        xai.received().is_empty(),
        "the chat went to the cloud against the choice"
    );
    assert!(primary.received().is_empty());
}
