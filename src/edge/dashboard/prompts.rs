//! `GET /dashboard/api/prompts`: the prompt files in use — each one's text, where it came
//! from (its file, or the built-in copy), when it was read in, when its file last
//! changed, and why the last reload could not use the file, if it could not.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::redacted_json;
use crate::edge::state::AppState;
use crate::prompts::PromptSource;

/// The handler.
pub(super) async fn list(State(state): State<Arc<AppState>>) -> Response {
    let prompts = state.prompts.load_full();
    let rows: Vec<Value> = prompts
        .all()
        .iter()
        .map(|prompt| {
            let (source, modified) = match &prompt.source {
                PromptSource::File(path) => (path.display().to_string(), modified(path)),
                PromptSource::Fallback => ("built-in copy (the file is missing)".into(), None),
            };
            json!({
                "name": prompt.name,
                "source": source,
                "fallback": prompt.source == PromptSource::Fallback,
                "file_modified": modified,
                "loaded_at": prompt.loaded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "reload_error": prompt.reload_error,
                "text": prompt.text,
            })
        })
        .collect();
    redacted_json(
        &state,
        json!({"dir": state.config.server.prompts_dir, "prompts": rows}),
    )
}

/// When the file at `path` last changed, in UTC.
fn modified(path: &std::path::Path) -> Option<String> {
    let time = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let time: chrono::DateTime<chrono::Utc> = time.into();
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
