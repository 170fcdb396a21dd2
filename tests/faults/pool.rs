//! The primary as a pool of two GPU hosts (one backend, two base URLs): requests spread
//! by in-flight count, a host killed mid-run costs no request that had not started
//! streaming, and it is used again once it is back; a request waiting on a host that
//! goes silent moves to another when the host is ejected; a pool with no healthy
//! endpoint fails fast, or fails over as its route says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;

use crate::common::fake::{
    Fake, Host, Reply, chunk_json, completion_json, stream_events, vllm_reply,
};
use crate::common::{self, ConfigExt, TestRouter, client, streaming, user};

/// Answers like vLLM, a little slowly, so that requests overlap: JSON after `delay`,
/// streams as five chunks `delay / 5` apart.
fn busy(delay: Duration) -> impl Fn(&Value) -> Reply + Send + Sync + 'static {
    move |body| {
        if body["stream"] == true {
            Reply::Sse(stream_events(body), delay / 5)
        } else {
            Reply::Late(
                delay,
                Box::new(Reply::Json(completion_json("Hello there!"))),
            )
        }
    }
}

/// A router whose primary is the pool `urls`, probed every second.
async fn pooled(urls: Vec<String>) -> TestRouter {
    TestRouter::start(&urls[0].clone(), move |c| {
        c.backend("primary").base_url = urls.into();
        c.health.probe_interval_secs = 1;
    })
    .await
}

/// `GET /health/ready`'s endpoints of the primary: (url, state, in_flight).
async fn endpoints(router: &TestRouter) -> Vec<(String, String, u64)> {
    let (_, _, body) = router.get("/health/ready").await;
    body["backends"]["primary"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let watch = &e["watch"];
            (
                e["url"].as_str().unwrap().to_string(),
                watch["state"].as_str().unwrap().to_string(),
                watch["in_flight"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn requests_go_to_the_endpoint_with_fewest_in_flight() {
    let gate = Arc::new(Notify::new());
    let held = |gate: Arc<Notify>| {
        move |_: &Value| {
            Reply::Gated(
                vec![chunk_json("Hel", None)],
                gate.clone(),
                vec![chunk_json("lo", Some("stop")), "[DONE]".into()],
            )
        }
    };
    let a = Fake::with(held(gate.clone())).await;
    let b = Fake::with(held(gate.clone())).await;
    let router = pooled(vec![a.url.clone(), b.url.clone()]).await;
    // Six streams opened one after another, each held open: each goes where fewer are.
    let mut open = Vec::new();
    for i in 0..6 {
        let response = router
            .chat(&streaming(user(&format!("held {i}")), true))
            .await;
        assert_eq!(response.status(), 200);
        open.push(common::sse_events(response));
    }
    let calls = |fake: &Fake| fake.bodies("/v1/chat/completions").len();
    assert_eq!(
        (calls(&a), calls(&b)),
        (3, 3),
        "not spread by in-flight count"
    );
    let ready = endpoints(&router).await;
    assert!(ready.iter().all(|(_, _, n)| *n == 3), "{ready:?}");
    let metrics = router.metrics().await;
    let in_flight: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("ai_router_endpoint_in_flight_requests{backend=\"primary\""))
        .collect();
    assert_eq!(in_flight.len(), 2, "{metrics}");
    assert!(in_flight.iter().all(|l| l.ends_with(" 3")), "{in_flight:?}");
    // Released, every stream completes and the endpoints are idle again.
    gate.notify_waiters();
    for mut events in open {
        use futures_util::StreamExt;
        let mut last = String::new();
        while let Some(data) = events.next().await {
            last = data;
        }
        assert_eq!(last, "[DONE]");
    }
    let sessions = router.sessions(6).await;
    let urls: std::collections::BTreeSet<String> = sessions
        .iter()
        .map(|s| common::answer(s)["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        urls.len(),
        2,
        "the session log names the endpoint: {urls:?}"
    );
    let ready = endpoints(&router).await;
    assert!(
        ready.iter().all(|(_, state, n)| state == "up" && *n == 0),
        "{ready:?}"
    );
}

/// How one request of the load ended, as its client saw it.
#[derive(Debug, PartialEq)]
enum Seen {
    Answered,
    /// A 200 stream that broke off with an in-band error after it had started.
    BrokeMidStream,
    Failed(u16),
}

/// One request of the load: a stream or a JSON answer, read to the end.
async fn one(url: String, i: usize) -> Seen {
    let stream = i % 2 == 0;
    let body = streaming(user(&format!("load {i}")), stream);
    let sent = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await;
    let Ok(response) = sent else {
        return Seen::Failed(0);
    };
    if response.status() != 200 {
        return Seen::Failed(response.status().as_u16());
    }
    if !stream {
        let ok = response
            .json::<Value>()
            .await
            .is_ok_and(|v| v["choices"].is_array());
        return if ok {
            Seen::Answered
        } else {
            Seen::Failed(200)
        };
    }
    let data = common::read_sse(response).await;
    if data.iter().any(|d| d.contains("\"error\"")) {
        Seen::BrokeMidStream
    } else {
        Seen::Answered
    }
}

#[tokio::test]
async fn a_host_killed_mid_run_costs_no_request_that_had_not_started_streaming() {
    let mut a = Host::start(busy(Duration::from_millis(100)));
    let b = Fake::with(busy(Duration::from_millis(100))).await;
    let a_url = format!("http://{}/v1", a.address);
    let router = pooled(vec![a_url.clone(), b.url.clone()]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = |from: usize| {
        let url = router.url.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = from;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(one(url.clone(), i).await);
                i += 4;
            }
            seen
        })
    };
    let clients: Vec<_> = (0..4).map(load).collect();
    // Kill A once it is in use (a busy machine may take a while to get there), then
    // keep the load on for as long again as a request takes several times over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.received().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_kill = a.received().len();
    a.kill();
    tokio::time::sleep(Duration::from_millis(900)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }
    let failed: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Failed(_)))
        .collect();
    assert!(
        failed.is_empty(),
        "requests failed when a host died: {failed:?} of {}",
        seen.len()
    );
    // Only a stream already flowing from the dead host may break off, in-band.
    let broke = seen.iter().filter(|s| **s == Seen::BrokeMidStream).count();
    assert!(
        broke <= 4,
        "{broke} streams broke: more than were in flight"
    );
    assert!(
        before_kill > 2,
        "the dead host had served nothing: {before_kill}"
    );
    let sessions = router.sessions(seen.len()).await;
    for session in &sessions {
        let answer = common::answer(session);
        if session["outcome"] != "ok" {
            assert_eq!(session["stream"], true, "{session}");
            assert!(
                answer["url"].as_str().unwrap().starts_with(&a_url),
                "{answer}"
            );
            assert_eq!(answer["status"], 200, "it had started streaming: {answer}");
        }
    }
    // The dead host is ejected: what came after went to the other one.
    let ready = endpoints(&router).await;
    assert_eq!(ready[0].1, "down", "{ready:?}");
    assert_eq!(ready[1].1, "up", "{ready:?}");

    // It comes back: probes find it within seconds and it takes requests again.
    a.restart(busy(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while endpoints(&router).await[0].1 != "up" {
        assert!(Instant::now() < deadline, "the host was not probed back in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again: Vec<_> = (0..8)
        .map(|i| tokio::spawn(one(router.url.clone(), 1000 + i)))
        .collect();
    for request in again {
        assert_eq!(request.await.unwrap(), Seen::Answered);
    }
    assert!(
        a.received().len() >= 2,
        "the host that came back was not used"
    );
}

/// A request caught on a silent endpoint: the response to come, when it was sent, its
/// question, and how many requests it took to catch one (the others were answered).
struct Caught {
    response: tokio::task::JoinHandle<reqwest::Response>,
    sent: Instant,
    question: String,
    requests: usize,
}

/// Sends `question 1`, `question 2`… (a stream or not) until one lands on `silent` (the
/// others land on the pool's other endpoint and are answered at once: the pick breaks
/// ties at random).
async fn one_on(router: &TestRouter, silent: &Fake, question: &str, stream: bool) -> Caught {
    // Chats only: the silent endpoint takes its probes in too.
    let chats = || silent.bodies("/v1/chat/completions").len();
    let mut sent = 0;
    loop {
        sent += 1;
        let before = chats();
        let started = Instant::now();
        let url = router.url.clone();
        let asked = format!("{question} {sent}");
        let body = streaming(user(&asked), stream);
        let request = tokio::spawn(async move {
            // Longer than the backend's timeout: a request that waits it out gets its 504.
            reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap()
        });
        while !request.is_finished() && chats() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if chats() > before {
            return Caught {
                response: request,
                sent: started,
                question: asked,
                requests: sent,
            };
        }
        assert_eq!(request.await.unwrap().status(), 200);
        assert!(sent < 64, "no request went to the silent endpoint");
    }
}

/// The primary's `ai_router_endpoint_up` for the endpoint `url` from `/metrics`: `1`,
/// `0`, or `unknown` before the endpoint was first seen.
async fn endpoint_up(router: &TestRouter, url: &str) -> String {
    let metrics = router.metrics().await;
    let label = format!("{{backend=\"primary\",endpoint=\"{url}\"}} ");
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ai_router_endpoint_up")?
                .strip_prefix(&label)
        })
        .unwrap_or("unknown")
        .to_string()
}

#[tokio::test]
async fn a_request_waiting_on_a_host_that_went_silent_moves_when_the_host_is_ejected() {
    // Long enough that waiting it out and moving at the ejection (a probe every second,
    // which waits 5 s) cannot be mistaken for each other.
    const TIMEOUT: Duration = Duration::from_secs(20);
    let gate = Arc::new(Notify::new());
    let held = gate.clone();
    // B answers like vLLM, and holds a stream open when asked to (to be busy).
    let b = Fake::with(move |body| {
        if body.to_string().contains("hold me") {
            Reply::Gated(
                vec![chunk_json("Hel", None)],
                held.clone(),
                vec![chunk_json("lo", Some("stop")), "[DONE]".into()],
            )
        } else {
            vllm_reply(body)
        }
    })
    .await;
    let a = Fake::start().await;
    let urls = vec![a.url.clone(), b.url.clone()];
    let router = TestRouter::start(&urls[0].clone(), move |c| {
        c.backend("primary").base_url = urls.into();
        c.backend("primary").timeout_secs = TIMEOUT.as_secs();
        c.backend("primary").response_timeout_secs = TIMEOUT.as_secs();
        c.health.probe_interval_secs = 1;
        c.health.failure_threshold = 1;
    })
    .await;
    // Both answer (and the probes keep a connection to each alive); then A's link goes
    // down: A takes requests in and answers nothing, its probes neither.
    let deadline = Instant::now() + Duration::from_secs(5);
    while endpoint_up(&router, &a.url).await != "1" || endpoint_up(&router, &b.url).await != "1" {
        assert!(Instant::now() < deadline, "the pool did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.silence();
    // A JSON chat caught on A; then, with B as busy as A (a held stream), a stream.
    let json = one_on(&router, &a, "json", false).await;
    let hold = router.chat(&streaming(user("hold me"), true)).await;
    assert_eq!(hold.status(), 200);
    let stream = one_on(&router, &a, "stream", true).await;

    let response = json.response.await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let json_took = json.sent.elapsed();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello there!");
    let response = stream.response.await.unwrap();
    assert_eq!(response.status(), 200);
    let events = common::read_sse(response).await;
    let stream_took = stream.sent.elapsed();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("\"error\"")),
        "{events:?}"
    );
    for (what, took) in [("the JSON chat", json_took), ("the stream", stream_took)] {
        assert!(
            took < TIMEOUT / 2,
            "{what} was answered after {took:?}: it waited on the silent host ({TIMEOUT:?})"
        );
    }
    assert_eq!(
        endpoint_up(&router, &a.url).await,
        "0",
        "the silent host is not ejected"
    );
    assert_eq!(endpoint_up(&router, &b.url).await, "1");
    gate.notify_waiters();
    let held = common::read_sse(hold).await;
    assert_eq!(held.last().map(String::as_str), Some("[DONE]"));

    // The session log shows the attempt on A that was given up, and B answering.
    let sessions = router.sessions(json.requests + stream.requests + 1).await;
    for question in [&json.question, &stream.question] {
        let session = crate::session_for(&sessions, question);
        assert_eq!(session["outcome"], "ok", "{session}");
        let step = common::answer(session);
        assert!(step["url"].as_str().unwrap().starts_with(&b.url), "{step}");
        assert_eq!(step["status"], 200, "{step}");
        let failed = step["failed_attempts"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{step}");
        assert!(
            failed[0]["url"].as_str().unwrap().starts_with(&a.url),
            "{step}"
        );
        let error = failed[0]["error"].as_str().unwrap();
        assert!(error.contains("ejected"), "{error}");
        let waited = failed[0]["duration_ms"].as_u64().unwrap();
        assert!(waited < TIMEOUT.as_millis() as u64 / 2, "{step}");
    }
}

#[tokio::test]
async fn a_pool_with_no_healthy_endpoint_fails_fast_or_fails_over() {
    let a = Fake::with(|_| Reply::Hang).await;
    let b = Fake::with(|_| Reply::Hang).await;
    let urls = vec![a.url.clone(), b.url.clone()];
    let router = TestRouter::start(&urls[0].clone(), move |c| {
        c.backend("primary").base_url = urls.into();
        c.backend("primary").timeout_secs = 1;
        c.backend("primary").response_timeout_secs = 1;
        c.health.failure_threshold = 1;
        // Probes would find the hanging hosts "up": they answer /models.
        c.health.probe_interval_secs = 3600;
    })
    .await;
    // Each host times out once: both are ejected.
    for _ in 0..2 {
        let (status, _) = common::error_of(router.chat(&user("hi")).await).await;
        assert_eq!(status, 504);
    }
    // Two requests may try them (one each); a third at the same time fails at once.
    let trials: Vec<_> = (0..2)
        .map(|i| {
            let url = router.url.clone();
            tokio::spawn(async move { one(url, 2 * i + 1).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let response = router.chat(&user("is anyone there?")).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.headers()["retry-after"], "5");
    let (status, error) = common::error_of(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (503, Some("backend_unavailable"))
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("primary backend has no healthy endpoint"),
        "{message}"
    );
    for trial in trials {
        assert_eq!(trial.await.unwrap(), Seen::Failed(504));
    }
}

#[tokio::test]
async fn a_down_pool_fails_over_at_once_as_its_route_says() {
    let xai = Fake::start().await;
    let primary = Fake::with(|_| Reply::Hang).await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, move |c| {
        c.backend("xai").base_url = xai_url.as_str().into();
        c.backend("primary").timeout_secs = 1;
        c.backend("primary").response_timeout_secs = 1;
        c.route("MODERATE").failover = vec!["COMPLEX".into()];
        c.health.failure_threshold = 1;
        c.health.probe_interval_secs = 3600;
    })
    .await;
    // The primary times out once (answered by xAI after it): it is ejected.
    let response = router.chat(&user("first")).await;
    assert_eq!(response.headers()["x-ai-router-failover"], "primary->xai");
    // One request tries it again; another meanwhile goes to xAI without waiting.
    let trial = tokio::spawn(one(router.url.clone(), 1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let response = router.chat(&user("second")).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-failover"], "primary->xai");
    assert_eq!(response.headers()["x-ai-router-route"], "xai");
    assert_eq!(trial.await.unwrap(), Seen::Answered);
    let sessions = router.sessions(3).await;
    let second = crate::session_for(&sessions, "second");
    assert_eq!(second["backends_down"], serde_json::json!(["primary"]));
    let why = second["route_fallback"].as_str().unwrap();
    assert!(why.contains("no healthy endpoint"), "{why}");
}
