//! The binary as admins use it: `--help`, `check` with files and environment, and
//! `serve` stopping cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ai-router");

fn router(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_explains_both_commands() {
    let (ok, out, _) = router(&["--help"], &[]);
    assert!(ok);
    assert!(out.contains("serve") && out.contains("check"), "{out}");
    let (ok, out, _) = router(&["serve", "--help"], &[]);
    assert!(ok);
    assert!(
        out.contains("--config") && out.contains("config/router.toml"),
        "{out}"
    );
}

#[test]
fn check_prints_the_effective_settings_from_file_and_environment() {
    let (ok, out, err) = router(
        &["check", "--config", "config/router.toml"],
        &[
            (
                "AI_ROUTER_BACKENDS__PRIMARY__BASE_URL",
                "http://gpu-box:9000/v1",
            ),
            ("XAI_MODEL", "grok-4.3"),
            ("XAI_SEARCH_TOOLS", "web_search"),
            ("XAI_MIN_MAX_TOKENS", "20000"),
            ("VIRTUAL_MODEL", "home-ai"),
            ("XAI_API_KEY", "xai-very-secret-key"),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("base_url = \"http://gpu-box:9000/v1\""),
        "{out}"
    );
    assert!(out.contains("model = \"grok-4.3\""));
    assert!(out.contains("min_max_tokens = 20000"));
    assert!(out.contains("virtual_model = \"home-ai\""));
    // The seed's variables land on the routes they always meant, and check says so.
    assert!(out.contains("tools = [\"web_search\"]"), "{out}");
    assert!(
        out.contains("xai.search_tools → routes.ENRICH.search.tools"),
        "{out}"
    );
    assert!(
        out.contains("xai.min_max_tokens → routes.COMPLEX.min_max_tokens"),
        "{out}"
    );
    assert!(out.contains("XAI_API_KEY is set (***)"));
    assert!(!out.contains("xai-very-secret-key") && !err.contains("xai-very-secret-key"));
    assert!(out.contains("primary/system.md") && out.contains("file prompts/primary/system.md"));
}

#[test]
fn other_ai_router_variables_are_not_mistaken_for_settings() {
    let (ok, _, err) = router(
        &["check", "--config", "config/router.toml"],
        &[
            ("AI_ROUTER_CACHE", "/tmp/cache"),
            ("AI_ROUTER_URL", "http://x"),
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = router(
        &["check", "--config", "config/router.toml"],
        &[("AI_ROUTER_SERVER__LISEN", "0.0.0.0:1")],
    );
    assert!(!ok, "a misspelt setting must still be an error");
    assert!(
        err.contains("AI_ROUTER_SERVER__LISEN"),
        "names the variable: {err}"
    );
}

#[test]
fn a_route_is_set_from_the_environment_by_its_upper_case_label() {
    let (ok, out, err) = router(
        &["check", "--config", "config/router.toml"],
        &[
            ("AI_ROUTER_ROUTES__COMPLEX__BACKEND", "primary"),
            (
                "AI_ROUTER_BACKENDS__PRIMARY__BASE_URL",
                "[\"http://gpu1:8000/v1\", \"http://gpu2:8000/v1\"]",
            ),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("COMPLEX    → xai (primary, xai/system.md)"),
        "{out}"
    );
    assert!(
        out.contains("base_url = [\n    \"http://gpu1:8000/v1\",\n    \"http://gpu2:8000/v1\",\n]"),
        "{out}"
    );
    assert!(!out.contains("[routes.complex]"), "{out}");
}

#[test]
fn check_masks_a_password_in_a_backend_url() {
    let (ok, out, err) = router(
        &["check", "--config", "config/router.toml"],
        &[(
            "AI_ROUTER_BACKENDS__PRIMARY__BASE_URL",
            "http://router:hunter2-s3cret@gpu1:8000/v1",
        )],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("base_url = \"http://router:***@gpu1:8000/v1\""),
        "{out}"
    );
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out}"
    );
}

#[test]
fn the_long_environment_names_win_over_the_seed_names() {
    let (ok, out, _) = router(
        &["check", "--config", "config/router.toml"],
        &[
            ("VIRTUAL_MODEL", "seed"),
            ("AI_ROUTER_SERVER__VIRTUAL_MODEL", "explicit"),
        ],
    );
    assert!(ok);
    assert!(out.contains("virtual_model = \"explicit\""), "{out}");
}

/// `check` on the shipped config with `extra` appended, in a folder of its own whose
/// prompts are the shipped ones plus `prompts` (name, text).
fn check_with(extra: &str, prompts: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("config/router.toml")).unwrap();
    let prompts_dir = dir.path().join("prompts");
    for (name, text) in prompts {
        let path = prompts_dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let file = dir.path().join("router.toml");
    std::fs::write(&file, format!("{shipped}\n{extra}")).unwrap();
    router(
        &["check", "--config", file.to_str().unwrap()],
        &[
            (
                "AI_ROUTER_SERVER__PROMPTS_DIR",
                prompts_dir.to_str().unwrap(),
            ),
            (
                "AI_ROUTER_SESSIONS__DIR",
                dir.path().join("s").to_str().unwrap(),
            ),
        ],
    )
}

const CODE: &str = "[backends.coder]\nbase_url = \"http://coder:8000/v1\"\nmodel = \"qwen-coder\"\n\
                    [routes.CODE]\nbackend = \"coder\"\nprompt = \"code/system.md\"\n";

#[test]
fn check_shows_an_admins_route_and_who_answers_each_label() {
    let (ok, out, err) = check_with(CODE, &[("code/system.md", "Write code.")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("CODE       → code (coder, code/system.md)"),
        "{out}"
    );
    assert!(out.contains("code/system.md              file "), "{out}");
    // Without XAI_API_KEY, check says what COMPLEX and ENRICH do instead.
    assert!(out.contains("now: xai has no API key"), "{out}");
    // The routing prompt does not describe CODE yet: the classifier would never give it.
    assert!(
        out.contains(
            "warning: the routing prompts (routing/system.md, routing/request.md) never name CODE"
        ),
        "{out}"
    );
    assert!(!out.contains("never name SIMPLE"), "{out}");
}

#[test]
fn check_reports_a_broken_route_clearly() {
    let code = |extra: &str| format!("{CODE}{extra}");
    let cases = [
        (
            CODE.replace("backend = \"coder\"", "backend = \"coders\""),
            "`routes.CODE.backend` names no backend: \"coders\" (the backends are classifier, coder, primary, xai)",
        ),
        (
            code("failover = [\"FAST\"]\n"),
            "`routes.CODE.failover` names no route: \"FAST\"",
        ),
        (
            code("[routes.lower]\nbackend = \"coder\"\n"),
            "`routes.lower` labels are upper-case",
        ),
        (
            code("max_tokens = \"floor\"\n"),
            "`routes.CODE.min_max_tokens` must be at least 1",
        ),
        (
            CODE.replace(
                "[routes.CODE]",
                "[routes.CODE.search]\nbackend = \"nope\"\n[routes.CODE]",
            ),
            "`routes.CODE.search.backend` names no backend: \"nope\"",
        ),
    ];
    for (extra, expected) in cases {
        let (ok, _, err) = check_with(&extra, &[("code/system.md", "Write code.")]);
        assert!(!ok, "check passed with {extra}");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    let (ok, _, err) = router(
        &["check", "--config", "config/router.toml"],
        &[("AI_ROUTER_ROUTING__FALLBACK", "CODE")],
    );
    assert!(!ok);
    assert!(
        err.contains("`routing.fallback` names no route: \"CODE\""),
        "{err}"
    );
    // A prompt file the route names must exist: there is no built-in copy of it.
    let (ok, _, err) = check_with(CODE, &[]);
    assert!(!ok);
    assert!(
        err.contains("code/system.md") && err.contains("named by routes.CODE.prompt"),
        "{err}"
    );
}

#[test]
fn the_seed_config_keys_still_work_and_say_where_they_went() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.toml");
    std::fs::write(
        &old,
        "[xai]\nmin_max_tokens = 8000\nmissing_key = \"error\"\n\
         [failover]\nprimary_to_xai = true\nxai_to_primary = false\n\
         [meta]\ndisable_thinking = false\n",
    )
    .unwrap();
    let (ok, out, err) = router(&["check", "--config", old.to_str().unwrap()], &[]);
    assert!(ok, "{err}");
    for note in [
        "xai.min_max_tokens → routes.COMPLEX.min_max_tokens",
        "xai.missing_key → routing.missing_key",
        "failover.primary_to_xai → routes.MODERATE.failover, routes.SIMPLE.failover",
        "failover.xai_to_primary → routes.COMPLEX.failover",
        "meta.disable_thinking → routes.META.thinking",
    ] {
        assert!(out.contains(note), "{note}: {out}");
    }
    assert!(out.contains("min_max_tokens = 8000"), "{out}");
    assert!(out.contains("missing_key = \"error\""), "{out}");
    assert!(
        out.contains("COMPLEX    → xai (xai, xai/system.md)\n"),
        "no failover left: {out}"
    );
    assert!(
        out.contains("MODERATE   → primary (primary, primary/system.md); failover COMPLEX"),
        "{out}"
    );
    assert!(
        !out.contains("[xai]") && !out.contains("[failover]"),
        "{out}"
    );
}

#[test]
fn check_fails_clearly_naming_the_file_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = router(&["check", "--config", "no/such.toml"], &[]);
    assert!(!ok);
    assert!(
        err.contains("no/such.toml") && err.contains("not found"),
        "{err}"
    );

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[server]\nlisen = \"0.0.0.0:1\"\n").unwrap();
    let (ok, _, err) = router(&["check", "--config", unknown.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        err.contains("`server.lisen`") && err.contains("unknown.toml"),
        "{err}"
    );

    let wrong_type = dir.path().join("type.toml");
    std::fs::write(&wrong_type, "[sessions]\nmax_files = \"many\"\n").unwrap();
    let (ok, _, err) = router(&["check", "--config", wrong_type.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("max_files"), "{err}");

    let bad_url = dir.path().join("url.toml");
    std::fs::write(&bad_url, "[backends.primary]\nbase_url = \"vllm:8000\"\n").unwrap();
    let (ok, _, err) = router(&["check", "--config", bad_url.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("backends.primary.base_url"), "{err}");

    // serve would fail to create its session folder: check must fail too.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let (ok, _, err) = router(
        &["check", "--config", "config/router.toml"],
        &[(
            "AI_ROUTER_SESSIONS__DIR",
            blocker.join("sessions").to_str().unwrap(),
        )],
    );
    assert!(
        !ok,
        "check passed though the session folder cannot be created"
    );
    assert!(
        err.contains("session logs") && err.contains("a-file"),
        "{err}"
    );

    let (ok, _, err) = router(
        &["check", "--config", "config/router.toml"],
        &[("XAI_MIN_MAX_TOKENS", "lots")],
    );
    assert!(!ok);
    assert!(err.contains("XAI_MIN_MAX_TOKENS"), "{err}");
}

#[test]
fn serve_answers_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    let sessions = dir.path().join("sessions");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nprompts_dir = \"{}\"\n[sessions]\ndir = \"{}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("prompts")
                .display(),
            sessions.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(address) = line
                .split("address=")
                .nth(1)
                .filter(|_| line.contains("listening"))
            {
                let _ = found.send(address.trim().to_string());
            }
        }
    });
    let Ok(address) = address.recv_timeout(Duration::from_secs(10)) else {
        let _ = child.kill();
        panic!("the router did not log its address");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health = runtime.block_on(async {
        reqwest::get(format!("http://{address}/health"))
            .await?
            .text()
            .await
    });
    assert_eq!(health.unwrap(), r#"{"status":"ok"}"#);
    assert!(
        sessions.is_dir(),
        "the session folder is created at start-up"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn classify_fails_when_the_classifier_cannot_be_asked() {
    let classifier =
        crate::common::fake::Fake::with(crate::common::fake::label_reply("COMPLEX")).await;
    let url = classifier.url.clone();
    // The binary waits on the classifier: off the test's runtime.
    let run = move |url: String| {
        router(
            &["classify", "--config", "config/demo.toml", "prove it"],
            &[
                ("AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL", url.as_str()),
                ("AI_ROUTER_BACKENDS__CLASSIFIER__CONNECT_TIMEOUT_SECS", "2"),
            ],
        )
    };
    let answered = tokio::task::spawn_blocking(move || run(url)).await.unwrap();
    let (ok, out, err) = answered;
    assert!(ok, "{err}");
    assert!(out.contains("decision:    COMPLEX"), "{out}");
    // Nothing listens on port 9 here: the fallback decides, and the command says it failed.
    let unreachable = "http://127.0.0.1:9/v1".to_string();
    let (ok, _, err) = tokio::task::spawn_blocking(move || run(unreachable))
        .await
        .unwrap();
    assert!(
        !ok,
        "classify exited 0 although the classifier was unreachable"
    );
    assert!(err.contains("the classifier could not be asked"), "{err}");
    assert!(
        err.contains("decision:"),
        "the report is still shown: {err}"
    );
}
