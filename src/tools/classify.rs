//! `ai-router classify "text"`: shows how the router would route one message (META
//! rules, then the classifier with the prompts as they are now), for admins tuning
//! `prompts/routing/`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::config;
use crate::edge::state::AppState;
use crate::openai::chat::ChatRequest;
use crate::prompts::PromptSet;
use crate::record::session::{Session, SessionSink, SessionStart};
use crate::routing::decision;

/// Classifies `text` as a one-message chat and describes the decision.
pub async fn report(path: &Path, text: &str) -> Result<String, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    let prompts = PromptSet::load(&config.server.prompts_dir).map_err(|e| e.to_string())?;
    let rules = crate::routing::meta::load_rules(&config.meta).map_err(|e| e.to_string())?;
    let state = Arc::new(
        AppState::new(config, prompts, rules, SessionSink::disabled())
            .map_err(|e| e.to_string())?,
    );
    let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
    let request = ChatRequest::parse(body.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let mut session = Session::start(
        SessionStart {
            id: crate::record::session::new_id(),
            client_ip: "127.0.0.1".into(),
            user_agent: None,
        },
        SessionSink::disabled(),
    );
    let prompts = state.prompts.load_full();
    let decision =
        decision::decide(&state, &prompts, &request, &HeaderMap::new(), &mut session).await;
    let label = decision.classification.map_or("-", |l| l.as_str());
    let mut out = String::new();
    // As the router would answer: without an xAI key, COMPLEX and ENRICH change.
    let answered = match crate::proxy::pipeline::effective_route(&state, decision.route) {
        Ok((route, None)) => route.as_str().to_string(),
        Ok((route, Some(note))) => format!("{} ({note})", route.as_str()),
        Err(error) => format!("refused: {error}"),
    };
    let _ = writeln!(out, "decision:    {label} → {answered}");
    let _ = writeln!(
        out,
        "classifier:  {} ({})",
        state.classifier.base_url, state.classifier.model
    );
    let raw = decision
        .classification_raw
        .as_deref()
        .unwrap_or("(not called)");
    let _ = writeln!(out, "raw reply:   {raw:?}");
    let _ = writeln!(out, "time:        {} ms", decision.classification_ms);
    let fallback = decision
        .classification_fallback
        .as_deref()
        .unwrap_or("none");
    let _ = writeln!(out, "fallback:    {fallback}");
    let meta = decision.meta_match.as_deref().unwrap_or("none");
    let _ = writeln!(out, "meta match:  {meta}");
    Ok(out)
}
