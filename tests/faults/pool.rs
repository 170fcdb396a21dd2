//! The primary as a pool of two GPU hosts (one backend, two base URLs): requests spread
//! by in-flight count, a host killed mid-run costs no request that had not started
//! streaming, and it is used again once it is back; a pool with no healthy endpoint
//! fails fast, or fails over as its route says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;

use crate::common::fake::{Fake, Host, Reply, chunk_json, completion_json, stream_events};
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
