//! Recognises a client's own task prompts (titles, tags, follow-ups…), which are
//! answered as META without paying for classification. Best evidence first: a task
//! header, then the configured task model, then the text rules.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::MetaConfig;
use crate::edge::state::AppState;
use crate::openai::chat::ChatRequest;
use crate::routing::meta_rules::{MetaRules, MetaRulesError};

/// The name of the evidence that marks `request` as a task prompt, for `meta_match`;
/// `None` for a normal chat. An empty task header (Open WebUI sends one on normal
/// chats) is not evidence.
pub fn detect(state: &AppState, request: &ChatRequest, headers: &HeaderMap) -> Option<String> {
    let config = &state.config;
    for name in &config.meta.headers {
        if let Some(task) = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return Some(format!("header {}: {task}", name.to_lowercase()));
        }
    }
    let task_model = config.server.task_model.trim();
    if !task_model.is_empty()
        && request.body.get("model").and_then(Value::as_str) == Some(task_model)
    {
        return Some(format!("task model {task_model}"));
    }
    state
        .meta_rules
        .detect(request.messages())
        .map(|rule| format!("rule {rule}"))
}

/// The text rules named by `meta.rules_file`; none when it is empty.
pub fn load_rules(config: &MetaConfig) -> Result<MetaRules, MetaRulesError> {
    if config.rules_file.as_os_str().is_empty() {
        return MetaRules::parse("");
    }
    MetaRules::load(&config.rules_file)
}
