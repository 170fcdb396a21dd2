//! `ai-router sessions …` over the session folders of several replicas: given one by
//! one (`--dir a --dir b`) or as their parent (`logs/sessions/<pod>/`), they read as one
//! log, oldest first, and `show` finds a session in any of them.

use std::path::Path;

use chrono::Duration;
use serde_json::Value;

use crate::sessions_tools::{run, write_session};

/// Two replicas' folders under one parent: sessions 1…5 alternate between them, and
/// both hold a session with the id `feedbeef` (ids are random: two pods may draw one).
fn two_replicas(root: &Path) -> (String, String) {
    let (a, b) = (root.join("router-7d9f-a"), root.join("router-7d9f-b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for i in 1..=5u32 {
        let dir = if i % 2 == 1 { &a } else { &b };
        write_session(dir, Duration::minutes(60 - i64::from(i)), i, 10, 1);
    }
    write_session(&a, Duration::minutes(3), 0xfeed_beef, 10, 1);
    write_session(&b, Duration::minutes(2), 0xfeed_beef, 10, 1);
    let shown = |p: &Path| p.to_str().unwrap().to_string();
    (shown(&a), shown(&b))
}

async fn ok(args: &[&str]) -> String {
    let (ok, out, err) = run(args, &[]).await;
    assert!(ok, "{args:?}: {err}");
    out
}

fn ids(list: &str) -> Vec<String> {
    let rows: Vec<Value> = serde_json::from_str(list).unwrap();
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn several_folders_read_as_one_log() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(root.path());
    let parent = root.path().to_str().unwrap();
    let oldest_first = [
        "00000001", "00000002", "00000003", "00000004", "00000005", "feedbeef", "feedbeef",
    ];
    for dirs in [vec!["--dir", &a, "--dir", &b], vec!["--dir", parent]] {
        let with = |rest: &[&'static str]| -> Vec<&str> {
            let mut args = vec!["sessions"];
            args.extend(dirs.iter().copied());
            args.extend(rest);
            args
        };
        let list = ok(&with(&["--json", "list"])).await;
        assert_eq!(ids(&list), oldest_first, "{dirs:?}");
        let stats: Value = serde_json::from_str(&ok(&with(&["--json", "stats"])).await).unwrap();
        assert_eq!(stats["sessions"], 7, "{dirs:?}");
        assert_eq!(ok(&with(&["export"])).await.lines().count(), 7, "{dirs:?}");
        let cases = ok(&with(&["export", "--as-cases"])).await;
        assert_eq!(cases.lines().count(), 7, "{dirs:?}");
        // `show` finds a session in either folder…
        for id in ["00000001", "00000002"] {
            let shown: Value =
                serde_json::from_str(&ok(&with(&["--json", "show", id])).await).unwrap();
            assert_eq!(shown["id"], id);
        }
        // …and says so when two replicas gave the same id.
        let (found, _, err) = run(&with(&["show", "feedbeef"]), &[]).await;
        assert!(!found);
        assert!(
            err.contains("2 folders") && err.contains(&a) && err.contains(&b),
            "{err}"
        );
    }
}

#[tokio::test]
async fn one_folder_alone_is_still_just_that_folder() {
    let root = tempfile::tempdir().unwrap();
    let (a, _) = two_replicas(root.path());
    let list = ok(&["sessions", "--dir", &a, "--json", "list"]).await;
    assert_eq!(ids(&list), ["00000001", "00000003", "00000005", "feedbeef"]);
    let shown = ok(&["sessions", "--dir", &a, "--json", "show", "feedbeef"]).await;
    assert!(shown.contains("feedbeef"));
}
