//! Backends that misbehave on purpose: a stream that keeps the connection busy without
//! ever sending an event, answers without end, a key or a password that must not leak.
//! Every read from a backend has a time bound and a size bound, and what a backend says
//! is cleaned before it reaches a client.

use std::time::{Duration, Instant};

use crate::common::fake::{Fake, Reply, chunk_json};
use crate::common::{self, ConfigExt, TestRouter, error_of, read_sse, streaming, user};
use crate::in_band_error;

/// `n` copies of `piece`, `gap` apart.
fn every(gap: Duration, piece: &str, n: usize) -> Vec<(Duration, Vec<u8>)> {
    (0..n).map(|_| (gap, piece.as_bytes().to_vec())).collect()
}

/// A router whose primary is `fake`, with a 1 s timeout.
async fn impatient(fake: &Fake) -> TestRouter {
    TestRouter::start(&fake.url, |c| {
        c.backend("primary").timeout_secs = 1;
        c.backend("primary").response_timeout_secs = 1;
    })
    .await
}

#[tokio::test]
async fn a_stream_that_never_sends_an_event_is_a_504_within_the_timeout() {
    // Ten seconds of keep-alive comments, or of a trickle that never completes an event:
    // bytes keep coming, an answer never does.
    let pings = every(Duration::from_millis(200), ": ping\n\n", 50);
    let trickle = every(Duration::from_millis(200), "d", 50);
    for pieces in [pings, trickle] {
        let fake = Fake::with(move |_| Reply::Chunks("text/event-stream", pieces.clone())).await;
        let router = impatient(&fake).await;
        let started = Instant::now();
        let (status, error) = error_of(router.chat(&streaming(user("hi"), true)).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (504, Some("upstream_timeout"))
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
        fake.wait_abandoned(1, Duration::from_secs(1)).await;
        common::still_serves(&router, &fake).await;
    }
}

#[tokio::test]
async fn a_stream_that_only_pings_after_its_first_token_ends_in_band() {
    let mut pieces = vec![(
        Duration::ZERO,
        format!("data: {}\n\n", chunk_json("Hel", None)).into_bytes(),
    )];
    pieces.extend(every(Duration::from_millis(200), ": ping\n\n", 50));
    let fake = Fake::with(move |_| Reply::Chunks("text/event-stream", pieces.clone())).await;
    let router = impatient(&fake).await;
    let started = Instant::now();
    let response = router.chat(&streaming(user("hi"), true)).await;
    assert_eq!(response.status(), 200);
    let error = in_band_error(&read_sse(response).await);
    assert_eq!(error["code"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn answers_past_their_size_bound_are_refused_not_buffered() {
    // A JSON answer that goes on for 8 MiB, and one stream event that does.
    let block = "x".repeat(64 * 1024);
    let endless_json = every(Duration::ZERO, &block, 128);
    let mut endless_event = vec![(Duration::ZERO, b"data: ".to_vec())];
    endless_event.extend(every(Duration::ZERO, &block, 128));
    for (stream, pieces, content_type, what) in [
        (
            false,
            endless_json,
            "application/json",
            "the answer is larger than",
        ),
        (
            true,
            endless_event,
            "text/event-stream",
            "an event larger than",
        ),
    ] {
        let fake = Fake::with(move |_| Reply::Chunks(content_type, pieces.clone())).await;
        let router = TestRouter::start(&fake.url, |c| {
            c.backend("primary").max_response_bytes = 1024 * 1024;
        })
        .await;
        let (status, error) = error_of(router.chat(&streaming(user("hi"), stream)).await).await;
        assert_eq!(status, 502, "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(what) && message.contains("1048576"),
            "{message}"
        );
        common::still_serves(&router, &fake).await;
    }
}

#[tokio::test]
async fn one_stream_event_is_bounded_at_a_mebibyte_whatever_the_answer_bound() {
    // 4 MiB in one event that never ends, under the default 16 MiB answer bound.
    let mut event = vec![(Duration::ZERO, b"data: ".to_vec())];
    event.extend(every(Duration::ZERO, &"z".repeat(64 * 1024), 64));
    let fake = Fake::with(move |_| Reply::Chunks("text/event-stream", event.clone())).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let (status, error) = error_of(router.chat(&streaming(user("hi"), true)).await).await;
    assert_eq!(status, 502, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("an event larger than 1048576"),
        "{message}"
    );
    common::still_serves(&router, &fake).await;
}

#[tokio::test]
async fn a_classifier_that_answers_without_end_falls_back() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("classifier").max_response_bytes = 64 * 1024;
    })
    .await;
    let block = "y".repeat(16 * 1024);
    let pieces = every(Duration::ZERO, &block, 64);
    router
        .classifier
        .set(move |_| Reply::Chunks("application/json", pieces.clone()));
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    let session = &router.sessions(1).await[0];
    let why = session["classification_fallback"].as_str().unwrap();
    assert!(why.contains("larger than 65536 bytes"), "{why}");
}

#[tokio::test]
async fn an_endless_answer_keeps_a_bounded_session_record() {
    let fake = Fake::with(|_| Reply::Forever(Duration::from_millis(1))).await;
    let router = TestRouter::start(&fake.url, |c| c.sessions.max_answer_bytes = 4096).await;
    let response = router.chat(&streaming(user("go on forever"), true)).await;
    let mut events = common::sse_events(response);
    // Well past the bound: "tick " is 5 bytes.
    for _ in 0..2000 {
        use futures_util::StreamExt;
        events.next().await;
    }
    drop(events);
    let session = &router.sessions(1).await[0];
    let answer = common::answer(session);
    let kept = answer["response_content"].as_str().unwrap();
    assert!(kept.len() <= 4096 && kept.len() > 4000, "{}", kept.len());
    assert_eq!(answer["truncated"], true);
    assert_eq!(session["outcome"], "client_disconnected");
}

#[tokio::test]
async fn a_backend_that_quotes_the_routers_key_does_not_pass_it_on() {
    // PATH is certainly set: it stands in for the backend's key.
    let key = std::env::var("PATH").unwrap();
    let quoted = key.clone();
    let primary = Fake::with(move |_| {
        let message = format!("Incorrect API key provided: {quoted}");
        Reply::Status(401, serde_json::json!({"error": message}).to_string())
    })
    .await;
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("primary").api_key_env = "PATH".into()
    })
    .await;
    for stream in [false, true] {
        let (status, error) = error_of(router.chat(&streaming(user("hi"), stream)).await).await;
        assert_eq!(status, 502);
        let message = error["message"].as_str().unwrap();
        assert!(
            !message.contains(&key),
            "the key reached the client: {message}"
        );
        assert!(
            message.contains("Incorrect API key provided: ***"),
            "{message}"
        );
    }
    // In-band, after the first token, too.
    let quoted = key.clone();
    primary.set(move |_| {
        let error =
            serde_json::json!({"error": {"message": format!("bad key {quoted}"), "code": 401}});
        Reply::Sse(
            vec![chunk_json("Hel", None), error.to_string()],
            Duration::ZERO,
        )
    });
    let data = read_sse(router.chat(&streaming(user("hi"), true)).await).await;
    let error = in_band_error(&data);
    let message = error["message"].as_str().unwrap();
    assert!(message.ends_with("bad key ***"), "{message}");
    assert!(
        !message.contains(&key),
        "the key reached the client: {message}"
    );
}

#[tokio::test]
async fn a_password_in_a_backend_url_is_shown_nowhere() {
    let fake = Fake::start().await;
    let with_password = fake.url.replace("http://", "http://router:hunter2-s3cret@");
    let router = TestRouter::start(&fake.url, |c| {
        c.backend("primary").base_url = with_password.as_str().into();
    })
    .await;
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    let session = router.sessions(1).await;
    let (_, _, ready) = router.get("/health/ready").await;
    let metrics = router.metrics().await;
    let file = std::fs::read_to_string(common::session_files(&router.sessions_dir).pop().unwrap())
        .unwrap();
    for (what, text) in [
        ("/health/ready", ready.to_string()),
        ("/metrics", metrics),
        ("the session file", file),
    ] {
        assert!(
            !text.contains("hunter2"),
            "{what} shows the password: {text}"
        );
    }
    let url = common::answer(&session[0])["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with(&fake.url), "{url}");
}
