//! `agents/run-board`, the review board's runner, as an admin first meets it: the dry
//! run prints the whole plan and writes nothing, and a real run needs an agent command.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ai-router");

fn run_board(args: &[&str], agent: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new("agents/run-board");
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    match agent {
        Some(cmd) => command.env("REVIEW_AGENT_CMD", cmd),
        None => command.env_remove("REVIEW_AGENT_CMD"),
    };
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let sessions = work.path().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let out = work.path().join("reports");
    let args = [
        "--dry-run",
        "--router",
        BIN,
        "--dir",
        sessions.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--since",
        "24h",
    ];
    let (code, stdout, stderr) = run_board(&args, Some("stub-agent --flag"));
    let all = format!("{stdout}{stderr}");
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("run-board: dry run: nothing is gathered, no agent is run"),
        "{all}"
    );
    assert!(all.contains("agent command: stub-agent --flag"), "{all}");
    assert!(all.contains("since: 24h"), "{all}");
    for role in [
        "role 1/3: session-review",
        "role 2/3: challenger",
        "role 3/3: doc-review",
    ] {
        assert!(all.contains(role), "missing {role}: {all}");
    }
    assert!(
        all.contains("sessions stats"),
        "the digest commands are shown: {all}"
    );
    assert!(all.contains("run-board: dry run done: 3 roles"), "{all}");
    assert!(!out.exists(), "a dry run wrote {}", out.display());

    let (code, stdout, stderr) = run_board(&args, None);
    assert_eq!(code, 0, "a dry run works without an agent command");
    assert!(format!("{stdout}{stderr}").contains("REVIEW_AGENT_CMD is empty"));
}

#[test]
fn a_real_run_needs_an_agent_command_and_a_session_folder() {
    let work = tempfile::tempdir().unwrap();
    let sessions = work.path().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let out = work.path().join("reports");
    let (code, _, stderr) = run_board(
        &[
            "--router",
            BIN,
            "--dir",
            sessions.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("REVIEW_AGENT_CMD"), "{stderr}");
    let (code, _, stderr) = run_board(
        &[
            "--dry-run",
            "--router",
            BIN,
            "--dir",
            work.path().join("missing").to_str().unwrap(),
        ],
        Some("stub"),
    );
    assert_eq!(code, 5, "{stderr}");
}
