//! Fuzzes what ai-router does with an untrusted `POST /v1/chat/completions` body before
//! any backend is called: the steps of `http::chat_completions`, `route::decide` and
//! `pipeline::run`, minus the network. It looks for panics, overflows, hangs and huge
//! allocations; it asserts only what the code's own doc comments promise.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ai_router::routing::classify::{cut_middle, parse_label, request_body};
use ai_router::routing::cache::ClassifyCache;
use ai_router::routing::meta_rules::MetaRules;
use ai_router::openai::chat::ChatRequest;
use ai_router::prompts::{PromptId, PromptSet};
use ai_router::routing::decision::{Decision, Label, fallback_label};
use ai_router::record::session::{Outcome, Session, SessionSink, SessionStart};
use ai_router::{AppState, config, routing::meta, proxy::pipeline, proxy::shape};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// What the router builds once at start-up: the shipped config, prompts and META rules,
/// so every input meets the rules a real deployment runs.
struct Router {
    state: AppState,
    prompts: Arc<PromptSet>,
    /// Open WebUI sends an empty task header on normal chats; it must not count.
    headers: http::HeaderMap,
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        // Absolute paths: cargo-fuzz's working directory is not the repository root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let config = config::load(&root.join("config/router.toml")).expect("config");
        let prompts = PromptSet::load(&root.join("prompts")).expect("prompts");
        let rules = MetaRules::load(&root.join("config/meta_rules.toml")).expect("META rules");
        // Records go nowhere: writing files would make each run slow and flaky.
        let state = AppState::new(config, prompts, rules, SessionSink::disabled()).expect("state");
        let mut headers = http::HeaderMap::new();
        headers.insert("x-openwebui-task", http::HeaderValue::from_static(""));
        let prompts = state.prompts.load_full();
        Router {
            state,
            prompts,
            headers,
        }
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
    let (state, prompts) = (&r.state, &*r.prompts);
    let routing = &state.config.routing;

    // A classifier's reply is untrusted text too; any bytes will do as one.
    let _ = parse_label(&String::from_utf8_lossy(data));

    let mut session = Session::start(
        SessionStart {
            id: "fuzz0000".into(),
            client_ip: "127.0.0.1".into(),
            user_agent: None,
        },
        state.sessions.clone(),
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

    // route::decide without the classifier call: META detection, the classifier's
    // request and cache key, then a label from the reply (the user's own text stands in
    // for a model that echoes it) or the keyword fallback.
    let decision = match meta::detect(state, &request, &r.headers) {
        Some(rule) => Decision {
            meta_match: Some(rule),
            ..Decision::labelled(Label::Meta)
        },
        None => {
            let body = request_body(
                prompts,
                routing,
                &state.classifier.model,
                request.messages(),
            );
            let _ = ClassifyCache::key(&body);
            let query = cut_middle(&last_user, routing.max_input_chars, |_| String::new());
            let label =
                parse_label(&last_user).unwrap_or_else(|| fallback_label(routing, &query).0);
            Decision::labelled(label)
        }
    };
    let route = pipeline::effective_route(state, decision.route).map_or(decision.route, |(r, _)| r);

    // pipeline::run shapes one body per backend; all three are built so that every
    // input reaches every shaper, whatever its label. A fixed date keeps runs repeatable.
    let date = [("date", "2026-11-21")];
    let local = shape::for_local(
        &request,
        &state.primary.model,
        &prompts.render(PromptId::PrimarySystem, &date),
    );
    let mut meta_body = shape::for_local(
        &request,
        &state.primary.model,
        &prompts.render(PromptId::MetaSystem, &date),
    );
    shape::disable_thinking(&mut meta_body);
    let xai = shape::for_xai(
        &request,
        &state.xai.model,
        &prompts.render(PromptId::XaiSystem, &date),
        &state.config.xai,
    );
    // for_xai promises `max_tokens` of at least `xai.min_max_tokens`.
    assert!(xai["max_tokens"].as_u64() >= Some(u64::from(state.config.xai.min_max_tokens)));
    for (upstream, body) in [
        (&state.primary, &local),
        (&state.primary, &meta_body),
        (&state.xai, &xai),
    ] {
        assert_one_leading_system(body);
        let _ = serde_json::to_vec(body); // what `Upstream::post` sends
        session.push_step(upstream.step_record("answer", "/chat/completions", body, "messages"));
    }

    // The session record as the writer serialises it (its data-URL summary is private).
    if let Some(record) = session.record() {
        // `user_query` is documented as cut to 500 characters.
        assert!(record.user_query.chars().count() <= 500);
        record.route = Some(route.as_str());
        record.meta_match = decision.meta_match;
        let _ = serde_json::to_string_pretty(record);
    }
    session.finish(Outcome::Ok, 200, None);
});
