//! Kubernetes mounts a ConfigMap as a folder of links into a timestamped folder, and
//! updates it by swapping one link (`..data`) with a rename: no file is ever written in
//! place. Prompts and META rules mounted that way must still reload on the next request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::fake::Fake;
use crate::common::{self, TestRouter, user};

/// A folder laid out as the kubelet lays out a ConfigMap volume: every key under
/// `..<timestamp>/`, `..data` a link to that folder, and each top-level name (a file,
/// or the first folder of an `items[].path` such as `primary/system.md`) a link through
/// `..data`.
struct ConfigMapVolume {
    root: PathBuf,
    generation: u32,
}

impl ConfigMapVolume {
    fn create(root: &Path, files: &[(&str, &str)]) -> ConfigMapVolume {
        std::fs::create_dir_all(root).unwrap();
        let mut volume = ConfigMapVolume {
            root: root.to_path_buf(),
            generation: 0,
        };
        let data = volume.write_generation(files);
        std::os::unix::fs::symlink(&data, root.join("..data")).unwrap();
        let mut top: Vec<&str> = files
            .iter()
            .filter_map(|(name, _)| name.split('/').next())
            .collect();
        top.dedup();
        for name in top {
            std::os::unix::fs::symlink(Path::new("..data").join(name), root.join(name)).unwrap();
        }
        volume
    }

    /// What the kubelet does on an update: a new timestamped folder, `..data_tmp`
    /// pointing at it, an atomic rename of `..data_tmp` over `..data`, then the old
    /// folder deleted.
    fn update(&mut self, files: &[(&str, &str)]) {
        let old = self.root.join(generation_name(self.generation));
        let data = self.write_generation(files);
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        std::fs::remove_dir_all(old).unwrap();
    }

    /// Writes `files` into the next timestamped folder; returns its name (links are
    /// relative, as the kubelet's are).
    fn write_generation(&mut self, files: &[(&str, &str)]) -> PathBuf {
        self.generation += 1;
        let name = PathBuf::from(generation_name(self.generation));
        for (file, text) in files {
            let path = self.root.join(&name).join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        name
    }
}

fn generation_name(generation: u32) -> String {
    format!("..2026_12_05_10_00_{generation:02}.123456789")
}

/// The test prompts with `primary/system.md` saying `primary`.
fn prompts(primary: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut files = common::PROMPTS.to_vec();
    files.push(("primary/system.md", primary));
    files
}

/// Chats until the primary's system prompt is `wanted`, for at most 5 s.
async fn primary_prompt_becomes(
    router: &TestRouter,
    primary: &Fake,
    question: &str,
    wanted: &str,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        router.chat(&user(question)).await;
        if primary.last_body()["messages"][0]["content"] == wanted {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn prompts_in_a_configmap_reload_when_its_data_link_is_swapped() {
    let primary = Fake::start().await;
    let mount = tempfile::tempdir().unwrap();
    let root = mount.path().join("prompts");
    let mut volume = ConfigMapVolume::create(&root, &prompts("FIRST VERSION."));
    assert!(
        root.join("primary").is_symlink(),
        "a folder reached by a link"
    );
    let router = TestRouter::start(&primary.url, |c| c.server.prompts_dir = root.clone()).await;
    router.chat(&user("one")).await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        "FIRST VERSION."
    );

    volume.update(&prompts("SECOND VERSION."));
    assert!(
        primary_prompt_becomes(&router, &primary, "two", "SECOND VERSION.").await,
        "the prompt of the swapped-in ConfigMap was not used"
    );
    // And the update after it: the watch must follow the new folder, not the deleted one.
    volume.update(&prompts("THIRD VERSION."));
    assert!(
        primary_prompt_becomes(&router, &primary, "three", "THIRD VERSION.").await,
        "the second ConfigMap update was not used"
    );
}

#[tokio::test]
async fn prompts_in_a_linked_subfolder_of_a_configmap_reload_too() {
    // One ConfigMap for everything: `prompts -> ..data/prompts` is itself a link, so the
    // watch on the prompts folder sees only the old generation.
    let primary = Fake::start().await;
    let mount = tempfile::tempdir().unwrap();
    let root = mount.path().join("config");
    let files = |text| -> Vec<(String, &'static str)> {
        prompts(text)
            .into_iter()
            .map(|(name, text)| (format!("prompts/{name}"), text))
            .collect()
    };
    let first = files("FIRST VERSION.");
    let first: Vec<(&str, &str)> = first.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let mut volume = ConfigMapVolume::create(&root, &first);
    let prompts_dir = root.join("prompts");
    assert!(prompts_dir.is_symlink());
    let router =
        TestRouter::start(&primary.url, |c| c.server.prompts_dir = prompts_dir.clone()).await;
    router.chat(&user("one")).await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        "FIRST VERSION."
    );
    let second = files("SECOND VERSION.");
    let second: Vec<(&str, &str)> = second.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    volume.update(&second);
    assert!(
        primary_prompt_becomes(&router, &primary, "two", "SECOND VERSION.").await,
        "the prompt of the swapped-in ConfigMap was not used"
    );
}

/// A META rule that marks a question starting with `prefix` as a task.
fn rule(name: &str, prefix: &str) -> String {
    format!("[[rule]]\nname = \"{name}\"\n[rule.last_user]\nstarts_with = [\"{prefix}\"]\n")
}

const ALPHA: &str = "ALPHA TASK: write a title for this chat";
const BRAVO: &str = "BRAVO TASK: write a title for this chat";

#[tokio::test]
async fn meta_rules_in_a_configmap_reload_when_its_data_link_is_swapped() {
    let primary = Fake::start().await;
    let mount = tempfile::tempdir().unwrap();
    // As the manifests mount it: the config folder holds router.toml and the rules.
    let root = mount.path().join("config");
    let first = rule("alpha", ALPHA);
    let mut volume = ConfigMapVolume::create(
        &root,
        &[
            ("router.toml", "# unused here\n"),
            ("meta_rules.toml", &first),
        ],
    );
    let rules_file = root.join("meta_rules.toml");
    let router = TestRouter::start(&primary.url, |c| c.meta.rules_file = rules_file.clone()).await;
    let meta_prompt = json!("TEST META SYSTEM.");
    router.chat(&user(ALPHA)).await;
    assert_eq!(primary.last_body()["messages"][0]["content"], meta_prompt);
    router.chat(&user(BRAVO)).await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT,
        "no rule knows BRAVO yet"
    );

    let second = rule("bravo", BRAVO);
    volume.update(&[
        ("router.toml", "# unused here\n"),
        ("meta_rules.toml", &second),
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        router.chat(&user(BRAVO)).await;
        seen = primary.last_body()["messages"][0]["content"] == meta_prompt;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the rules of the swapped-in ConfigMap were not used");
    router.chat(&user(ALPHA)).await;
    assert_eq!(
        primary.last_body()["messages"][0]["content"],
        common::SYSTEM_PROMPT,
        "the old rule is gone with its file"
    );

    // A broken rules file never replaces good rules: BRAVO stays a task.
    volume.update(&[
        ("router.toml", "# unused\n"),
        ("meta_rules.toml", "[[rule]]\nname = 1\n"),
    ]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    router.chat(&user(BRAVO)).await;
    assert_eq!(primary.last_body()["messages"][0]["content"], meta_prompt);
}
