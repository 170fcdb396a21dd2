//! `ai-router eval` and `sessions export --as-cases` on a small hand-checked set
//! (`tests/fixtures/eval/small.jsonl`) against a scripted classifier on 127.0.0.1:
//! every figure is worked out by hand in the comments.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake::{Fake, Reply, completion_json};
use crate::common::{PROMPTS, TestRouter, user};

const BIN: &str = env!("CARGO_BIN_EXE_ai-router");
const SMALL: &str = "tests/fixtures/eval/small.jsonl";

/// Runs the binary; returns (exit code, stdout, stderr).
async fn run(args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The scripted classifier. With the shipped-style prompts ("TEST ROUTING SYSTEM.") it
/// gets 4 of 8 right, one by no label at all; with the candidate prompts ("CANDIDATE")
/// it fixes three cases and breaks one. The proof takes 300 ms.
fn classifier(body: &Value) -> Reply {
    let text = body.to_string();
    let candidate = text.contains("CANDIDATE");
    let label = if text.contains("hi there") {
        "SIMPLE"
    } else if text.contains("thanks, bye") || text.contains("hash map") {
        if candidate { "SIMPLE" } else { "MODERATE" }
    } else if text.contains("reverse a list") {
        "COMPLEX"
    } else if text.contains("infinitely many primes") {
        return Reply::Late(
            Duration::from_millis(300),
            Box::new(Reply::Json(completion_json("COMPLEX"))),
        );
    } else if text.contains("consensus protocol") {
        if candidate { "COMPLEX" } else { "MODERATE" }
    } else if text.contains("weather") {
        if candidate {
            "ENRICH"
        } else {
            "I would rather not say."
        }
    } else if text.contains("latest score") {
        "ENRICH"
    } else {
        "MODERATE"
    };
    Reply::Json(completion_json(label))
}

/// A work folder: `prompts/` (the test prompts), `candidate/` (the same with another
/// routing system prompt) and `router.toml` pointing the classifier at `classifier_url`.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new(classifier_url: &str) -> Work {
        let dir = tempfile::tempdir().unwrap();
        for (folder, system) in [("prompts", None), ("candidate", Some("CANDIDATE ROUTING."))] {
            for (name, text) in PROMPTS {
                let text = match (name, system) {
                    ("routing/system.md", Some(system)) => system,
                    _ => text,
                };
                let path = dir.path().join(folder).join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        }
        let config = format!(
            "[server]\nprompts_dir = \"{prompts}\"\n[meta]\nrules_file = \"\"\n\
             [backends.classifier]\nbase_url = \"{classifier_url}\"\nretries = 0\n\
             [[routing.fallback_rules]]\nlabel = \"ENRICH\"\nkeywords = [\"weather\"]\n\
             [eval]\ndefault_cost = 1.5\n[eval.costs]\n\"SIMPLE>MODERATE\" = 0.25\n\
             \"COMPLEX>MODERATE\" = 2.0\n",
            prompts = dir.path().join("prompts").display()
        );
        std::fs::write(dir.path().join("router.toml"), config).unwrap();
        Work { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `eval --config <router.toml> --set <set>` and `extra`.
    async fn eval(&self, set: &str, extra: &[&str]) -> (i32, String, String) {
        let config = self.path("router.toml");
        let mut args = vec!["eval", "--config", &config, "--set", set];
        args.extend_from_slice(extra);
        run(&args).await
    }

    async fn eval_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.eval(SMALL, &args).await;
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}"))
    }
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

#[tokio::test]
async fn eval_reports_every_figure_on_the_small_set() {
    let fake = Fake::with(classifier).await;
    let work = Work::new(&fake.url);
    let report = work.eval_json(&[]).await;
    let run = &report["prompts"];
    assert_eq!(report["cases"], 8);
    assert_eq!(
        report["labels"],
        json!(["SIMPLE", "MODERATE", "COMPLEX", "ENRICH"])
    );
    // Right: hi there, hash map, primes, latest score. The weather case fell back
    // (no label) and its keyword rule routed it to ENRICH, which was right.
    assert_eq!(run["correct"], 4);
    assert!(close(&run["accuracy"], 0.5), "{}", run["accuracy"]);
    assert_eq!(run["routed_correct"], 5);
    assert!(close(&run["routed_accuracy"], 0.625));
    assert_eq!(
        run["fallbacks"],
        json!({"count": 1, "unreachable": 0, "routed_correct": 1})
    );
    // SIMPLE: given once (right) of 2 → P 1, R 1/2. MODERATE: given 3 times (thanks,
    // hash map, consensus), right once → P 1/3, R 1/2. COMPLEX: given twice (reverse,
    // primes), right once → P 1/2, R 1/2. ENRICH: given once, right → P 1, R 1/2.
    let per_label = run["per_label"].as_array().unwrap();
    let expected = [
        ("SIMPLE", 1.0, 0.5, 1),
        ("MODERATE", 1.0 / 3.0, 0.5, 3),
        ("COMPLEX", 0.5, 0.5, 2),
        ("ENRICH", 1.0, 0.5, 1),
    ];
    for (figures, (label, precision, recall, predicted)) in per_label.iter().zip(expected) {
        assert_eq!(figures["label"], label);
        assert!(close(&figures["precision"], precision), "{figures}");
        assert!(close(&figures["recall"], recall), "{figures}");
        assert_eq!(figures["support"], 2, "{figures}");
        assert_eq!(figures["predicted"], predicted, "{figures}");
    }
    let confusion = &run["confusion"];
    let row = |label: &str| -> Vec<u64> {
        ["SIMPLE", "MODERATE", "COMPLEX", "ENRICH", "fallback"]
            .iter()
            .map(|c| confusion[label][*c].as_u64().unwrap())
            .collect()
    };
    assert_eq!(row("SIMPLE"), [1, 1, 0, 0, 0]);
    assert_eq!(row("MODERATE"), [0, 1, 1, 0, 0]);
    assert_eq!(row("COMPLEX"), [0, 1, 1, 0, 0]);
    assert_eq!(row("ENRICH"), [0, 0, 0, 1, 1]);
    // SIMPLE>MODERATE 0.25 (listed), MODERATE>COMPLEX 1.5 (the default),
    // COMPLEX>MODERATE 2.0 (listed); the fallback was routed right: 3.75 over 8 cases.
    let cost = &run["cost"];
    assert!(close(&cost["total"], 3.75), "{cost}");
    assert!(close(&cost["per_case"], 3.75 / 8.0), "{cost}");
    assert_eq!(cost["mistakes"]["MODERATE>COMPLEX"]["count"], 1);
    assert!(close(&cost["mistakes"]["MODERATE>COMPLEX"]["cost"], 1.5));
    assert_eq!(
        run["calibration"],
        Value::Null,
        "no confidences recorded today"
    );
    // Every case asked the classifier once; the proof took 300 ms, the rest far less.
    let latency = &run["latency_ms"];
    assert_eq!(latency["count"], 8);
    assert!(latency["p99"].as_u64().unwrap() >= 300, "{latency}");
    assert!(latency["p50"].as_u64().unwrap() < 300, "{latency}");
    assert_eq!(fake.received().len(), 8);
    assert!(report.get("against").is_none());
    assert_eq!(report["changed"], json!([]));
    assert_eq!(report["gate"], Value::Null);
    let weather = &run["verdicts"][6];
    assert_eq!(weather["predicted"], Value::Null);
    assert_eq!(weather["routed"], "ENRICH");
    assert!(
        weather["fallback"]
            .as_str()
            .unwrap()
            .contains("without a label"),
        "{weather}"
    );
}

#[tokio::test]
async fn eval_prints_the_table_for_people() {
    let fake = Fake::with(classifier).await;
    let work = Work::new(&fake.url);
    let (code, out, err) = work.eval(SMALL, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("classified 8/8"), "progress on stderr: {err}");
    for line in [
        "eval: 8 cases from tests/fixtures/eval/small.jsonl",
        "accuracy                4/8 50.0%",
        "routed right            5/8 62.5%",
        "cost-weighted error     0.469 (3.75 in all)",
        "  MODERATE              33.3% / 50.0% (2)",
        "  SIMPLE               1         1         0         0         0",
        "  ENRICH               0         0         0         1         1",
        "  COMPLEX>MODERATE         1    2.00",
        "calibration: no confidences recorded",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("changed verdicts"), "{out}");
}

#[tokio::test]
async fn against_shows_both_prompt_sets_and_every_changed_verdict() {
    let fake = Fake::with(classifier).await;
    let work = Work::new(&fake.url);
    let candidate = work.path("candidate");
    let report = work.eval_json(&["--against", &candidate]).await;
    assert_eq!(report["prompts"]["correct"], 4);
    // The candidate fixes thanks, consensus and weather, and breaks hash map: 6 of 8.
    assert_eq!(report["against"]["correct"], 6);
    assert_eq!(report["against"]["fallbacks"]["count"], 0);
    assert_eq!(report["against"]["prompts"], candidate);
    let changed: Vec<(String, String, String, String)> = report["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("id"), s("label"), s("before"), s("after"))
        })
        .collect();
    let expect = |id: &str, label: &str, before: &str, after: &str| {
        (id.into(), label.into(), before.into(), after.into())
    };
    assert_eq!(
        changed,
        vec![
            expect("simple-farewell-002", "SIMPLE", "MODERATE", "SIMPLE"),
            expect("moderate-explain-001", "MODERATE", "MODERATE", "SIMPLE"),
            expect("complex-design-002", "COMPLEX", "MODERATE", "COMPLEX"),
            expect("enrich-weather-001", "ENRICH", "fallback", "ENRICH"),
        ]
    );
    assert_eq!(fake.received().len(), 16, "each set asks once per case");
    let (code, out, err) = work.eval(SMALL, &["--against", &candidate]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("accuracy                4/8 50.0%             6/8 75.0%"),
        "{out}"
    );
    assert!(out.contains("changed verdicts: 4"), "{out}");
    assert!(
        out.contains("  moderate-explain-001  MODERATE  MODERATE → SIMPLE  (broken)"),
        "{out}"
    );
    assert!(
        out.contains("  enrich-weather-001  ENRICH  fallback → ENRICH  (fixed)"),
        "{out}"
    );
}

#[tokio::test]
async fn min_accuracy_is_a_gate_and_bad_runs_exit_2() {
    let fake = Fake::with(classifier).await;
    let work = Work::new(&fake.url);
    let candidate = work.path("candidate");
    // 50% < 70%: the gate fails, the report is still printed.
    let (code, out, err) = work.eval(SMALL, &["--min-accuracy", "0.7"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("is below --min-accuracy 70.0%"), "{out}");
    assert!(err.contains("below --min-accuracy"), "{err}");
    // With --against, the candidate (75%) is the one held to it.
    let (code, _, err) = work
        .eval(SMALL, &["--against", &candidate, "--min-accuracy", "0.7"])
        .await;
    assert_eq!(code, 0, "{err}");
    let gated = work.eval_json(&["--min-accuracy", "0.5"]).await;
    assert_eq!(
        gated["gate"],
        json!({"min_accuracy": 0.5, "accuracy": 0.5, "passed": true})
    );

    let (code, _, err) = work.eval(SMALL, &["--min-accuracy", "70"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("a fraction from 0 to 1"), "{err}");
    let (code, _, err) = work.eval("no/such.jsonl", &[]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no/such.jsonl"), "{err}");
    let (code, _, err) = work.eval(SMALL, &["--against", "no/such/folder"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no/such/folder does not exist"), "{err}");
    // A folder without the routing prompts would measure the built-in copies.
    let empty = work.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = work.eval(SMALL, &["--against", &empty]).await;
    assert_eq!(code, 2);
    assert!(err.contains("has no routing/system.md"), "{err}");
    let (code, _, _) = work.eval(SMALL, &["--no-such-flag"]).await;
    assert_eq!(code, 2, "clap's usage errors exit 2 too");

    // A classifier nobody can reach measured nothing: an error, not 0% accuracy.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let down = Work::new(&url);
    let (code, _, err) = down.eval(SMALL, &[]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("could not be asked for any case"), "{err}");
}

#[tokio::test]
async fn a_broken_set_or_cost_table_is_named_line_by_line() {
    let fake = Fake::with(classifier).await;
    let work = Work::new(&fake.url);
    let set = work.path("broken.jsonl");
    let line = |id: &str, label: &str, messages: Value| {
        json!({"id": id, "label": label, "messages": messages}).to_string()
    };
    let hello = json!([{"role": "user", "content": "hi there!"}]);
    let lines = [
        line("a", "SIMPLE", hello.clone()),
        line("a", "SIMPLE", hello.clone()),
        line("b", "META", hello.clone()),
        line("c", "CODE", hello.clone()),
        line(
            "d",
            "SIMPLE",
            json!([{"role": "assistant", "content": "hi"}]),
        ),
        "not json".into(),
    ];
    std::fs::write(&set, lines.join("\n")).unwrap();
    let (code, _, err) = work.eval(&set, &[]).await;
    assert_eq!(code, 2);
    for problem in [
        "line 2: the id \"a\" is used twice",
        "line 3: b: META is never the classifier's",
        "line 4: c: the label \"CODE\" is not in the route table",
        "line 5: d: `messages` must end with the user message",
        "line 6: not a case",
    ] {
        assert!(err.contains(problem), "missing {problem:?} in: {err}");
    }
    assert_eq!(fake.received().len(), 0, "nothing is asked of a broken set");

    let config = std::fs::read_to_string(work.path("router.toml")).unwrap();
    for (costs, expected) in [
        (
            "\"MODERATE>CODE\" = 1.0",
            "`eval.costs.\"MODERATE>CODE\"` names no route: \"CODE\"",
        ),
        (
            "\"MODERATE-COMPLEX\" = 1.0",
            "must be written \"TRUE>ROUTED\"",
        ),
        ("\"SIMPLE>SIMPLE\" = 1.0", "names the same label twice"),
        ("\"SIMPLE>COMPLEX\" = -1.0", "must be a number, 0 or more"),
    ] {
        let bad = config.replace("\"SIMPLE>MODERATE\" = 0.25", costs);
        std::fs::write(work.path("router.toml"), bad).unwrap();
        let (code, _, err) = work.eval(SMALL, &[]).await;
        assert_eq!(code, 2, "{costs}");
        assert!(
            err.contains(expected),
            "{costs}: expected {expected:?} in {err}"
        );
    }
}

#[tokio::test]
async fn logged_sessions_export_as_cases_for_review() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |_| {}).await;
    router.classifier.set(|body| {
        if body.to_string().contains("flaky") {
            Reply::Status(500, r#"{"error":{"message":"down","code":500}}"#.into())
        } else {
            Reply::Json(completion_json("COMPLEX"))
        }
    });
    router.chat(&user("prove it")).await;
    router.chat(&user("flaky one")).await;
    router.task_chat("title_generation", &user("title")).await;
    router.sessions(3).await;
    let dir = router.sessions_dir.display().to_string();
    let export = |only: &'static str| {
        let dir = dir.clone();
        async move {
            let mut args = vec!["sessions", "--dir", dir.as_str(), "export", "--as-cases"];
            if !only.is_empty() {
                args.extend(["--only", only]);
            }
            let (code, out, err) = run(&args).await;
            assert_eq!(code, 0, "{err}");
            out.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        }
    };
    // META is never classified: two candidates, oldest first.
    let all = export("").await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0]["label"], "COMPLEX");
    assert_eq!(all[0]["needs_review"], true);
    assert_eq!(
        all[0]["messages"],
        json!([{"role": "user", "content": "prove it"}])
    );
    assert!(
        all[0]["source"]
            .as_str()
            .unwrap()
            .contains("the classifier said COMPLEX")
    );
    let fallbacks = export("fallbacks").await;
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0]["label"], "MODERATE");
    assert!(
        fallbacks[0]["source"]
            .as_str()
            .unwrap()
            .contains("fallback: ")
    );

    // Unreviewed candidates are left out of an eval until a person clears the flag.
    let work = Work::new(&router.classifier.url);
    let mut reviewed = all[0].clone();
    reviewed["needs_review"] = json!(false);
    reviewed["id"] = json!("reviewed-1");
    let lines: Vec<String> = all
        .iter()
        .chain([&reviewed])
        .map(Value::to_string)
        .collect();
    let set = work.path("candidates.jsonl");
    std::fs::write(&set, lines.join("\n")).unwrap();
    let (code, out, err) = work.eval(&set, &["--json"]).await;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["cases"], 1);
    assert_eq!(report["unreviewed"], 2);
    assert_eq!(report["prompts"]["correct"], 1);
}

#[tokio::test]
async fn unsure_sessions_export_as_cases_too() {
    let primary = Fake::start().await;
    let router = TestRouter::start(&primary.url, |c| c.routing.logprobs = true).await;
    // The classifier says COMPLEX: sure of it for one question, not for the other.
    router.classifier.set(|body| {
        let p: f64 = if body.to_string().contains("hmm") {
            0.3
        } else {
            0.9
        };
        let mut reply = completion_json("COMPLEX");
        let top = json!([
            {"token": "COMP", "logprob": p.ln()},
            {"token": "MOD", "logprob": (1.0 - p - 0.02).ln()},
            {"token": "S", "logprob": 0.01f64.ln()},
            {"token": "EN", "logprob": 0.01f64.ln()}
        ]);
        reply["choices"][0]["logprobs"] = json!({"content": [
            {"token": "COMP", "logprob": p.ln(), "top_logprobs": top},
            {"token": "LEX", "logprob": -0.01, "top_logprobs": []}
        ]});
        Reply::Json(reply)
    });
    router.chat(&user("prove it")).await;
    router.chat(&user("hmm, which is it")).await;
    router.sessions(2).await;
    let dir = router.sessions_dir.display().to_string();
    let args = [
        "sessions",
        "--dir",
        dir.as_str(),
        "export",
        "--as-cases",
        "--only",
        "unsure",
    ];
    let (code, out, err) = run(&args).await;
    assert_eq!(code, 0, "{err}");
    let cases: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["messages"][0]["content"], "hmm, which is it");
}

#[tokio::test]
async fn sticky_measures_whether_conversations_that_dont_bounce_help() {
    // The classifier sees the follow-up alone and calls it SIMPLE; the conversation
    // opened with a COMPLEX question, and the set says the follow-up is COMPLEX too.
    let fake = Fake::with(|body| {
        let label = if body.to_string().contains("n = 5") {
            "SIMPLE"
        } else {
            "COMPLEX"
        };
        Reply::Json(completion_json(label))
    })
    .await;
    let work = Work::new(&fake.url);
    let case = json!({"id": "complex-follow-001", "label": "COMPLEX", "group": "followup",
        "messages": [
            {"role": "user", "content": "prove the four colour theorem"},
            {"role": "assistant", "content": "Proof: ..."},
            {"role": "user", "content": "and for n = 5?"}],
        "reason": "a follow-up of a proof", "source": "test"});
    let set = work.path("sticky.jsonl");
    std::fs::write(&set, case.to_string()).unwrap();
    let accuracy = |report: &Value| report["prompts"]["correct"].as_u64().unwrap();
    let (code, out, err) = work.eval(&set, &["--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(accuracy(&serde_json::from_str(&out).unwrap()), 0);
    let (code, out, err) = work.eval(&set, &["--json", "--sticky", "600"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(accuracy(&serde_json::from_str(&out).unwrap()), 1, "{out}");
}
