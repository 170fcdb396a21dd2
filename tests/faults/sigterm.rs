//! 1,000 streams in flight, then SIGTERM to the real binary (config from a TOML file
//! and the environment, backends in-process fakes). Every request that reached the
//! router ends with `[DONE]`: complete, or with an in-band `router_shutdown` when its
//! answer outlives the grace period. None hangs or breaks off, new connections are
//! refused, every request has one complete session file, and the process exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::fake::{Fake, Reply, chunk_json, label_reply};
use crate::common::{self, session_files, streaming, user};
use crate::question;

const REQUESTS: usize = 1000;
/// Every tenth answer never ends: those meet the end of the grace period.
const ENDLESS_EVERY: usize = 10;
/// Long enough for every finite answer, even on a busy 2-core machine.
const GRACE_SECS: u64 = 6;
/// The other answers: 20 chunks 100 ms apart, about 2 s.
const CHUNKS: usize = 20;
const GAP: Duration = Duration::from_millis(100);

/// The router binary, killed if the test fails before it exits.
struct Router {
    child: Child,
    address: SocketAddr,
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `ai-router serve` with its config in `dir`, and waits until it listens.
fn start_router(dir: &Path, primary: &str, classifier: &str) -> Router {
    let prompts = dir.join("prompts");
    for (name, text) in common::PROMPTS
        .iter()
        .chain(&[("primary/system.md", "SYS.")])
    {
        let path = prompts.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/meta_rules.toml");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nprompts_dir = {prompts:?}\n\
         shutdown_grace_secs = {GRACE_SECS}\nmax_concurrent_requests = 2000\n\
         [sessions]\ndir = {sessions:?}\n[meta]\nrules_file = {rules:?}\n",
        sessions = dir.join("sessions"),
    );
    let config_file = dir.join("router.toml");
    std::fs::write(&config_file, config).unwrap();
    // Started as systemd and most shells start services: with a soft limit of 1,024
    // open files, fewer than 1,000 streams need (a client and a backend socket each).
    // The router must raise it itself.
    let mut child = Command::new("bash")
        .args(["-c", r#"ulimit -Sn 1024 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_ai-router"))
        .args(["serve", "--config"])
        .arg(&config_file)
        .env_clear()
        .env("AI_ROUTER_BACKENDS__PRIMARY__BASE_URL", primary)
        .env("AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL", classifier)
        .env("AI_ROUTER_BACKENDS__XAI__BASE_URL", primary)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    // Its log names the address; the rest of the log is kept for a failure's message.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let log = dir.join("stdout.log");
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(log).unwrap();
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("ai-router listening") {
                let at = line.split("address=").nth(1).unwrap_or_default();
                let _ = found.send(at.split_whitespace().next().unwrap_or_default().to_string());
            }
            let _ = std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes());
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("the router did not start: {log}")
        });
    Router {
        child,
        address: address.parse().unwrap(),
    }
}

/// How one request ended, as its client saw it.
#[derive(Debug, PartialEq)]
enum Ending {
    /// The connection failed before any response: it never reached a handler.
    NotReached,
    /// An error status with its code (503 `router_shutdown` is the one allowed).
    Refused(u16, String),
    /// The whole answer, then `[DONE]`.
    Complete,
    /// Part of the answer, then an in-band error with this code, then `[DONE]`.
    CutShort(String),
}

/// Sends request `i` (every `ENDLESS_EVERY`th asks for an endless answer) and reads it
/// to the end; counts it in `answered` once its response has begun.
async fn one_stream(
    client: reqwest::Client,
    url: String,
    i: usize,
    answered: Arc<AtomicUsize>,
) -> (bool, Ending) {
    let endless = i % ENDLESS_EVERY == 0;
    let question = format!("{} {i}", if endless { "endless" } else { "story" });
    let response = match client
        .post(&url)
        .json(&streaming(user(&question), true))
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            // Only possible after SIGTERM, for a connection the router never served.
            println!("request {i} did not reach the router: {e}");
            return (endless, Ending::NotReached);
        }
    };
    answered.fetch_add(1, Ordering::SeqCst);
    let status = response.status().as_u16();
    // A body that breaks off (reset, no [DONE]) fails the test here.
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("request {i} broke off: {e}"));
    if status != 200 {
        let error: Value = serde_json::from_str(&text).unwrap();
        let code = error["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return (endless, Ending::Refused(status, code));
    }
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(
        data.last(),
        Some(&"[DONE]"),
        "request {i} has no [DONE]: {text}"
    );
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("every data line is JSON"))
        .collect();
    let ending = match events.iter().find(|e| e.get("error").is_some()) {
        Some(error) => Ending::CutShort(error["error"]["code"].as_str().unwrap().to_string()),
        None if events.len() == CHUNKS => Ending::Complete,
        None => panic!("request {i} ended early without an error: {text}"),
    };
    (endless, ending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_then_sigterm_every_request_ends_cleanly_and_the_router_exits_0() {
    // This process holds 1,000 client and 1,000 fake-backend sockets itself.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 4096,
        "this test needs 4,096 open files; the hard limit is {limit}"
    );
    let story: Vec<String> = (0..CHUNKS)
        .map(|i| chunk_json("word ", (i == CHUNKS - 1).then_some("stop")))
        .chain(["[DONE]".to_string()])
        .collect();
    let primary = Fake::with(move |body| match question(body).starts_with("endless") {
        true => Reply::Forever(GAP),
        false => Reply::Sse(story.clone(), GAP),
    })
    .await;
    let classifier = Fake::with(label_reply("MODERATE")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut router = start_router(dir.path(), &primary.url, &classifier.url);
    let url = format!("http://{}/v1/chat/completions", router.address);
    // One client, one connection per stream; bounded, so a hung request fails the test.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| tokio::spawn(one_stream(client.clone(), url.clone(), i, answered.clone())))
        .collect();
    while answered.load(Ordering::SeqCst) < REQUESTS * 95 / 100
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight = answered.load(Ordering::SeqCst);
    println!(
        "SIGTERM {:?} after the start, with {in_flight} streams answering",
        started.elapsed()
    );
    let pid = router.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", pid.as_str()])
            .status()
            .unwrap()
            .success()
    );
    let signalled = Instant::now();

    // A new connection now is refused, or answered 503: never left waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = reqwest::Client::new()
        .post(&url)
        .json(&user("too late"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    match late {
        Ok(response) => assert_eq!(response.status(), 503),
        Err(e) => assert!(!e.is_timeout(), "a new connection hung after SIGTERM: {e}"),
    }

    let mut endings = Vec::new();
    for request in requests {
        endings.push(request.await.unwrap());
    }
    let exit = loop {
        if let Some(status) = router.child.try_wait().unwrap() {
            break status;
        }
        let limit = Duration::from_secs(GRACE_SECS + 4);
        assert!(
            signalled.elapsed() < limit,
            "the router did not exit within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("exited with {exit} {:?} after SIGTERM", signalled.elapsed());
    assert!(exit.success(), "exit status {exit}");
    let reached = check_endings(&endings);
    check_session_files(&dir.path().join("sessions"), &endings, reached);
}

/// Every story that reached the router is complete; every endless answer is cut short
/// by `router_shutdown`, in-band (or refused with a 503 saying so). Returns how many
/// requests reached the router.
fn check_endings(endings: &[(bool, Ending)]) -> usize {
    let mut figures = std::collections::BTreeMap::<String, usize>::new();
    for (endless, ending) in endings {
        let kind = if *endless { "endless" } else { "story" };
        *figures.entry(format!("{kind}: {ending:?}")).or_default() += 1;
        let fine = match ending {
            Ending::NotReached => true,
            Ending::Refused(status, code) => *status == 503 && code == "router_shutdown",
            Ending::Complete => !endless,
            Ending::CutShort(code) => *endless && code == "router_shutdown",
        };
        assert!(fine, "a {kind} request ended with {ending:?}");
    }
    println!("endings: {figures:?}");
    endings
        .iter()
        .filter(|(_, e)| *e != Ending::NotReached)
        .count()
}

/// One complete session file per request that reached the router, no temp file left,
/// and their outcomes match what the clients saw.
fn check_session_files(sessions: &Path, endings: &[(bool, Ending)], reached: usize) {
    let files = session_files(sessions);
    let all = std::fs::read_dir(sessions).unwrap().count();
    assert_eq!(all, files.len(), "temp or foreign files were left behind");
    assert_eq!(files.len(), reached, "session files");
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let session: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is torn: {e}", file.display()));
        *outcomes
            .entry(session["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    println!("session files: {} {outcomes:?}", files.len());
    let complete = endings
        .iter()
        .filter(|(_, e)| *e == Ending::Complete)
        .count();
    assert_eq!(outcomes.get("ok").copied().unwrap_or_default(), complete);
    assert_eq!(
        outcomes.get("error").copied().unwrap_or_default(),
        reached - complete
    );
}
