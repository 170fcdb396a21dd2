//! A classifier held to the route table's labels, and how sure it was: the constraint
//! each backend kind understands, log-probabilities turned into the label's
//! probability, and what an unsure decision does.

use serde_json::{Value, json};

use crate::common::fake::{Fake, Reply, completion_json};
use crate::common::{TestRouter, user};
use ai_router::config::Constrain;

/// A classifier reply of `label` whose first token had these alternatives
/// (token, probability).
fn sure_of(
    label: &'static str,
    alternatives: &'static [(&'static str, f64)],
) -> impl Fn(&Value) -> Reply + Send + Sync {
    move |_| {
        let mut reply = completion_json(label);
        let top: Vec<Value> = alternatives
            .iter()
            .map(|(token, p)| json!({"token": token, "logprob": p.ln()}))
            .collect();
        reply["choices"][0]["logprobs"] = json!({"content": [
            {"token": label, "logprob": alternatives[0].1.ln(), "top_logprobs": top}
        ]});
        Reply::Json(reply)
    }
}

#[tokio::test]
async fn each_backend_kind_is_sent_the_constraint_it_understands() {
    let fake = Fake::start().await;
    let choosable = json!(["COMPLEX", "ENRICH", "MODERATE", "SIMPLE"]);
    for (mode, field, value) in [
        (
            Constrain::StructuredOutputs,
            "structured_outputs",
            json!({"choice": choosable}),
        ),
        (Constrain::GuidedChoice, "guided_choice", choosable.clone()),
        (
            Constrain::Grammar,
            "grammar",
            json!("root ::= \"COMPLEX\" | \"ENRICH\" | \"MODERATE\" | \"SIMPLE\""),
        ),
    ] {
        let router = TestRouter::start(&fake.url, |c| {
            c.routing.constrain = mode;
            c.routing.logprobs = true;
        })
        .await;
        router.chat(&user("hi")).await;
        let sent = router.classifier.last_body();
        assert_eq!(sent[field], value, "{mode:?}: {sent}");
        assert_eq!(sent["chat_template_kwargs"]["enable_thinking"], false);
        assert_eq!(
            (sent["logprobs"].clone(), sent["top_logprobs"].clone()),
            (json!(true), json!(20))
        );
        // META is never the classifier's to give.
        assert!(!sent.to_string().contains("\"META\""), "{sent}");
        // The log shows what was sent.
        let session = &router.sessions(1).await[0];
        assert_eq!(session["steps"][0]["params"][field], value);
    }
    // Free generation, as before: nothing added.
    let router = TestRouter::start(&fake.url, |_| {}).await;
    router.chat(&user("hi")).await;
    let sent = router.classifier.last_body();
    for field in [
        "structured_outputs",
        "guided_choice",
        "grammar",
        "logprobs",
        "chat_template_kwargs",
    ] {
        assert!(sent.get(field).is_none(), "{field}: {sent}");
    }
}

#[tokio::test]
async fn the_labels_probability_and_the_runner_up_reach_the_log_and_metrics() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.routing.logprobs = true).await;
    router.classifier.set(sure_of(
        "SIMPLE",
        &[
            ("SIMPLE", 0.6),
            ("MOD", 0.2),
            ("COMP", 0.05),
            ("EN", 0.05),
            ("Hello", 0.1),
        ],
    ));
    router.chat(&user("hi there")).await;
    let session = &router.sessions(1).await[0];
    assert_eq!(
        session["classification_confidence"],
        json!({"p": 0.6667, "runner_up": "MODERATE", "runner_up_p": 0.2222})
    );
    assert!(session["classification_fallback"].is_null());
    let metrics = router.metrics().await;
    assert!(
        metrics.contains("ai_router_classification_confidence_bucket{le=\"0.7\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ai_router_classification_confidence_bucket{le=\"0.6\"} 0"));
}

#[tokio::test]
async fn an_unsure_label_takes_the_fallback_or_the_label_the_admin_named() {
    let fake = Fake::start().await;
    for (unsure_label, expected) in [("", "MODERATE"), ("COMPLEX", "COMPLEX")] {
        let router = TestRouter::start(&fake.url, |c| {
            c.routing.logprobs = true;
            c.routing.min_confidence = 0.8;
            c.routing.unsure_label = unsure_label.into();
        })
        .await;
        router.classifier.set(sure_of(
            "SIMPLE",
            &[("SIMPLE", 0.55), ("COMP", 0.4), ("MOD", 0.03), ("EN", 0.02)],
        ));
        router.chat(&user("is 2^61-1 prime?")).await;
        // A sure one keeps its label.
        router.classifier.set(sure_of(
            "SIMPLE",
            &[
                ("SIMPLE", 0.95),
                ("COMP", 0.03),
                ("MOD", 0.01),
                ("EN", 0.01),
            ],
        ));
        router.chat(&user("hello!")).await;
        let sessions = router.sessions(2).await;
        let unsure = sessions
            .iter()
            .find(|s| s["user_query"] == "is 2^61-1 prime?")
            .unwrap();
        assert_eq!(unsure["classification"], expected, "{unsure}");
        let why = unsure["classification_fallback"].as_str().unwrap();
        assert!(
            why.starts_with("unsure: SIMPLE at 0.55 is below routing.min_confidence 0.8"),
            "{why}"
        );
        assert_eq!(unsure["classification_confidence"]["p"], 0.55);
        let sure = sessions
            .iter()
            .find(|s| s["user_query"] == "hello!")
            .unwrap();
        assert_eq!(sure["classification"], "SIMPLE");
        assert!(sure["classification_fallback"].is_null());
    }
}

#[test]
fn a_threshold_needs_log_probabilities_and_a_real_label() {
    let mut config = ai_router::config::Config::default();
    config.routing.min_confidence = 0.5;
    let error = ai_router::config::validate(&config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("routing.logprobs"), "{error}");
    config.routing.logprobs = true;
    config.routing.unsure_label = "NOPE".into();
    let error = ai_router::config::validate(&config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("routing.unsure_label"), "{error}");
    config.routing.min_confidence = 1.5;
    assert!(ai_router::config::validate(&config).is_err());
}

#[tokio::test]
async fn the_routing_prompts_prefix_is_the_same_for_every_request() {
    // The server's prefix cache reuses what does not change: everything before the
    // conversation must be byte-identical from one request to the next.
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.routing.constrain = Constrain::Grammar).await;
    router.chat(&user("hi")).await;
    router.chat(&user("prove the four colour theorem")).await;
    let sent = router.classifier.bodies("/v1/chat/completions");
    let (a, b) = (&sent[0]["messages"], &sent[1]["messages"]);
    assert_eq!(a[0], b[0], "the system prompt differs");
    let (a, b) = (
        a[1]["content"].as_str().unwrap(),
        b[1]["content"].as_str().unwrap(),
    );
    let shared = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let before_query = a.find("CLASSIFY: hi").unwrap();
    assert!(
        shared >= before_query,
        "the request changes before the conversation"
    );
    // Everything but the conversation is the same too (the constraint, the params).
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["messages"] = Value::Null;
        v
    };
    assert_eq!(strip(&sent[0]), strip(&sent[1]));
}
