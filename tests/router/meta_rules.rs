//! The shipped META rules against real Open WebUI task prompts (0.5 … 0.12.4 and dev) and
//! the look-alikes that must never match (RAG-wrapped questions, pasted templates…), and
//! the suspect tables that flag what only looks like a task.
//! Each fixture's source version is listed in `tests/fixtures/openwebui/README.md`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ai_router::routing::meta_rules::MetaRules;
use serde_json::{Value, json};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn shipped_rules() -> MetaRules {
    MetaRules::load(&repo_path("config/meta_rules.toml")).unwrap()
}

/// Every fixture as (file name, messages), sorted so failures read in a stable order.
fn fixtures() -> Vec<(String, Vec<Value>)> {
    let dir = repo_path("tests/fixtures/openwebui");
    let mut out: Vec<(String, Vec<Value>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let body: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, body["messages"].as_array().unwrap().clone())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `task-<rule>-<version>[-<variant>].json` names the rule that must fire.
fn expected_rule(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("task-")?;
    rest.split('-').next()
}

#[test]
fn every_task_fixture_matches_its_rule_and_no_lookalike_matches() {
    let rules = shipped_rules();
    let all = fixtures();
    let mut failures = Vec::new();
    for (file, messages) in &all {
        let got = rules.detect(messages);
        let want = expected_rule(file);
        assert!(
            want.is_some() || file.starts_with("lookalike-"),
            "unexpected fixture name {file}"
        );
        if got != want {
            failures.push(format!("{file}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(all.iter().filter(|(f, _)| f.starts_with("task-")).count() >= 30);
    assert!(
        all.iter()
            .filter(|(f, _)| f.starts_with("lookalike-"))
            .count()
            >= 15
    );
}

/// Releases whose every task kind has a fixture, rendered from the package on PyPI (the
/// kinds each release has: follow-ups from 0.6.14, compaction and memory review from 0.10.0).
const COMPLETE_RELEASES: [(&str, &[&str]); 6] = [
    ("0.5.20", &KINDS_0_5),
    ("0.6.41", &KINDS_0_6),
    ("0.10.2", &KINDS_0_10),
    ("0.11.0", &KINDS_0_10),
    ("0.12.0", &KINDS_0_10),
    ("0.12.4", &KINDS_0_10),
];
const KINDS_0_5: [&str; 8] = [
    "title_generation",
    "tags_generation",
    "query_generation",
    "autocomplete_generation",
    "image_prompt_generation",
    "emoji_generation",
    "moa_response_generation",
    "function_calling",
];
const KINDS_0_6: [&str; 9] = [
    "title_generation",
    "tags_generation",
    "follow_up_generation",
    "query_generation",
    "autocomplete_generation",
    "image_prompt_generation",
    "emoji_generation",
    "moa_response_generation",
    "function_calling",
];
const KINDS_0_10: [&str; 11] = [
    "title_generation",
    "tags_generation",
    "follow_up_generation",
    "query_generation",
    "autocomplete_generation",
    "image_prompt_generation",
    "emoji_generation",
    "moa_response_generation",
    "function_calling",
    "context_compaction",
    "memory_review",
];

#[test]
fn six_releases_from_0_5_to_0_12_4_have_every_task_kind() {
    let files: HashSet<String> = fixtures().into_iter().map(|(file, _)| file).collect();
    for (version, kinds) in COMPLETE_RELEASES {
        for kind in kinds {
            let file = format!("task-{kind}-{version}.json");
            assert!(files.contains(&file), "missing fixture {file}");
        }
    }
}

/// The shipped file with only the `[[rule]]` named `keep` (and no suspects).
fn only_rule(keep: &str) -> MetaRules {
    let text = std::fs::read_to_string(repo_path("config/meta_rules.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table.remove("suspect");
    let rules = table["rule"].as_array_mut().unwrap();
    rules.retain(|rule| rule["name"].as_str() == Some(keep));
    assert_eq!(rules.len(), 1, "no rule {keep}");
    MetaRules::parse(&toml::to_string(&table).unwrap()).unwrap()
}

fn last_user_text(messages: &[Value]) -> String {
    let last = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    match &last["content"] {
        Value::String(text) => text.clone(),
        other => panic!("list content in a task fixture: {other}"),
    }
}

/// The structural rule alone catches every `### Task:` template over the chat history,
/// whatever its sentences: 0.12.1's rewritten follow-ups, and the next rewrite too.
#[test]
fn the_task_frame_rule_alone_catches_every_task_template_over_the_chat_history() {
    let frame = only_rule("task_frame");
    let mut caught = 0;
    for (file, messages) in fixtures() {
        if !file.starts_with("task-") {
            assert_eq!(frame.detect(&messages), None, "{file}");
            continue;
        }
        let text = last_user_text(&messages);
        if text.starts_with("### Task:\n") && text.trim_end().ends_with("</chat_history>") {
            assert_eq!(frame.detect(&messages), Some("task_frame"), "{file}");
            caught += 1;
        }
    }
    assert!(caught >= 30, "only {caught} fixtures have the task frame");
    // The 0.12.1 follow-up with its sentences replaced, as a next release might.
    let (_, follow_up) = fixtures()
        .into_iter()
        .find(|(file, _)| file == "task-follow_up_generation-0.12.4.json")
        .unwrap();
    let reworded = last_user_text(&follow_up).replace(
        "Predict 3-5 useful messages this user might naturally send next",
        "Offer three short next messages the user is likely to send",
    );
    let reworded = [user(json!(reworded))];
    assert_eq!(shipped_rules().detect(&reworded), Some("task_frame"));
}

/// Look-alikes that fit a suspect table on purpose: a task template pasted whole, or a
/// user writing Open WebUI's `### Task:` frame, has a task's shape. They are flagged (a
/// person looks once), never routed as META.
const FLAGGED_LOOKALIKES: [&str; 8] = [
    "lookalike-0.12.4-template-pasted-in-long-chat.json",
    "lookalike-pasted-0.12.4-follow-up-then-question.json",
    "lookalike-pasted-template-question.json",
    "lookalike-question-then-0.12.4-title-template.json",
    "lookalike-template-then-question.json",
    "lookalike-title-template-then-question.json",
    "lookalike-user-types-task-frame.json",
    "lookalike-user-writes-0.12-task-frame.json",
];

/// The title of 0.5.0–0.5.7 is one paragraph with no JSON and no `### Task:`; no later
/// release went back to that shape, and its own rule matches it.
const UNFLAGGED_TASKS: [&str; 1] = ["task-title_generation-0.5.7.json"];

/// Every task fixture fits a suspect table, so a release that rewords any of them is
/// flagged even when no rule matches it any more; real questions are not flagged.
#[test]
fn every_task_fixture_fits_a_suspect_and_lookalikes_mostly_do_not() {
    let rules = shipped_rules();
    let mut failures = Vec::new();
    for (file, messages) in fixtures() {
        let got = rules.suspect(&messages);
        let flagged = (file.starts_with("task-") && !UNFLAGGED_TASKS.contains(&file.as_str()))
            || FLAGGED_LOOKALIKES.contains(&file.as_str());
        if got.is_some() != flagged {
            failures.push(format!("{file}: suspect {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let names: Vec<&str> = rules.suspect_names().collect();
    assert!(names.len() >= 5, "{names:?}");
}

#[test]
fn suspect_tables_need_no_anchor_but_are_checked_like_rules() {
    let loose = MetaRules::parse(
        "[[suspect]]\nname = \"task\"\n[suspect.last_user]\nstarts_with = [\"### Task:\\n\"]\n",
    )
    .unwrap();
    assert!(loose.is_empty(), "a suspect is not a rule");
    let task = [user(json!("### Task:\nsomething new"))];
    assert_eq!(loose.detect(&task), None);
    assert_eq!(loose.suspect(&task), Some("task"));
    assert_eq!(loose.suspect(&[user(json!("hi"))]), None);
    let message =
        parse_error("[[suspect]]\nname = \"t\"\n[suspect.last_user]\nstart_with = [\"x\"]\n");
    assert!(
        message.contains("rule #1 \"t\" in [[suspect]]"),
        "{message}"
    );
    assert!(message.contains("start_with"), "{message}");
    // A suspect and a rule may share a name; two suspects may not.
    let twice = "[[suspect]]\nname = \"t\"\n[suspect.system]\ncontains_all = [\"x\"]\n";
    assert!(parse_error(&format!("{twice}{twice}")).contains("already"));
}

#[test]
fn every_shipped_rule_is_exercised_by_a_fixture() {
    let covered: HashSet<String> = fixtures()
        .iter()
        .filter_map(|(file, _)| expected_rule(file).map(str::to_owned))
        .collect();
    for rule in shipped_rules().names() {
        assert!(covered.contains(rule), "no fixture for rule {rule}");
    }
}

/// Rules in tests are written as TOML text, as an admin would.
const TITLE_RULE: &str = concat!(
    "[[rule]]\n",
    "name = \"title\"\n",
    "max_messages = 2\n",
    "[rule.last_user]\n",
    "starts_with = [\"### Task:\\nGenerate a concise title\"]\n",
    "contains_all = [\"<chat_history>\"]\n",
    "not_contains = [\"<context>\"]\n",
);

fn user(content: Value) -> Value {
    json!({"role": "user", "content": content})
}

#[test]
fn last_user_text_comes_from_a_string_or_the_text_parts() {
    let rules = MetaRules::parse(TITLE_RULE).unwrap();
    let title = "### Task:\nGenerate a concise title\n<chat_history>\nUSER: hi\n</chat_history>";
    assert_eq!(rules.detect(&[user(json!(title))]), Some("title"));
    let parts = json!([
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "### Task:\nGenerate a concise title"},
        {"type": "text", "text": "<chat_history>\nUSER: hi\n</chat_history>"}
    ]);
    assert_eq!(rules.detect(&[user(parts)]), Some("title"));
    // Leading whitespace is forgiven, case is not.
    assert_eq!(
        rules.detect(&[user(json!(format!("\n  {title}")))]),
        Some("title")
    );
    assert_eq!(rules.detect(&[user(json!(title.to_lowercase()))]), None);
}

#[test]
fn the_last_user_message_is_the_one_tested() {
    let rules = MetaRules::parse(TITLE_RULE).unwrap();
    let title = "### Task:\nGenerate a concise title <chat_history></chat_history>";
    let later = [user(json!(title)), user(json!("a real question"))];
    assert_eq!(rules.detect(&later), None);
    let after_reply = [
        user(json!(title)),
        json!({"role": "assistant", "content": "ok"}),
    ];
    assert_eq!(rules.detect(&after_reply), Some("title"));
}

#[test]
fn max_messages_and_not_contains_exclude() {
    let rules = MetaRules::parse(TITLE_RULE).unwrap();
    let title = "### Task:\nGenerate a concise title <chat_history></chat_history>";
    let system = json!({"role": "system", "content": "be brief"});
    assert_eq!(
        rules.detect(&[system.clone(), user(json!(title))]),
        Some("title")
    );
    assert_eq!(
        rules.detect(&[system.clone(), system, user(json!(title))]),
        None
    );
    let with_context = format!("{title}<context>doc</context>");
    assert_eq!(rules.detect(&[user(json!(with_context))]), None);
}

#[test]
fn system_block_needs_some_system_message_and_both_blocks_must_pass() {
    let rules = MetaRules::parse(
        r#"
        [[rule]]
        name = "tools"
        [rule.system]
        contains_any = ["Your task is to choose and return", "Return an empty string if no tools"]
        [rule.last_user]
        starts_with = ["Query: "]
        "#,
    )
    .unwrap();
    let sys = |text: &str| json!({"role": "system", "content": text});
    let ask = user(json!("Query: weather?"));
    let tools = "Persona.\nAvailable Tools: []\nYour task is to choose and return the tool";
    assert_eq!(
        rules.detect(&[sys("other"), sys(tools), ask.clone()]),
        Some("tools")
    );
    assert_eq!(rules.detect(&[sys("other"), ask]), None);
    assert_eq!(rules.detect(&[sys(tools), user(json!("weather?"))]), None);
}

#[test]
fn the_first_matching_rule_wins_and_odd_messages_do_not_panic() {
    let rules = MetaRules::parse(&format!(
        "{TITLE_RULE}\n[[rule]]\nname = \"wide\"\n[rule.last_user]\ncontains_all = [\"Generate a concise title\"]\n"
    ))
    .unwrap();
    assert_eq!(rules.len(), 2);
    let title = "### Task:\nGenerate a concise title <chat_history>";
    assert_eq!(rules.detect(&[user(json!(title))]), Some("title"));
    assert_eq!(
        rules.detect(&[user(json!(format!("Please {title}")))]),
        Some("wide")
    );
    let odd = [
        json!(null),
        json!({"role": "user"}),
        json!({"role": "user", "content": 7}),
        json!([]),
    ];
    assert_eq!(rules.detect(&odd), None);
    assert_eq!(rules.detect(&[]), None);
}

#[test]
fn empty_text_means_no_rules() {
    let rules = MetaRules::parse("# nothing yet\n").unwrap();
    assert!(rules.is_empty());
    assert_eq!(rules.detect(&[user(json!("hi"))]), None);
}

fn parse_error(text: &str) -> String {
    MetaRules::parse(text).unwrap_err().to_string()
}

#[test]
fn bad_rules_are_errors_that_name_the_rule() {
    let anchor = "starts_with = [\"### Task:\\nGenerate a concise title\"]";
    let cases = [
        // A typo must not silently drop a condition and widen the rule.
        (
            format!("[[rule]]\nname = \"t\"\n[rule.last_user]\nstart_with = [\"x\"]\n{anchor}"),
            "#1 \"t\"",
            "start_with",
        ),
        (
            format!(
                "[[rule]]\nname = \"t\"\n[rule.last_user]\n{anchor}\n[[rule]]\nname = \"t\"\n[rule.last_user]\n{anchor}"
            ),
            "#2 \"t\"",
            "already",
        ),
        (
            "[[rule]]\nname = \"t\"\n[rule.last_user]\nstarts_with = [\"### Task:\"]".to_owned(),
            "#1 \"t\"",
            "not anchored",
        ),
        (
            format!("[[rule]]\nname = \"t\"\n[rule.last_user]\n{anchor}\nnot_contains = [\"\"]"),
            "#1 \"t\"",
            "empty string",
        ),
        (
            "[[rule]]\nname = \"t\"\nmax_messages = 3".to_owned(),
            "#1 \"t\"",
            "block",
        ),
        (
            "[[rule]]\nname = \"t\"\n[rule.system]\n".to_owned(),
            "#1 \"t\"",
            "no conditions",
        ),
        (
            format!("[[rule]]\nname = \"t\"\nmax_messages = 0\n[rule.last_user]\n{anchor}"),
            "#1 \"t\"",
            "max_messages",
        ),
        (
            format!("[[rule]]\n[rule.last_user]\n{anchor}"),
            "#1",
            "name",
        ),
    ];
    for (text, rule, reason) in cases {
        let message = parse_error(&text);
        assert!(message.contains(&format!("rule {rule}")), "{message}");
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn bad_files_are_errors_that_name_the_file() {
    assert!(parse_error("[[rule]\nname = 1").contains("not valid TOML"));
    assert!(parse_error("rules = []").contains("unknown top-level key `rules`"));
    assert!(parse_error("rule = 1").contains("[[rule]]"));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let message = MetaRules::load(&missing).unwrap_err().to_string();
    assert!(message.contains("missing.toml"), "{message}");

    let broken = dir.path().join("meta_rules.toml");
    std::fs::write(
        &broken,
        "[[rule]]\nname = \"loose\"\n[rule.last_user]\nstarts_with = [\"### Task:\"]\n",
    )
    .unwrap();
    let message = MetaRules::load(&broken).unwrap_err().to_string();
    assert!(
        message.contains("meta_rules.toml") && message.contains("\"loose\""),
        "{message}"
    );
}
