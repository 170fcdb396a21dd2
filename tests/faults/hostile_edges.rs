//! The smaller edges of hostile backends and clients: a key sent with `bearer` in lower
//! case, a request for a thousand choices, a flood of readiness checks, a backend that
//! redirects the router elsewhere, and a client with very many small headers. Each is
//! answered in OpenAI's envelope (or served), and none makes the router do more work
//! than it bounds.

use serde_json::json;

use crate::common::fake::Fake;
use crate::common::{TestRouter, client, error_of, streaming, user};

#[tokio::test]
async fn a_bearer_scheme_in_any_case_is_accepted() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("keys");
    std::fs::write(&file, "edge-key-0123456789\n").unwrap();
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.server.api_keys_file = file).await;
    let send = |authorization: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", router.url))
            .header("authorization", authorization)
            .json(&user("hi"))
            .send()
    };
    // RFC 9110 §11.1: the scheme is case-insensitive.
    for authorization in [
        "Bearer edge-key-0123456789",
        "bearer edge-key-0123456789",
        "BEARER  edge-key-0123456789",
        "bEaReR edge-key-0123456789",
    ] {
        let response = send(authorization).await.unwrap();
        assert_eq!(response.status(), 200, "{authorization} was refused");
    }
    for refused in [
        "bearer not-the-key",
        "Basic edge-key-0123456789",
        "beareredge-key-0123456789",
    ] {
        let (status, error) = error_of(send(refused).await.unwrap()).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn a_thousand_choices_are_refused_before_any_backend_is_called() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    for stream in [false, true] {
        let mut body = streaming(user("hi"), stream);
        body["n"] = json!(1000);
        let (status, error) = error_of(router.chat(&body).await).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], "n");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("1000") && message.contains('8'),
            "names the request and the limit: {message}"
        );
    }
    for bad in [json!(0), json!(-1), json!(2.5), json!("3")] {
        let mut body = user("hi");
        body["n"] = bad.clone();
        let (status, error) = error_of(router.chat(&body).await).await;
        assert_eq!((status, error["param"].as_str()), (400, Some("n")), "{bad}");
    }
    assert!(fake.received().is_empty(), "a backend was called");
    assert!(
        router.classifier.received().is_empty(),
        "the classifier was called"
    );
    // Within the limit, `n` passes through as the client wrote it.
    let mut body = user("hi");
    body["n"] = json!(8);
    assert_eq!(router.chat(&body).await.status(), 200);
    assert_eq!(fake.last_body()["n"], 8);
    // The limit is a setting.
    let strict = TestRouter::start(&fake.url, |c| c.server.max_choices = 2).await;
    let mut body = user("hi");
    body["n"] = json!(3);
    let (status, error) = error_of(strict.chat(&body).await).await;
    assert_eq!(status, 400);
    assert!(error["message"].as_str().unwrap().contains('2'), "{error}");
}
