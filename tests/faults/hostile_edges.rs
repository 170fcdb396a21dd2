//! The smaller edges of hostile backends and clients: a key sent with `bearer` in lower
//! case, a request for a thousand choices, a flood of readiness checks, a backend that
//! redirects the router elsewhere, and a client with very many small headers. Each is
//! answered in OpenAI's envelope (or served), and none makes the router do more work
//! than it bounds.

use crate::common::fake::Fake;
use crate::common::{TestRouter, client, error_of, user};

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
