//! Fuzzes what ai-router does with an untrusted `POST /v1/chat/completions` body before
//! any backend is called: the steps of `edge::chat`, `Routing::decide` and `Proxy::run`,
//! minus the network. It looks for panics, overflows, hangs and huge allocations; it
//! asserts only what the code's own doc comments promise.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use ai_router::config::{self, MaxTokens};
use ai_router::names::{Label, Step};
use ai_router::openai::ChatRequest;
use ai_router::proxy::shape;
use ai_router::record::decision::Decision;
use ai_router::record::log::{Outcome, StepRecord};
use ai_router::record::session::{Session, SessionStart};
use ai_router::record::sink::SessionSink;
use ai_router::routing::answering;
use ai_router::routing::cache::ClassifyCache;
use ai_router::routing::classify::{cut_middle, request_body};
use ai_router::routing::decide::fallback_label;
use ai_router::routing::table::META_LABEL;
use ai_router::tools::Setup;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// What the router builds once at start-up: the shipped config, prompts, route table and
/// META rules, so every input meets the rules a real deployment runs.
struct Router {
    setup: Setup,
    /// Open WebUI sends an empty task header on normal chats; it must not count.
    headers: http::HeaderMap,
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        // Absolute paths: cargo-fuzz's working directory is not the repository root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut config = config::load(&root.join("config/router.toml")).expect("config");
        config.server.prompts_dir = root.join("prompts");
        config.meta.rules_file = root.join("config/meta_rules.toml");
        let setup = Setup::from(config).expect("prompts, backends, routing");
        let mut headers = http::HeaderMap::new();
        headers.insert("x-openwebui-task", http::HeaderValue::from_static(""));
        Router { setup, headers }
    })
}

/// `shape::with_one_system_message` promises one leading system message at most.
fn assert_one_leading_system(body: &Map<String, Value>) {
    let messages = body["messages"]
        .as_array()
        .expect("shaped bodies carry messages");
    let system_at: Vec<usize> = (0..messages.len())
        .filter(|&i| matches!(messages[i]["role"].as_str(), Some("system" | "developer")))
        .collect();
    assert!(
        system_at.is_empty() || system_at == [0],
        "system messages at {system_at:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let r = router();
    let (setup, prompts) = (&r.setup, &r.setup.prompts);
    let routing = &setup.routing;
    let table = &routing.table;

    // A classifier's reply is untrusted text too; any bytes will do as one.
    let _ = table.parse_label(&String::from_utf8_lossy(data));

    // Records go nowhere: writing files would make each run slow and flaky.
    let mut session = Session::start(
        SessionStart {
            id: "fuzz0000".into(),
            client_ip: "127.0.0.1".into(),
            user_agent: None,
            backends_down: Vec::new(),
        },
        SessionSink::disabled(),
    );
    let request = match ChatRequest::parse(data) {
        Ok(request) => request,
        Err(error) => {
            // The rejection path: the status, the log line and the client's JSON error.
            let status = error.status().as_u16();
            let _ = serde_json::to_vec(&error.envelope());
            session.finish(Outcome::Error, status, Some(error.to_string()));
            return;
        }
    };
    // `ChatRequest::messages` is documented as validated to be non-empty.
    assert!(!request.messages().is_empty());
    let last_user = request.last_user_text();
    session.set_request(request.messages(), &last_user, request.stream);

    // Routing::decide without the classifier call: META detection, the classifier's
    // request and cache key, then a label from the reply (the user's own text stands in
    // for a model that echoes it) or the keyword fallback.
    let decision = match routing.meta.examine(&request, &r.headers).evidence {
        Some(rule) => Decision {
            meta_match: Some(rule),
            ..routing.labelled(Label::from(META_LABEL))
        },
        None => {
            let body = request_body(
                prompts,
                routing.limits,
                &routing.classifier_params,
                &routing.classifier.model,
                request.messages(),
            );
            let _ = ClassifyCache::key(&body);
            let query = cut_middle(&last_user, routing.limits.max_input_chars, |_| String::new());
            let label = table.parse_label(&last_user).unwrap_or_else(|| {
                fallback_label(&routing.fallback_rules, &table.fallback, &query)
                    .0
                    .clone()
            });
            routing.labelled(label)
        }
    };
    let label = decision.classification.clone().expect("a decision has a label");
    let gate = answering::Gate {
        backends: &setup.backends,
        missing_key: setup.config.routing.missing_key,
        budgets: &ai_router::record::budget::Budgets::default(),
    };
    let _ = answering::resolve(table, &gate, &label);

    // Proxy::run shapes one body for the route that answers; every route's is built so
    // that every input reaches every shaping rule, whatever its label. A fixed date
    // keeps runs repeatable.
    let date = [("date", "2026-11-21")];
    for route in table.iter() {
        let model = setup
            .backends
            .get(&route.backend)
            .map_or("", |b| b.model.as_str());
        let body: Map<String, Value> =
            shape::for_route(&request, route, model, &prompts.render(&route.prompt, &date));
        assert_one_leading_system(&body);
        if route.max_tokens == MaxTokens::Floor {
            // for_route promises `max_tokens` of at least the route's floor.
            assert!(body["max_tokens"].as_u64() >= Some(u64::from(route.min_max_tokens)));
        }
        let _ = serde_json::to_vec(&body); // what `upstream::call` sends
        // With its conversation, as a session log keeps it (this sink writes none).
        session.push_step(StepRecord::sending(
            Step::Answer,
            &route.backend,
            model,
            &body,
            "messages",
            true,
        ));
    }

    // The session record as the writer serialises it (its data-URL summary is private).
    if let Some(record) = session.record() {
        // `user_query` is documented as cut to 500 characters.
        assert!(record.user_query.chars().count() <= 500);
        record.decision = decision;
        let _ = serde_json::to_string_pretty(record);
    }
    session.finish(Outcome::Ok, 200, None);
});
