//! The primary answering garbage: data lines that are not JSON, a body that is not SSE
//! under an SSE content type, binary junk (ending or not), the wrong content type.
//! Before the first token the client gets a real 502; after it, an in-band error.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::fake::{Fake, Reply, chunk_json, vllm_reply};
use crate::common::{self, TestRouter, error_of, read_sse, still_serves, streaming, user};
use crate::{in_band_error, question, session_for};

/// Bytes that are not UTF-8 (`0xbe` cannot start a character).
const JUNK: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 0xff, 0xfe, 0x00, 0x80];

/// Sent before anything reached the client: (question, stream?). Each is a 502.
const BEFORE_THE_FIRST_TOKEN: [(&str, bool); 7] = [
    ("a data line that is not JSON", true),
    ("a body that is not SSE", true),
    ("binary junk", true),
    ("binary junk without end", true),
    ("JSON instead of a stream", true),
    ("HTML instead of JSON", false),
    ("binary junk instead of JSON", false),
];

/// Sent after a first chunk `a` reached the client. Each ends the stream in-band.
const AFTER_THE_FIRST_TOKEN: [&str; 3] = [
    "then a data line that is not JSON",
    "then binary junk",
    "then binary junk without end",
];

/// What the fake primary sends for each question (a normal answer for any other).
fn garbage(body: &Value) -> Reply {
    let sse = |pieces: Vec<Vec<u8>>| {
        Reply::Chunks(
            "text/event-stream",
            pieces.into_iter().map(|p| (Duration::ZERO, p)).collect(),
        )
    };
    let first = format!("data: {}\n\n", chunk_json("a", None)).into_bytes();
    let forever = Duration::from_millis(20);
    match question(body) {
        "a data line that is not JSON" => sse(vec![
            b"data: <html>oops</html>\n\n".to_vec(),
            b"data: [DONE]\n\n".to_vec(),
        ]),
        "a body that is not SSE" => sse(vec![b"<html><h1>502 Bad Gateway</h1></html>\n".to_vec()]),
        "binary junk" => sse(vec![JUNK.to_vec()]),
        "binary junk without end" => Reply::Spew(Vec::new(), JUNK.to_vec(), forever),
        "JSON instead of a stream" => Reply::Raw("application/json", "{}".into()),
        "HTML instead of JSON" => Reply::Raw("text/html", "<html>".into()),
        "binary junk instead of JSON" => {
            Reply::Chunks("application/json", vec![(Duration::ZERO, JUNK.to_vec())])
        }
        "then a data line that is not JSON" => sse(vec![first, b"data: {garbage\n\n".to_vec()]),
        "then binary junk" => sse(vec![first, JUNK.to_vec()]),
        "then binary junk without end" => {
            Reply::Spew(vec![chunk_json("a", None)], JUNK.to_vec(), forever)
        }
        _ => vllm_reply(body),
    }
}

#[tokio::test]
async fn garbage_before_the_first_token_is_a_502_at_once() {
    let fake = Fake::with(garbage).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    for (question, stream) in BEFORE_THE_FIRST_TOKEN {
        let started = Instant::now();
        let response = router.chat(&streaming(user(question), stream)).await;
        // Bounded: junk that keeps coming must not keep the client waiting.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{question}: {took:?}");
        let (status, error) = error_of(response).await;
        assert_eq!(status, 502, "{question}: {error}");
        assert_eq!(error["code"], "upstream_invalid_response", "{question}");
        assert!(error["message"].as_str().unwrap().contains("primary"));
    }
    // The router hung up on the junk that had no end.
    fake.wait_abandoned(1, Duration::from_secs(1)).await;
    let sessions = router.sessions(BEFORE_THE_FIRST_TOKEN.len()).await;
    for (question, _) in BEFORE_THE_FIRST_TOKEN {
        let session = session_for(&sessions, question);
        assert_eq!(session["outcome"], "error", "{question}");
        assert_eq!(session["http_status"], 502, "{question}");
        let why = session["error"].as_str().unwrap();
        assert!(
            why.contains("the primary backend sent an invalid response"),
            "{why}"
        );
        assert_eq!(common::answer(session)["error"], why);
    }
    still_serves(&router, &fake).await;
}

#[tokio::test]
async fn garbage_after_the_first_token_ends_the_stream_with_an_in_band_error() {
    let fake = Fake::with(garbage).await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    for question in AFTER_THE_FIRST_TOKEN {
        let started = Instant::now();
        let response = router.chat(&streaming(user(question), true)).await;
        assert_eq!(response.status(), 200, "{question}");
        let data = read_sse(response).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{question}: {took:?}");
        let first: Value = serde_json::from_str(&data[0]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["content"], "a", "{question}");
        assert_eq!(first["model"], "ai-router");
        let error = in_band_error(&data);
        assert_eq!(error["code"], "upstream_invalid_response", "{question}");
        assert_eq!(data.len(), 3, "{question}: {data:?}");
    }
    fake.wait_abandoned(1, Duration::from_secs(1)).await;
    let sessions = router.sessions(AFTER_THE_FIRST_TOKEN.len()).await;
    for question in AFTER_THE_FIRST_TOKEN {
        let session = session_for(&sessions, question);
        assert_eq!(session["outcome"], "error", "{question}");
        assert_eq!(session["http_status"], 200, "{question}");
        let why = session["error"].as_str().unwrap();
        assert!(why.contains("the primary backend sent"), "{why}");
        assert_eq!(common::answer(session)["response_content"], "a");
    }
    still_serves(&router, &fake).await;
}
