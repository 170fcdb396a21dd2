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
