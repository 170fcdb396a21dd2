//! "Describe, then answer": a route whose backend cannot see images may have a vision
//! backend describe each one first; the text model answers from the descriptions, the
//! log shows each `describe` step and says why, and a follow-up does not describe the
//! same image again.

use serde_json::{Value, json};

use crate::common::fake::{Fake, Reply, completion_json};
use crate::common::{ConfigExt, TestRouter, error_of, step_names};
use ai_router::config::{Config, DescribeConfig};

fn with_images(text: &str, pictures: &[&str]) -> Value {
    let mut parts = vec![json!({"type": "text", "text": text})];
    for picture in pictures {
        let url = format!("data:image/png;base64,{}", picture.repeat(400));
        parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
    }
    json!({"model": "ai-router", "messages": [{"role": "user", "content": parts}]})
}

/// A router whose MODERATE route (the primary: text only) describes images with `vision`;
/// no route sees images itself.
async fn router_with_vision(vision: &Fake, primary: &Fake) -> TestRouter {
    let vision_url = vision.url.clone();
    TestRouter::start(&primary.url, move |c: &mut Config| {
        let mut backend = c.backend("primary").clone();
        backend.base_url = vision_url.as_str().into();
        backend.model = "vision-model".into();
        c.backends.insert("vision".into(), backend);
        c.route("MODERATE").describe = Some(DescribeConfig {
            backend: "vision".into(),
            max_images: 2,
            ..DescribeConfig::default()
        });
        c.route("COMPLEX").images = false;
    })
    .await
}

#[tokio::test]
async fn a_text_route_answers_an_image_chat_from_the_vision_backends_description() {
    let vision =
        Fake::with(|_| Reply::Json(completion_json("A red bicycle against a wall."))).await;
    let primary = Fake::start().await;
    let router = router_with_vision(&vision, &primary).await;
    let response = router
        .chat(&with_images("what colour is it?", &["AAAA"]))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "primary");

    // The vision backend saw the image, the hop's instructions and the user's text.
    let asked = vision.last_body();
    assert_eq!(asked["model"], "vision-model");
    assert!(
        asked["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("You describe one image")
    );
    let parts = asked["messages"][1]["content"].as_array().unwrap();
    assert_eq!(parts[0]["text"], "what colour is it?");
    assert!(
        parts[1]["image_url"]["url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,AAAA")
    );
    // The text model got the description in the image's place, never the image.
    let sent = primary.last_body();
    let sent_text = sent.to_string();
    assert!(
        !sent_text.contains("image_url") && !sent_text.contains("base64"),
        "{sent_text}"
    );
    let parts = sent["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert_eq!(parts[0]["text"], "what colour is it?");
    let described = parts[1]["text"].as_str().unwrap();
    assert!(
        described.starts_with("[Image 1, described for you"),
        "{described}"
    );
    assert!(
        described.contains("A red bicycle against a wall."),
        "{described}"
    );

    let session = &router.sessions(1).await[0];
    assert_eq!(step_names(session), ["classify", "describe", "answer"]);
    let why = session["route_fallback"].as_str().unwrap();
    assert!(
        why.contains("1 image(s)") && why.contains("described by vision"),
        "{why}"
    );
    assert_eq!(
        session["steps"][1]["response_content"],
        "A red bicycle against a wall."
    );
    assert!(
        !session.to_string().contains("AAAAAAAA"),
        "image bytes in the log"
    );

    // The follow-up resends the image: its description is remembered.
    let mut follow_up = with_images("what colour is it?", &["AAAA"]);
    follow_up["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": "Red."}),
        json!({"role": "user", "content": "and the wall?"}),
    ]);
    assert_eq!(router.chat(&follow_up).await.status(), 200);
    assert_eq!(vision.received().len(), 1, "described again");
    assert!(
        primary
            .last_body()
            .to_string()
            .contains("A red bicycle against a wall.")
    );
    let session = &router.sessions(2).await[1];
    assert_eq!(step_names(session), ["classify", "answer"]);
}

#[tokio::test]
async fn a_vision_backend_that_fails_fails_the_chat_instead_of_a_blind_answer() {
    let vision = Fake::with(|_| Reply::Status(500, "{\"error\":\"out of memory\"}".into())).await;
    let primary = Fake::start().await;
    let router = router_with_vision(&vision, &primary).await;
    let (status, error) = error_of(router.chat(&with_images("what is it?", &["BBBB"])).await).await;
    assert!(status >= 500, "{status} {error}");
    assert!(
        primary.received().is_empty(),
        "the text model answered blind"
    );
    let session = &router.sessions(1).await[0];
    assert_eq!(session["outcome"], "error");
    assert_eq!(step_names(session), ["classify", "describe"]);
    assert_eq!(session["steps"][1]["status"], 500);
}

#[tokio::test]
async fn more_images_than_the_route_describes_get_a_clear_400() {
    let vision = Fake::with(|_| Reply::Json(completion_json("a picture"))).await;
    let primary = Fake::start().await;
    let router = router_with_vision(&vision, &primary).await;
    let body = with_images("compare", &["CCCC", "DDDD", "EEEE"]);
    let (status, error) = error_of(router.chat(&body).await).await;
    assert_eq!(status, 400);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("3 images") && message.contains("describe.max_images"),
        "{message}"
    );
    assert!(vision.received().is_empty() && primary.received().is_empty());
}
