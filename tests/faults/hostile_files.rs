//! The session-log folder under attack and under strain: slow uploads that could hold
//! the writer's queue, chats too large for a file, files that are not what their name
//! says, a link planted where the router writes, a folder deleted or unwritable.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::fake::Fake;
use crate::common::{self, TestRouter, session_files, user};

const BIN: &str = env!("CARGO_BIN_EXE_ai-router");

#[tokio::test]
async fn slow_uploads_do_not_hold_the_session_writers_queue() {
    let fake = Fake::start().await;
    // Two places under the limit, four in the writer's queue.
    let router = TestRouter::start(&fake.url, |c| {
        c.server.max_concurrent_requests = 2;
        c.server.body_read_timeout_secs = 30;
    })
    .await;
    let address = router.url.trim_start_matches("http://").to_string();
    // Twelve uploads that announce a body and send almost none of it.
    let mut slow = Vec::new();
    for _ in 0..12 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"mod"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        slow.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A normal chat is answered at once, not after the uploads time out.
    let answered =
        tokio::time::timeout(Duration::from_secs(5), router.chat(&user("still there?"))).await;
    let response = answered.expect("a normal chat waited behind slow uploads");
    assert_eq!(response.status(), 200);
    drop(slow);
}

#[tokio::test]
async fn a_chat_too_large_for_a_file_is_cut_to_fit_and_says_so() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.sessions.max_file_bytes = 256 * 1024).await;
    // 1.8 MB of pasted text, stored once as the client sent it and once as sent on.
    let book = format!("START {} END", "lorem ipsum ".repeat(150_000));
    let response = router.chat(&user(&book)).await;
    assert_eq!(response.status(), 200);
    let session = &router.sessions(1).await[0];
    let file = &session_files(&router.sessions_dir);
    let size = std::fs::metadata(&file[0]).unwrap().len();
    assert!(size <= 256 * 1024, "the session file is {size} bytes");
    assert!(session["cut_to_fit"]["original_bytes"].as_u64().unwrap() > 3_600_000);
    let kept = session["client_messages"][0]["content"].as_str().unwrap();
    assert!(kept.starts_with("START lorem"), "{}", &kept[..40]);
    assert!(kept.ends_with("more bytes cut]"));
    // What a review agent needs most is whole: the route, the answer, the outcome.
    assert_eq!(session["outcome"], "ok");
    assert_eq!(session["route"], "primary");
    assert!(
        !common::answer(session)["response_content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_chat_within_the_bound_is_written_whole() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let text = "lorem ipsum ".repeat(100_000);
    router.chat(&user(&text)).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["client_messages"][0]["content"], text.as_str());
    assert!(session.get("cut_to_fit").is_none());
    let sent = &common::answer(session)["messages_sent"];
    assert_eq!(
        sent.as_array().unwrap().last().unwrap()["content"],
        text.as_str()
    );
}

/// A session file name whose id is `id`.
fn named(id: &str) -> String {
    format!("20260101T000000.000Z_{id}.json")
}

/// A FIFO at `path` (`mkfifo`).
fn fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success());
}

#[tokio::test]
async fn files_that_are_not_session_files_are_skipped_not_followed_or_waited_on() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    router.chat(&user("a real one")).await;
    router.sessions(1).await;
    let dir = router.sessions_dir.clone();
    let outside = tempfile::NamedTempFile::new().unwrap();
    let mut secret = std::fs::File::create(outside.path()).unwrap();
    let mut real: Value =
        serde_json::from_str(&std::fs::read_to_string(&session_files(&dir)[0]).unwrap()).unwrap();
    real["id"] = json!("5ec2e700");
    real["user_query"] = json!("a secret from outside the folder");
    secret.write_all(real.to_string().as_bytes()).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.join(named("5ec2e700"))).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join(named("0000fee0"))).unwrap();
    fifo(&dir.join(named("f1f0f1f0")));
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S.000Z");
    fifo(&dir.join(format!("{now}_f1f0aaaa.json")));

    // /stats reads today's files: it answers, counting what it skipped.
    let stats = tokio::time::timeout(Duration::from_secs(10), router.get("/stats")).await;
    let (status, _, body) = stats.expect("/stats hung on a FIFO");
    assert_eq!(status, 200);
    assert_eq!(body["last_24h"]["sessions"], 1, "{body}");
    assert_eq!(body["last_24h"]["skipped_files"], 1, "{body}");

    // The tools: `list` shows the one real session and finishes; `show` refuses the link.
    let mut list = std::process::Command::new(BIN);
    list.args(["sessions", "--dir"])
        .arg(&dir)
        .args(["list", "--json"]);
    let list = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || list.output()),
    )
    .await
    .expect("`sessions list` hung")
    .unwrap()
    .unwrap();
    assert!(list.status.success());
    let rows: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert!(stderr.contains("skipped 4 file(s)"), "{stderr}");
    assert!(stderr.contains("symbolic link") && stderr.contains("not a regular file"));
    let mut show = std::process::Command::new(BIN);
    show.args(["sessions", "--dir"])
        .arg(&dir)
        .args(["show", "5ec2e700"]);
    let shown = show.output().unwrap();
    assert!(!shown.status.success());
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(!out.contains("a secret from outside"), "{out}");
    assert!(String::from_utf8_lossy(&shown.stderr).contains("symbolic link"));
}

#[tokio::test]
async fn a_link_planted_at_the_write_probes_name_is_not_written_through() {
    let fake = Fake::start().await;
    let target = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(target.path(), "precious").unwrap();
    let planted = target.path().to_path_buf();
    let router = TestRouter::start(&fake.url, |c| {
        // Every name the start-up probe has used: by process id.
        let dir = &c.sessions.dir;
        std::fs::create_dir_all(dir).unwrap();
        let name = format!(".write-check-{}.json.tmp", std::process::id());
        std::os::unix::fs::symlink(&planted, dir.join(name)).unwrap();
    })
    .await;
    assert_eq!(std::fs::read_to_string(target.path()).unwrap(), "precious");
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    router.sessions(1).await;
}

#[tokio::test]
async fn a_deleted_sessions_folder_is_made_again() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    router.chat(&user("first")).await;
    router.sessions(1).await;
    std::fs::remove_dir_all(&router.sessions_dir).unwrap();
    router.chat(&user("second")).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["user_query"], "second");
    let (status, _, ready) = router.get("/health/ready").await;
    assert_eq!((status, &ready["sessions"]["status"]), (200, &json!("ok")));
}

#[tokio::test]
async fn an_unwritable_sessions_folder_degrades_the_router_instead_of_stopping_it() {
    let fake = Fake::start().await;
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let blocked = blocker.path().join("sessions");
    let router = TestRouter::start(&fake.url, |c| c.sessions.dir = blocked.clone()).await;
    // Chats are answered; readiness says what is wrong; the failure is counted.
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    router.flush().await;
    let (status, _, ready) = router.get("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["sessions"]["status"], "failing");
    assert!(
        ready["sessions"]["error"]
            .as_str()
            .unwrap()
            .contains("sessions"),
        "{ready}"
    );
    let metrics = router.metrics().await;
    assert!(
        metrics.contains("ai_router_session_log_writes_total{result=\"error\"} 1"),
        "{metrics}"
    );
    // The admin makes room: the next record is written and readiness recovers.
    drop(blocker);
    router.chat(&user("again")).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(session["user_query"], "again");
    let (_, _, ready) = router.get("/health/ready").await;
    assert_eq!(ready["sessions"]["status"], "ok", "{ready}");
}
