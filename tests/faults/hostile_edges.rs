//! The smaller edges of hostile backends and clients: a key sent with `bearer` in lower
//! case, a request for a thousand choices, a flood of readiness checks, a backend that
//! redirects the router elsewhere, and a client with very many small headers. Each is
//! answered in OpenAI's envelope (or served), and none makes the router do more work
//! than it bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use tokio::net::TcpListener;

use crate::common::fake::{Fake, completion_json};
use crate::common::{self, ConfigExt, TestRouter, client, error_of, streaming, user};

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

/// A listener on 127.0.0.1:0 and the base URL (with `/v1`) a backend there has.
async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    (listener, url)
}

/// Serves every request on `listener`, whatever its method and path, with
/// `answer(path)`, and counts them.
fn serve_any(
    listener: TcpListener,
    answer: impl Fn(&str) -> Response + Clone + Send + Sync + 'static,
) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        counted.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        async move { answer(uri.path()) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    hits
}

/// `/v1/models` as vLLM answers it, and a chat completion on any other path.
fn models_or_completion(path: &str) -> Response {
    if path.ends_with("/models") {
        axum::Json(json!({"object": "list", "data": [{"id": "fake-model"}]})).into_response()
    } else {
        axum::Json(completion_json("answered")).into_response()
    }
}

#[tokio::test]
async fn readiness_checks_at_once_and_in_a_row_share_one_round_of_probes() {
    let (listener, url) = bind().await;
    let probes = serve_any(listener, models_or_completion);
    let xai = Fake::start().await;
    let router = TestRouter::start(&url, |c| {
        c.backend("xai").base_url = xai.url.as_str().into();
        // Only the background probe at start-up, then none for an hour.
        c.health.probe_interval_secs = 3600;
    })
    .await;
    let ready = || async {
        let (status, _, body) = router.get("/health/ready").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    };
    futures_util::future::join_all((0..20).map(|_| ready())).await;
    for _ in 0..20 {
        ready().await;
    }
    // The start-up probe and one round; two if the burst straddled the reuse window.
    let seen = probes.load(Ordering::SeqCst);
    assert!(
        seen <= 3,
        "40 readiness checks probed the primary {seen} times"
    );
    // Results are reused for a moment, not for ever.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ready().await;
    assert_eq!(probes.load(Ordering::SeqCst), seen + 1);
}

/// A `307 Temporary Redirect` to `to`: the method and the body are sent again.
fn redirect(to: &str) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, to.to_string())],
    )
        .into_response()
}

#[tokio::test]
async fn a_backend_that_redirects_elsewhere_is_not_followed() {
    let (listener, elsewhere) = bind().await;
    let stolen = serve_any(listener, models_or_completion);
    let (listener, url) = bind().await;
    let origin = elsewhere.trim_end_matches("/v1").to_string();
    serve_any(listener, move |path| redirect(&format!("{origin}{path}")));
    let router = TestRouter::start(&url, |c| {
        c.backend("primary").api_key_env = "PATH".into();
    })
    .await;
    for stream in [false, true] {
        let (status, error) = error_of(router.chat(&streaming(user("hi"), stream)).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (502, Some("upstream_invalid_response")),
            "{error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("redirect"), "{message}");
        assert!(!message.contains(&elsewhere), "{message}");
    }
    for session in router.sessions(2).await {
        let step = common::answer(&session);
        let recorded = step["error"].as_str().unwrap_or_default();
        assert!(recorded.contains("redirect"), "{step}");
    }
    // A probe is not sent on either.
    let (_, _, ready) = router.get("/health/ready").await;
    assert_eq!(ready["backends"]["primary"]["status"], "down", "{ready}");
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the backend sent the router elsewhere"
    );
}

#[tokio::test]
async fn a_redirect_within_the_backend_is_followed() {
    let (listener, url) = bind().await;
    let moved = url.replace("/v1", "/v2");
    serve_any(listener, move |path| match path.strip_prefix("/v1") {
        Some(rest) => redirect(&format!("{moved}{rest}")),
        None => models_or_completion(path),
    });
    let router = TestRouter::start(&url, |_| {}).await;
    let response = router.chat(&user("hi")).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "answered");
}

/// `count` small headers, `x-edge-N: v`.
fn small_headers(count: usize) -> HeaderMap {
    (0..count)
        .map(|i| {
            let name = HeaderName::try_from(format!("x-edge-{i}")).unwrap();
            (name, HeaderValue::from_static("v"))
        })
        .collect()
}

#[tokio::test]
async fn many_small_headers_are_served_or_refused_in_the_envelope() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let send = |count: usize| {
        client()
            .post(format!("{}/v1/chat/completions", router.url))
            .headers(small_headers(count))
            .json(&user("hi"))
            .send()
    };
    // More than hyper's default of 100, well within max_header_bytes: served.
    assert_eq!(send(150).await.unwrap().status(), 200);
    // Over server.max_headers (256): the router explains, in OpenAI's envelope.
    let (status, error) = error_of(send(300).await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (431, Some("too_many_headers"))
    );
    assert!(
        error["message"].as_str().unwrap().contains("256"),
        "{error}"
    );
    // Far over it: still bounded (a bare 431, or a closed connection).
    if let Ok(response) = send(5000).await {
        assert_eq!(response.status(), 431);
    }
    common::still_serves(&router, &fake).await;
}
