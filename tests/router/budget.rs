//! A cloud budget: once a paid backend has spent its UTC day's (or month's) ceiling, its
//! routes are answered locally with the reason in the log, or refused with a 429 when the
//! admin prefers; the spend is rebuilt from the session logs after a restart, counts
//! only the period it belongs to, and shows in `/stats` and `/metrics`.

use serde_json::Value;

use crate::common::fake::{Fake, Reply, completion_json, label_reply};
use crate::common::{ConfigExt, TestRouter, error_of, streaming, user};
use ai_router::config::{BudgetConfig, Config, PassthroughConfig, Price, WhenSpent};

/// xAI's model at a price that makes the fake's usage (12 tokens in, 5 out) cost $1.00.
const DOLLAR_MODEL: &str = "grok-dollar";

fn priced(c: &mut Config, budget: BudgetConfig) {
    c.prices.insert(
        DOLLAR_MODEL.into(),
        Price {
            input_per_million: 50_000.0,
            output_per_million: 80_000.0,
        },
    );
    c.backend("xai").model = DOLLAR_MODEL.into();
    c.budget.insert("xai".into(), budget);
}

fn daily(usd: f64) -> BudgetConfig {
    BudgetConfig {
        daily_usd: usd,
        ..BudgetConfig::default()
    }
}

#[tokio::test]
async fn a_budget_spent_mid_day_falls_back_to_the_local_route_and_says_why() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|c| priced(c, daily(1.5))).await;
    router.classifier.set(label_reply("COMPLEX"));
    // $1 each: the first two start under the ceiling (the second one ends over it).
    let first = router.chat(&user("prove it")).await;
    assert_eq!(first.headers()["x-ai-router-route"], "xai");
    let second = router.chat(&streaming(user("prove it again"), true)).await;
    assert_eq!(second.headers()["x-ai-router-route"], "xai");
    let _ = second.text().await;
    assert_eq!(xai.received().len(), 2);

    let third = router.chat(&user("and once more")).await;
    assert_eq!(third.status(), 200);
    assert_eq!(third.headers()["x-ai-router-route"], "primary");
    assert_eq!(xai.received().len(), 2, "the cloud was not called again");
    assert_eq!(primary.received().len(), 1);
    let sessions = router.sessions(3).await;
    let why = sessions[2]["route_fallback"].as_str().unwrap();
    assert!(
        why.starts_with("xai's daily budget is spent; answered by primary"),
        "{why}"
    );
    assert!(why.contains("$1.50"), "{why}");
    assert!(why.contains("renews at 00:00 UTC"), "{why}");
    assert_eq!(sessions[2]["classification"], "COMPLEX");

    let (_, _, stats) = router.get("/stats").await;
    let day = &stats["cloud_spend"]["backends"]["xai"]["day"];
    assert_eq!(day["spent_usd"], 2.0, "{stats}");
    assert_eq!(day["limit_usd"], 1.5);
    assert_eq!(day["remaining_usd"], 0.0);
    assert_eq!(stats["cloud_spend"]["backends"]["xai"]["state"], "spent");
    // All three answers priced at the cloud model: $3; the cloud got $2 of it.
    assert_eq!(stats["cloud_spend"]["all_cloud_estimate_usd"]["day"], 3.0);
    assert_eq!(stats["cloud_spend"]["saving_usd"]["day"], 1.0);
    let metrics = router.metrics().await;
    for line in [
        "ai_router_cloud_spend_usd{backend=\"xai\",period=\"day\"} 2.0",
        "ai_router_cloud_budget_usd{backend=\"xai\",period=\"day\"} 1.5",
        "ai_router_all_cloud_estimate_usd{period=\"day\"} 3.0",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn a_spent_budget_answers_429_when_the_admin_prefers_and_local_routes_still_answer() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|c| {
        priced(
            c,
            BudgetConfig {
                when_spent: WhenSpent::Error,
                ..daily(0.5)
            },
        );
    })
    .await;
    router.classifier.set(label_reply("COMPLEX"));
    assert_eq!(router.chat(&user("one")).await.status(), 200);
    let refused = router.chat(&user("two")).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    let (status, body) = error_of(refused).await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "budget_exceeded");
    assert_eq!(body["type"], "insufficient_quota");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("daily budget of $0.50 is spent"),
        "{message}"
    );
    assert_eq!(xai.received().len(), 1);

    router.classifier.set(label_reply("MODERATE"));
    let local = router.chat(&user("three")).await;
    assert_eq!(local.status(), 200);
    assert_eq!(primary.received().len(), 1);
}

#[tokio::test]
async fn a_spent_budget_skips_the_search_hop_and_the_local_model_answers() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|c| priced(c, daily(0.5))).await;
    router.classifier.set(label_reply("COMPLEX"));
    assert_eq!(router.chat(&user("spend it")).await.status(), 200);
    router.classifier.set(label_reply("ENRICH"));
    let response = router.chat(&user("what happened today?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(xai.received().len(), 1, "no search hop on a spent budget");
    assert_eq!(primary.received().len(), 1);
    let sessions = router.sessions(2).await;
    let why = sessions[1]["route_fallback"].as_str().unwrap();
    assert!(
        why.starts_with("xai's daily budget is spent; answered without gathered context"),
        "{why}"
    );
}

#[tokio::test]
async fn spend_survives_a_restart_and_an_earlier_days_spend_does_not_count_today() {
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().to_path_buf();
    let xai = Fake::start().await;
    let xai_url = xai.url.clone();
    let setup = |budget: BudgetConfig| {
        let dir = dir.clone();
        let xai_url = xai_url.clone();
        move |c: &mut Config| {
            priced(c, budget);
            c.backend("xai").base_url = xai_url.as_str().into();
            c.sessions.dir = dir;
        }
    };
    let primary = Fake::start().await;
    let first = TestRouter::start(&primary.url, setup(daily(1.5))).await;
    first.classifier.set(label_reply("COMPLEX"));
    for _ in 0..2 {
        assert_eq!(first.chat(&user("spend")).await.status(), 200);
    }
    first.stop().await.unwrap();

    // A new process on the same folder: today's $2 is read back.
    let second = TestRouter::start(&primary.url, setup(daily(1.5))).await;
    second.classifier.set(label_reply("COMPLEX"));
    let response = second.chat(&user("after the restart")).await;
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    assert_eq!(xai.received().len(), 2);
    second.stop().await.unwrap();

    // The same files dated yesterday: the day's ceiling is clear again.
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    let files = crate::common::session_files(&dir);
    for path in &files {
        let mut session: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let stamp = yesterday.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        session["timestamp"] = yesterday
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into();
        let id = session["id"].as_str().unwrap().to_string();
        std::fs::remove_file(path).unwrap();
        std::fs::write(dir.join(format!("{stamp}_{id}.json")), session.to_string()).unwrap();
    }
    let third = TestRouter::start(&primary.url, setup(daily(1.5))).await;
    let (_, _, stats) = third.get("/stats").await;
    assert_eq!(
        stats["cloud_spend"]["backends"]["xai"]["day"]["spent_usd"], 0.0,
        "{stats}"
    );
    third.classifier.set(label_reply("COMPLEX"));
    let response = third.chat(&user("a new day")).await;
    assert_eq!(response.headers()["x-ai-router-route"], "xai");
    third.stop().await.unwrap();

    // …but they still count towards the month, when yesterday was in it.
    let monthly = BudgetConfig {
        monthly_usd: 2.5,
        ..BudgetConfig::default()
    };
    let fourth = TestRouter::start(&primary.url, setup(monthly)).await;
    fourth.classifier.set(label_reply("COMPLEX"));
    let response = fourth.chat(&user("this month")).await;
    let same_month =
        yesterday.format("%Y-%m").to_string() == chrono::Utc::now().format("%Y-%m").to_string();
    // Yesterday's $2 and today's $1 are $3 this month, over $2.50; on the 1st only $1.
    let expected = if same_month { "primary" } else { "xai" };
    assert_eq!(response.headers()["x-ai-router-route"], expected);
    fourth.stop().await.unwrap();
}

#[tokio::test]
async fn an_answer_without_usage_is_estimated_from_characters_and_marked() {
    let (router, _primary, xai) =
        TestRouter::with_primary_and_xai(|c| priced(c, daily(100.0))).await;
    let mut reply = completion_json(&"word ".repeat(40));
    reply.as_object_mut().unwrap().remove("usage");
    xai.set(move |_| Reply::Json(reply.clone()));
    router.classifier.set(label_reply("COMPLEX"));
    assert_eq!(router.chat(&user("how much?")).await.status(), 200);
    let session = &router.sessions(1).await[0];
    let step = crate::common::answer(session);
    let usage = &step["usage"];
    assert_eq!(usage["estimated"], true, "{usage}");
    // Answer and reasoning, four characters a token, rounded up.
    let said = step["response_content"].as_str().unwrap().chars().count()
        + step["reasoning_content"].as_str().unwrap().chars().count();
    assert_eq!(said % 4, 0, "the fake's text: {said} characters");
    assert_eq!(usage["completion_tokens"], said / 4);
    let (_, _, stats) = router.get("/stats").await;
    let day = &stats["cloud_spend"]["backends"]["xai"]["day"];
    assert!(day["spent_usd"].as_f64().unwrap() > 0.0, "{stats}");
    assert_eq!(day["spent_usd"], day["estimated_usd"]);
    assert_eq!(
        stats["last_24h"]["xai"]["output_tokens"],
        said / 4,
        "sessions stats counts the estimate too"
    );
}

#[test]
fn a_budget_needs_a_priced_backend_and_a_ceiling() {
    let mut config = Config::default();
    config.budget.insert("nosuch".into(), daily(1.0));
    let error = ai_router::config::validate(&config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("budget.nosuch"), "{error}");

    let mut config = Config::default();
    config.budget.insert("primary".into(), daily(1.0));
    let error = ai_router::config::validate(&config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs a price"), "{error}");

    let mut config = Config::default();
    config.budget.insert("xai".into(), BudgetConfig::default());
    let error = ai_router::config::validate(&config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("sets no ceiling"), "{error}");

    let mut config = Config::default();
    config.budget.insert("xai".into(), daily(1.0));
    ai_router::config::validate(&config).unwrap();
}

#[tokio::test]
async fn a_passed_through_path_skips_a_backend_whose_budget_is_spent() {
    let (router, primary, xai) = TestRouter::with_primary_and_xai(|c| {
        priced(c, daily(0.5));
        c.passthrough.insert(
            "/v1/completions".into(),
            PassthroughConfig {
                backend: "xai".into(),
                failover: vec!["primary".into()],
            },
        );
    })
    .await;
    let post = || async {
        crate::common::client()
            .post(format!("{}/v1/completions", router.url))
            .json(&serde_json::json!({"model": "x", "prompt": "Once upon"}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(post().await.status(), 200);
    assert_eq!(xai.received().len(), 1, "$1 spent");
    let second = post().await;
    assert_eq!(second.status(), 200);
    assert_eq!(xai.received().len(), 1);
    assert_eq!(primary.received().len(), 1);
    let sessions = router.sessions(2).await;
    let why = sessions[1]["route_fallback"].as_str().unwrap();
    assert!(
        why.starts_with("xai's daily budget is spent; answered by primary"),
        "{why}"
    );
}

#[tokio::test]
async fn replicas_on_one_shared_folder_share_the_budget_within_half_a_minute() {
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().to_path_buf();
    let xai = Fake::start().await;
    let primary = Fake::start().await;
    let replica = |name: &str| {
        let (root, xai_url) = (root.clone(), xai.url.clone());
        let dir = root.join(name);
        move |c: &mut Config| {
            priced(c, daily(1.5));
            c.backend("xai").base_url = xai_url.as_str().into();
            c.sessions.dir = dir;
            c.sessions.shared_dir = root;
        }
    };
    let a = TestRouter::start(&primary.url, replica("router-a")).await;
    let b = TestRouter::start(&primary.url, replica("router-b")).await;
    a.classifier.set(label_reply("COMPLEX"));
    b.classifier.set(label_reply("COMPLEX"));
    for _ in 0..2 {
        assert_eq!(
            a.chat(&user("spend on a")).await.headers()["x-ai-router-route"],
            "xai"
        );
    }
    a.flush().await;
    let spent = |stats: &Value| stats["cloud_spend"]["backends"]["xai"]["day"]["spent_usd"].clone();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let (_, _, stats) = b.get("/stats").await;
        if spent(&stats) == 2.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never saw a's spend: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let response = b.chat(&user("spend on b")).await;
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    // A has read the shared folder too by now: its own files are not counted twice.
    let (_, _, stats) = a.get("/stats").await;
    assert_eq!(spent(&stats), 2.0, "{stats}");
    assert_eq!(xai.received().len(), 2);
}
