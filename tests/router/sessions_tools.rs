//! `ai-router sessions …` and `GET /stats` against session folders with known answers:
//! written by the real router (through fake backends), and made by hand (edge cases,
//! exact percentiles, 5,000 files).

use std::path::Path;

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Reply, completion_json};
use crate::common::{TestRouter, client, user};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ai-router");

/// Runs the binary (without blocking the fakes' runtime); returns (ok, stdout, stderr).
pub(crate) async fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn json_of(args: &[&str]) -> Value {
    let (ok, out, err) = run(args, &[]).await;
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

/// Eight sessions with known routes, labels, outcomes and token counts.
async fn known_traffic() -> (TestRouter, Fake, Fake) {
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let router = TestRouter::start(&primary.url, |c| {
        c.backend("xai").base_url = xai_url.as_str().into()
    })
    .await;
    router.classifier.set(|body| {
        let text = body.to_string();
        if text.contains("prove") {
            Reply::Json(completion_json("COMPLEX"))
        } else if text.contains("flaky") {
            Reply::Status(
                500,
                r#"{"error":{"message":"classifier down","code":500}}"#.into(),
            )
        } else {
            Reply::Json(completion_json("MODERATE"))
        }
    });
    primary.set(|body| {
        if body.to_string().contains("boom") {
            Reply::Status(
                500,
                r#"{"error":{"message":"primary exploded","code":500}}"#.into(),
            )
        } else {
            common::fake::vllm_reply(body)
        }
    });
    for query in [
        "explain a",
        "explain b",
        "explain c",
        "prove d",
        "prove e",
        "flaky f",
        "boom g",
    ] {
        router.chat(&user(query)).await;
    }
    let meta = router
        .task_chat("tags_generation", &user("### Task:\nGenerate 1-3 tags"))
        .await;
    assert_eq!(meta.status(), 200);
    router.sessions(8).await;
    (router, primary, xai)
}

#[tokio::test]
async fn list_filters_show_and_export_on_real_sessions() {
    let (router, _primary, _xai) = known_traffic().await;
    let dir = router.sessions_dir.to_str().unwrap().to_string();
    let list = |extra: &'static [&'static str]| {
        let dir = dir.clone();
        async move {
            let mut args = vec!["sessions", "--dir", &dir, "--json", "list"];
            args.extend_from_slice(extra);
            json_of(&args).await.as_array().unwrap().clone()
        }
    };
    assert_eq!(list(&[]).await.len(), 8);
    assert_eq!(list(&["--route", "xai"]).await.len(), 2);
    assert_eq!(list(&["--class", "complex"]).await.len(), 2);
    assert_eq!(
        list(&["--route", "meta"]).await[0]["meta_match"],
        "header x-openwebui-task: tags_generation"
    );
    let errors = list(&["--errors"]).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["query"], "boom g");
    let fallbacks = list(&["--fallbacks"]).await;
    assert_eq!(fallbacks.len(), 1);
    assert!(
        fallbacks[0]["classification_fallback"]
            .as_str()
            .unwrap()
            .contains("classifier down")
    );
    let last_three = list(&["--limit", "3"]).await;
    assert_eq!(last_three.len(), 3);
    assert_eq!(last_three[2]["route"], "meta", "the most recent come last");
    assert!(list(&["--slow-ms", "600000"]).await.is_empty());

    let id = errors[0]["id"].as_str().unwrap();
    let (ok, text, _) = run(&["sessions", "--dir", &dir, "show", &id[..6]], &[]).await;
    assert!(ok);
    assert!(text.contains("decision  MODERATE → primary"), "{text}");
    assert!(text.contains("primary exploded"), "{text}");
    let (ok, _, err) = run(&["sessions", "--dir", &dir, "show", "ffffffff"], &[]).await;
    assert!(!ok && err.contains("no session ffffffff"), "{err}");

    let (ok, jsonl, _) = run(&["sessions", "--dir", &dir, "export"], &[]).await;
    assert!(ok);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert!(
        lines[0]["steps"][0]["messages_sent"].is_array(),
        "export keeps every field"
    );
    assert!(lines[0].get("user_agent").is_some());
}

#[tokio::test]
async fn stats_count_routes_tokens_and_cost() {
    let (router, _primary, _xai) = known_traffic().await;
    let dir = router.sessions_dir.to_str().unwrap();
    let stats = json_of(&["sessions", "--dir", dir, "--json", "stats", "--since", "1h"]).await;
    assert_eq!(stats["sessions"], 8);
    assert_eq!(stats["routes"], json!({"primary": 5, "xai": 2, "meta": 1}));
    assert_eq!(stats["classes"]["COMPLEX"], 2);
    assert_eq!(stats["classes"]["MODERATE"], 5);
    assert_eq!(stats["meta_share"], 0.125);
    assert_eq!(stats["outcomes"], json!({"ok": 7, "error": 1}));
    assert_eq!(
        stats["classification_ms"]["count"], 7,
        "META is never classified"
    );
    assert_eq!(
        stats["classification_fallbacks"]["the classifier failed: classifier down"],
        1
    );
    // Each fake answer reports 12 prompt and 5 completion tokens.
    assert_eq!(stats["xai"]["input_tokens"], 24);
    assert_eq!(stats["xai"]["output_tokens"], 10);
    let xai_cost = stats["xai"]["cost_usd"].as_f64().unwrap();
    assert!(
        (xai_cost - (24.0 * 1.25 + 10.0 * 2.5) / 1e6).abs() < 1e-12,
        "{xai_cost}"
    );
    // All-cloud: the 7 answers that have usage (not the failed one), at xAI's price.
    assert_eq!(stats["all_cloud"]["input_tokens"], 84);
    let all_cloud = stats["all_cloud"]["cost_usd"].as_f64().unwrap();
    assert!(
        (all_cloud - (84.0 * 1.25 + 35.0 * 2.5) / 1e6).abs() < 1e-12,
        "{all_cloud}"
    );
    assert!((stats["saving_usd"].as_f64().unwrap() - (all_cloud - xai_cost)).abs() < 1e-9);
    // Today's spend against the budgets, whatever --since says.
    let today = &stats["cloud_spend"]["backends"]["xai"]["day"];
    assert!(
        (today["spent_usd"].as_f64().unwrap() - xai_cost).abs() < 1e-6,
        "{today}"
    );
    let (ok, text, _) = run(&["sessions", "--dir", dir, "stats"], &[]).await;
    assert!(ok);
    assert!(
        text.contains("primary 5 (62.5%)") && text.contains("META share      12.5%"),
        "{text}"
    );
    let budget = [("AI_ROUTER_BUDGET__XAI__DAILY_USD", "0.00001")];
    let (ok, text, err) = run(&["sessions", "--dir", dir, "stats"], &budget).await;
    assert!(ok, "{err}");
    assert!(
        text.contains("xai             day $0.0001 of $0.00001") && text.contains("(spent)"),
        "{text}"
    );
}

/// A minimal session file, as the router writes them.
pub(crate) fn write_session(
    dir: &Path,
    age: chrono::Duration,
    id: u32,
    total_ms: u64,
    classify_ms: u64,
) {
    let at = chrono::Utc::now() - age;
    let name = format!("{}_{id:08x}.json", at.format("%Y%m%dT%H%M%S%.3fZ"));
    let body = json!({
        "schema_version": 1, "id": format!("{id:08x}"),
        "timestamp": at.to_rfc3339(), "user_query": format!("q{id}"),
        "client_messages": [{"role": "user", "content": format!("q{id}")}],
        "route": "primary", "classification": "SIMPLE", "classification_ms": classify_ms,
        "steps": [
            {"step": "classify", "provider": "classifier", "duration_ms": classify_ms},
            {"step": "answer", "provider": "primary", "duration_ms": total_ms, "ttft_ms": total_ms / 2}
        ],
        "total_ms": total_ms, "http_status": 200, "outcome": "ok"
    });
    std::fs::write(dir.join(name), body.to_string()).unwrap();
}

#[tokio::test]
async fn percentiles_since_and_broken_files_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=100u32 {
        // Ten of them are three days old.
        let age = if i <= 10 {
            chrono::Duration::days(3)
        } else {
            chrono::Duration::minutes(i64::from(i))
        };
        write_session(dir.path(), age, i, u64::from(i), u64::from(i) * 10);
    }
    std::fs::write(
        dir.path().join("20261101T000000.000Z_deadbeef.json"),
        "{ not json",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20261101T000000.000Z_0000beef.json"),
        r#"{"hello": 1}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.path().join("README.json"), "{}").unwrap();
    let path = dir.path().to_str().unwrap();
    let (ok, out, err) = run(&["sessions", "--dir", path, "--json", "stats"], &[]).await;
    assert!(ok, "broken files are never fatal: {err}");
    assert!(err.contains("skipped 4 file(s)"), "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["sessions"], 100);
    assert_eq!(
        stats["total_ms"]["primary"],
        json!({"count": 100, "p50": 50, "p95": 95, "p99": 99})
    );
    assert_eq!(stats["classification_ms"]["p50"], 500);
    assert_eq!(stats["ttft_ms"]["primary"]["p99"], 49);
    let recent = json_of(&[
        "sessions", "--dir", path, "--json", "stats", "--since", "2d",
    ])
    .await;
    assert_eq!(recent["sessions"], 90);
    assert_eq!(recent["total_ms"]["primary"]["p50"], 55);
}

#[tokio::test]
async fn five_thousand_files() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5000u32 {
        write_session(
            dir.path(),
            chrono::Duration::seconds(i64::from(i)),
            i,
            100,
            10,
        );
    }
    let path = dir.path().to_str().unwrap();
    let stats = json_of(&["sessions", "--dir", path, "--json", "stats"]).await;
    assert_eq!(stats["sessions"], 5000);
    let rows = json_of(&["sessions", "--dir", path, "--json", "list", "--limit", "5"]).await;
    assert_eq!(rows.as_array().unwrap().len(), 5);
    assert_eq!(rows[4]["id"], "00000000", "the newest is last");
}

#[tokio::test]
async fn replay_reports_agreement_and_every_changed_decision() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    for query in ["explain a", "explain b", "prove c", "hello d"] {
        router.chat(&user(query)).await;
    }
    router.sessions(4).await;
    // The "edited prompt": the classifier now sends proofs to xAI.
    router.classifier.set(|body| {
        let label = if body.to_string().contains("prove") {
            "COMPLEX"
        } else {
            "MODERATE"
        };
        Reply::Json(completion_json(label))
    });
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nprompts_dir = \"{}\"\n[meta]\nrules_file = \"\"\n[backends.classifier]\nbase_url = \"{}\"\n",
            router.prompts_dir.display(),
            router.classifier.url
        ),
    )
    .unwrap();
    let report_path = work.path().join("report.json");
    let (ok, out, err) = run(
        &[
            "sessions",
            "--config",
            config.to_str().unwrap(),
            "--dir",
            router.sessions_dir.to_str().unwrap(),
            "replay",
            "--since",
            "1h",
            "--out",
            report_path.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("replayed 4/4"), "progress is shown: {err}");
    assert!(out.contains("agreement 3/4 = 75.0%"), "{out}");
    assert!(
        out.contains("MODERATE → COMPLEX") && out.contains("prove c"),
        "{out}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["replayed"], 4);
    assert_eq!(report["agreed"], 3);
    assert_eq!(report["agreement"], 0.75);
    assert_eq!(report["changed"].as_array().unwrap().len(), 1);
    assert_eq!(report["changed"][0]["before"], "MODERATE");
    assert_eq!(report["changed"][0]["after"], "COMPLEX");
    // Every replayed conversation reached the classifier again: 4 live + 4 replayed.
    assert_eq!(router.classifier.received().len(), 8);
}

#[tokio::test]
async fn stats_endpoint_counts_what_happened() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    router.chat(&user("one")).await;
    router.chat(&user("two")).await;
    router.task_chat("title_generation", &user("title")).await;
    let bad = router.post_raw("{oops").await;
    assert_eq!(bad.status(), 400);
    router.sessions(4).await;
    let stats: Value = client()
        .get(format!("{}/stats", router.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let live = &stats["since_start"];
    assert_eq!(live["requests"], 4);
    assert_eq!(live["routes"]["primary"], 2);
    assert_eq!(live["routes"]["meta"], 1);
    assert_eq!(live["routes"]["rejected"], 1);
    assert_eq!(live["outcomes"]["ok"], 3);
    assert_eq!(live["outcomes"]["error"], 1);
    assert_eq!(live["in_flight"], 0);
    let day = &stats["last_24h"];
    assert_eq!(day["sessions"], 4);
    assert_eq!(day["routes"]["meta"], 1);
    assert_eq!(day["meta_share"], 0.25);
}

#[tokio::test]
async fn classify_command_shows_the_route_that_would_really_answer() {
    let classifier = Fake::with(common::fake::label_reply("COMPLEX")).await;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[meta]\nrules_file = \"\"\n[backends.classifier]\nbase_url = \"{}\"\n[backends.xai]\napi_key_env = \"AI_ROUTER_TEST_NO_SUCH_KEY\"\n",
            classifier.url
        ),
    )
    .unwrap();
    let (ok, out, err) = run(
        &[
            "classify",
            "--config",
            config.to_str().unwrap(),
            "prove the Riemann hypothesis",
        ],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("decision:    COMPLEX → primary (xai has no API key"),
        "{out}"
    );
    assert!(out.contains("raw reply:   \"COMPLEX\""), "{out}");
}

/// A task prompt no rule knows (as after a client release rewords one) is answered as a
/// normal chat, classified and routed as usual, and flagged everywhere a person looks:
/// the session log, `sessions stats` (text and JSON), `/stats` and `/metrics`.
#[tokio::test]
async fn meta_suspects_are_flagged_in_the_log_stats_and_metrics_never_routed() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    router
        .classifier
        .set(|_| Reply::Json(completion_json("MODERATE")));
    let new_task = "### Task:\nWrite a one-line summary of the chat.\n### Guidelines:\n\
                    - Be brief.\n### Chat:\nUSER: is the lift open at 8?\nASSISTANT: from 8:30";
    let response = router.chat(&user(new_task)).await;
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    router.chat(&user("what is a monad?")).await;
    // Open WebUI's empty task header says "a user's chat": not suspect, whatever the text.
    router.task_chat("", &user(new_task)).await;
    let sessions = router.sessions(3).await;
    let suspect = |s: &Value| s["meta_suspect"].clone();
    let flagged: Vec<&Value> = sessions.iter().filter(|s| !suspect(s).is_null()).collect();
    assert_eq!(flagged.len(), 1, "{sessions:#?}");
    assert_eq!(flagged[0]["meta_suspect"], "suspect task_heading");
    assert_eq!(flagged[0]["meta_match"], Value::Null);
    assert_eq!(flagged[0]["classification"], "MODERATE");
    assert!(sessions.iter().all(|s| s.get("meta_suspect").is_some()));
    assert_eq!(
        router.classifier.received().len(),
        3,
        "all three classified"
    );

    let dir = router.sessions_dir.to_str().unwrap();
    let stats = json_of(&["sessions", "--dir", dir, "--json", "stats"]).await;
    assert_eq!(
        stats["meta_suspects"],
        json!({"suspect task_heading": 1}),
        "{stats}"
    );
    let (ok, text, _) = run(&["sessions", "--dir", dir, "stats"], &[]).await;
    assert!(ok);
    assert!(
        text.contains("META suspects (a client task no rule matched): \n")
            && text.contains("1× suspect task_heading"),
        "{text}"
    );
    let (_, _, live) = router.get("/stats").await;
    assert_eq!(live["last_24h"]["meta_suspects"]["suspect task_heading"], 1);
    let metrics = router.metrics().await;
    assert!(
        metrics.contains("ai_router_meta_suspects_total{suspect=\"task_heading\"} 1"),
        "{metrics}"
    );
}
