//! The shipped `config/router.toml`, pinned: for every route (and the fallbacks, the
//! failovers and a missing xAI key) what each fake backend received — path, headers and
//! body — what the client got, and the whole session log (decision, conversation, each
//! step's messages, parameters, answer, reasoning, usage and finish reason). The expected record is
//! `tests/fixtures/shipped_routes.json`, written from the router before its routes became
//! data; any change to what a backend receives under the shipped config fails here.
//! `UPDATE_GOLDEN=1 cargo test --test router shipped_routes` rewrites it after a deliberate change.

use std::path::Path;

use crate::common;
use crate::common::ConfigExt;
use crate::common::fake::{Fake, Received, Reply, completion_json, label_reply, xai_reply};
use crate::common::{TestRouter, streaming};
use serde_json::{Map, Value, json};

/// The fixture, relative to the crate.
const GOLDEN: &str = "tests/fixtures/shipped_routes.json";

/// A conversation that exercises every shaping rule: a client system and developer
/// message, length caps, parameters Grok rejects, and ones that must pass through.
fn rich(text: &str) -> Value {
    json!({
        "model": "ai-router",
        "messages": [
            {"role": "system", "content": "Client rules."},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "developer", "content": [{"type": "text", "text": "More rules."}]},
            {"role": "user", "content": text}
        ],
        "max_tokens": 100,
        "max_completion_tokens": 200,
        "temperature": 0.3,
        "top_p": 0.9,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "stop": ["END"],
        "reasoning_effort": "high",
        "seed": 7,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    })
}

/// The backends of one scenario: the router on the shipped config, its primary and xAI.
struct Stage {
    router: TestRouter,
    primary: Fake,
    xai: Fake,
}

/// A router on the shipped config whose classifier answers `label`; xAI has a key
/// unless `xai_key` is false.
async fn staged(label: &'static str, xai_key: bool) -> Stage {
    let primary = Fake::start().await;
    let xai = Fake::with(xai_reply).await;
    let (primary_url, xai_url) = (primary.url.clone(), xai.url.clone());
    let router = TestRouter::shipped(|c| {
        c.backend("primary").base_url = primary_url.as_str().into();
        c.backend("xai").base_url = xai_url.as_str().into();
        // PATH is certainly set: it stands in for XAI_API_KEY. An unset name stands
        // for an admin who has no xAI key.
        c.backend("xai").api_key_env = if xai_key {
            "PATH".into()
        } else {
            "AI_ROUTER_TEST_NO_XAI_KEY".into()
        };
    })
    .await;
    router.classifier.set(label_reply(label));
    Stage {
        router,
        primary,
        xai,
    }
}

/// One request through a stage, and everything it caused, as a JSON record.
async fn exchange(
    stage: &Stage,
    body: &Value,
    task: Option<&str>,
    sessions_so_far: usize,
) -> Value {
    let before = [
        stage.router.classifier.received().len(),
        stage.xai.received().len(),
        stage.primary.received().len(),
    ];
    let response = match task {
        Some(task) => stage.router.task_chat(task, body).await,
        None => stage.router.chat(body).await,
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map_or(Value::Null, |v| Value::from(v.to_str().unwrap()))
    };
    let (route, failover) = (header("x-ai-router-route"), header("x-ai-router-failover"));
    let sse = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let answer = if sse {
        let data = common::read_sse(response).await;
        Value::from(data)
    } else {
        let text = response.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::from(text))
    };
    let session = stage
        .router
        .sessions(sessions_so_far + 1)
        .await
        .pop()
        .unwrap();
    let calls = |fake: &Fake, skip: usize| -> Vec<Value> {
        fake.received()[skip..].iter().map(call).collect()
    };
    json!({
        "status": status,
        "route_header": route,
        "failover_header": failover,
        "answer": answer,
        "classifier": calls(&stage.router.classifier, before[0]),
        "xai": calls(&stage.xai, before[1]),
        "primary": calls(&stage.primary, before[2]),
        "session": stable_log(&session),
    })
}

/// A received request without what differs from run to run (ids, ports, the key).
fn call(received: &Received) -> Value {
    let mut headers = Map::new();
    for (name, value) in &received.headers {
        let value = match name.as_str() {
            "host" | "content-length" => continue,
            "authorization" => "Bearer <key>".to_string(),
            "x-request-id" => "<id>".to_string(),
            _ => value.to_str().unwrap().to_string(),
        };
        headers.insert(name.to_string(), Value::from(value));
    }
    json!({"path": received.path, "headers": headers, "body": received.body})
}

/// The whole session log, less what differs from run to run: the id, the time, the
/// durations (`*_ms`) (a time to first token is kept as whether there was one) and the fake
/// backends' ports. Everything a review reads is compared, so that making a hot path
/// cheaper cannot quietly drop what the log records.
fn stable_log(session: &Value) -> Value {
    let mut session = session.clone();
    let fields = session.as_object_mut().unwrap();
    for volatile in ["id", "timestamp", "total_ms"] {
        assert!(
            fields.remove(volatile).is_some(),
            "no {volatile} in the log"
        );
    }
    // The classifier's time, and any other duration added later.
    fields.retain(|name, _| !name.ends_with("_ms"));
    for step in fields["steps"].as_array_mut().unwrap() {
        let step = step.as_object_mut().unwrap();
        step.remove("duration_ms");
        let ttft = step.remove("ttft_ms").unwrap_or(Value::Null);
        step.insert("ttft_ms".into(), Value::from(!ttft.is_null()));
        step.insert("url".into(), without_origin(&step["url"]));
        for failed in step
            .get_mut("failed_attempts")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            failed["duration_ms"] = Value::Null;
            failed["url"] = without_origin(&failed["url"]);
        }
    }
    session
}

/// A fake backend's URL without its port: `http://127.0.0.1:<port>/v1/chat/completions`.
fn without_origin(url: &Value) -> Value {
    let url = url.as_str().unwrap_or_default();
    let path = url.split_once("//").map_or(url, |(_, rest)| {
        rest.find('/').map_or("", |slash| &rest[slash..])
    });
    Value::from(format!("<fake>{path}"))
}

/// Every scenario, in order; each is one or more requests on a fresh router.
async fn record() -> Value {
    let mut out = Map::new();
    for label in ["SIMPLE", "MODERATE", "COMPLEX", "ENRICH"] {
        let stage = staged(label, true).await;
        let mut runs = Vec::new();
        for (i, stream) in [false, true].into_iter().enumerate() {
            let mut body = streaming(rich("what is the weather in Oslo?"), stream);
            if stream {
                body["stream_options"] = json!({"include_usage": true});
            }
            runs.push(exchange(&stage, &body, None, i).await);
        }
        out.insert(label.to_lowercase(), Value::from(runs));
    }

    // META: Open WebUI's task header, and the task template text without it; neither
    // asks the classifier.
    let stage = staged("COMPLEX", true).await;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openwebui/task-title_generation-0.11.0.json");
    let title: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let runs = vec![
        exchange(&stage, &title, Some("title_generation"), 0).await,
        exchange(&stage, &streaming(title.clone(), true), None, 1).await,
    ];
    out.insert("meta".into(), Value::from(runs));

    // The classifier's word is not enough for META, and a reply without a label falls
    // back: to a keyword rule's label, or to the default.
    let stage = staged("META", true).await;
    let mut runs = vec![exchange(&stage, &rich("a catchy title please"), None, 0).await];
    stage
        .router
        .classifier
        .set(|_| Reply::Json(completion_json("I cannot decide")));
    runs.push(exchange(&stage, &rich("latest news on Mars?"), None, 1).await);
    runs.push(exchange(&stage, &rich("explain monads"), None, 2).await);
    stage
        .router
        .classifier
        .set(|_| Reply::Status(500, r#"{"error":{"message":"down"}}"#.into()));
    runs.push(exchange(&stage, &rich("explain functors"), None, 3).await);
    out.insert("fallbacks".into(), Value::from(runs));

    // Failover: xAI failing on COMPLEX is answered by the primary (shipped: on); the
    // primary failing is not answered by xAI (shipped: off, it costs money).
    let stage = staged("COMPLEX", true).await;
    stage
        .xai
        .set(|_| Reply::Status(500, r#"{"code":"internal","error":"grok is down"}"#.into()));
    let runs = vec![
        exchange(&stage, &rich("prove it"), None, 0).await,
        exchange(&stage, &streaming(rich("prove it"), true), None, 1).await,
    ];
    out.insert("failover_xai".into(), Value::from(runs));
    let stage = staged("MODERATE", true).await;
    stage
        .primary
        .set(|_| Reply::Status(503, r#"{"error":{"message":"loading"}}"#.into()));
    let runs = vec![
        exchange(&stage, &rich("explain it"), None, 0).await,
        exchange(&stage, &streaming(rich("explain it"), true), None, 1).await,
    ];
    out.insert("failover_primary".into(), Value::from(runs));

    // ENRICH whose search fails is answered without gathered context.
    let stage = staged("ENRICH", true).await;
    stage.xai.set(|_| {
        Reply::Status(
            500,
            r#"{"code":"internal","error":"search is down"}"#.into(),
        )
    });
    let runs = vec![exchange(&stage, &rich("news today?"), None, 0).await];
    out.insert("enrich_search_fails".into(), Value::from(runs));

    // No xAI key: COMPLEX is answered by the primary, ENRICH without its search hop.
    let mut runs = Vec::new();
    for label in ["COMPLEX", "ENRICH"] {
        let stage = staged(label, false).await;
        runs.push(exchange(&stage, &rich("hard and current"), None, 0).await);
    }
    out.insert("no_xai_key".into(), Value::from(runs));
    Value::Object(out)
}

/// The record as text, with today's date (prompts carry `{{date}}`) made stable.
fn render(record: &Value) -> String {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    serde_json::to_string_pretty(record)
        .unwrap()
        .replace(&today, "<today>")
        + "\n"
}

#[tokio::test]
async fn the_shipped_config_sends_every_backend_what_it_always_did() {
    let actual = render(&record().await);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e} (UPDATE_GOLDEN=1 writes it)"));
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(actual.lines().count().min(expected.lines().count()));
        let context = |text: &str| -> String {
            text.lines()
                .skip(first.saturating_sub(12))
                .take(24)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "what the backends received changed at line {}:\n--- expected\n{}\n--- actual\n{}",
            first + 1,
            context(&expected),
            context(&actual)
        );
    }
}
