//! Prompt files are read on every change: an edit applies to the next request, and a
//! prompts folder that is replaced whole (as editors and `git checkout` do) keeps
//! reloading.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::TestRouter;
use crate::common::fake::Fake;
use crate::common::user;

#[tokio::test]
async fn a_prompt_edit_takes_effect_on_the_next_request() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    router.chat(&user("one")).await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT
    );
    std::fs::write(
        router.prompts_dir.join("primary/system.md"),
        "EDITED PROMPT.",
    )
    .unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("two")).await;
        primary.last_body()["messages"][0]["content"] == "EDITED PROMPT."
    })
    .await;
    assert!(seen, "the edited prompt was not used");

    // A broken edit (its required placeholder gone) keeps the last good version, while
    // other files saved at the same time are picked up.
    std::fs::write(
        router.prompts_dir.join("routing/request.md"),
        "no placeholder",
    )
    .unwrap();
    std::fs::write(
        router.prompts_dir.join("primary/system.md"),
        "EDITED AGAIN.",
    )
    .unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("three")).await;
        primary.last_body()["messages"][0]["content"] == "EDITED AGAIN."
    })
    .await;
    assert!(seen, "the second edit was not used");
    let classified = router.classifier.last_body()["messages"][1]["content"].clone();
    assert_eq!(
        classified, "CONTEXT: \nCLASSIFY: three",
        "the last good routing/request.md stays"
    );
}

#[tokio::test]
async fn a_replaced_prompts_folder_keeps_hot_reloading() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    let dir = router.prompts_dir.clone();
    // As a deploy or `git checkout` does: build a new folder, swap it in.
    let staged = dir.with_file_name("prompts.new");
    std::fs::create_dir_all(staged.join("primary")).unwrap();
    for (name, text) in common::PROMPTS {
        let path = staged.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(staged.join("primary/system.md"), "FROM THE NEW FOLDER.").unwrap();
    std::fs::rename(&dir, dir.with_file_name("prompts.old")).unwrap();
    std::fs::rename(&staged, &dir).unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("one")).await;
        primary.last_body()["messages"][0]["content"] == "FROM THE NEW FOLDER."
    })
    .await;
    assert!(seen, "the swapped-in folder was not read");
    // And edits inside the new folder are still seen.
    std::fs::write(dir.join("primary/system.md"), "EDITED IN THE NEW FOLDER.").unwrap();
    let seen = wait_for(|| async {
        router.chat(&user("two")).await;
        primary.last_body()["messages"][0]["content"] == "EDITED IN THE NEW FOLDER."
    })
    .await;
    assert!(seen, "hot reload stopped after the folder was replaced");
}

/// Retries `check` for up to 3 s: the watcher reloads shortly after a file changes.
async fn wait_for<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The primary's system prompt in each request the fake received.
fn system_prompts(primary: &Fake) -> Vec<String> {
    primary
        .bodies("/v1/chat/completions")
        .iter()
        .map(|b| {
            b["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The status of `GET url`, asked from a thread and runtime of its own, so that a router
/// whose runtime is stuck cannot stop the asking; `None` when no answer came within 2 s.
fn status_from_outside(url: String) -> Option<u16> {
    let (sent, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = runtime.block_on(async {
            let response = common::client()
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            response.ok().map(|r| r.status().as_u16())
        });
        let _ = sent.send(status);
    });
    answer.recv_timeout(Duration::from_secs(3)).ok().flatten()
}

// The router runs on one worker thread: a read that blocks it would stop everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_fifo_in_the_prompts_folder_stops_nothing() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    let prompt = router.prompts_dir.join("primary/system.md");
    let fifo = router.prompts_dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A FIFO where a prompt was: reading it would wait for a writer that never comes.
    std::fs::rename(&fifo, &prompt).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let health = status_from_outside(format!("{}/health", router.url));
    if health != Some(200) {
        // Let readers stuck on the FIFO go (each write is a change, which reloads again),
        // so that the test ends instead of hanging.
        let unstick = prompt.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let _ = std::fs::write(&unstick, "unstuck");
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        panic!("/health did not answer while a prompt was a FIFO: {health:?}");
    }
    let chat = router.chat(&user("hi")).await;
    assert_eq!(chat.status(), 200);
    assert!(
        system_prompts(&primary)
            .iter()
            .all(|p| p == common::SYSTEM_PROMPT),
        "the last good prompt must stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_saved_again_and_again_is_never_served_torn_or_empty() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    let prompt = router.prompts_dir.join("primary/system.md");
    let texts = ["A".repeat(4000), "B".repeat(4000)];
    let (first, second) = (texts[0].clone(), texts[1].clone());
    // An editor saving in place, again and again: truncate, write half, a pause, the rest
    // (a slow disk or a big file): half of the time the file is torn.
    let saver = std::thread::spawn(move || {
        use std::io::Write as _;
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(2) {
            let text = [&first, &second][i % 2];
            let mut file = std::fs::File::create(&prompt).unwrap();
            file.write_all(&text.as_bytes()[..2000]).unwrap();
            file.flush().unwrap();
            // Uneven, as real saves are: the reloads cannot fall into step with them.
            std::thread::sleep(Duration::from_millis(fastrand::u64(10..30)));
            file.write_all(&text.as_bytes()[2000..]).unwrap();
            drop(file);
            std::thread::sleep(Duration::from_millis(fastrand::u64(10..30)));
            i += 1;
        }
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2600) {
        router.chat(&user("hi")).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    saver.join().unwrap();
    // The saves are over: the last one is served.
    let last = wait_for(|| async {
        router.chat(&user("after")).await;
        let seen = system_prompts(&primary);
        seen.last().is_some_and(|p| texts.contains(p))
    })
    .await;
    assert!(last, "the last save was not picked up");
    let seen = system_prompts(&primary);
    let torn: Vec<usize> = seen
        .iter()
        .filter(|p| *p != common::SYSTEM_PROMPT && !texts.contains(p))
        .map(String::len)
        .collect();
    assert!(
        torn.is_empty(),
        "{} of {} requests had a torn prompt (lengths {torn:?})",
        torn.len(),
        seen.len()
    );
}
