//! ENRICH's first hop: xAI's Responses API with its server-side search tools gathers
//! current context for the question; `injection` renders it for the primary, which
//! writes the answer in the second hop.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::edge::state::AppState;
use crate::error::Error;
use crate::openai::chat::content_text;
use crate::prompts::{PromptId, PromptSet};
use crate::record::session::{Session, millis};
use crate::upstream::backend::Expect;

/// What the search hop found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gathered {
    /// The text Grok wrote from its searches.
    pub text: String,
    /// The URLs it cited, in order, without repeats.
    pub sources: Vec<String>,
}

/// Runs the search hop for `messages` and records it in `session` as an `enrich` step.
pub async fn gather(
    state: &AppState,
    prompts: &PromptSet,
    messages: &[Value],
    session: &mut Session,
) -> Result<Gathered, Error> {
    let xai = &state.xai;
    let body = request_body(state, prompts, messages);
    let mut step = xai.step_record("enrich", "/responses", &body, "input");
    // Recorded before the call, so a client that leaves mid-search still shows it.
    let index = session.push_step(step.clone());
    let started = Instant::now();
    let wait = Duration::from_secs(state.config.xai.enrich_timeout_secs);
    let id = session.id().to_string();
    let call = async {
        let response = xai.post("/responses", &body, &id, Expect::Json).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::UpstreamProtocol {
                backend: xai.name,
                reason: e.without_url().to_string(),
            })?;
        serde_json::from_slice::<Value>(&bytes).map_err(|_| Error::UpstreamProtocol {
            backend: xai.name,
            reason: "the answer is not JSON".into(),
        })
    };
    let result = match tokio::time::timeout(wait, call).await {
        Err(_) => Err(xai.timed_out(wait)),
        Ok(result) => result,
    };
    step.duration_ms = millis(started.elapsed());
    let result = result.map(|reply| {
        step.status = Some(200);
        step.usage = reply.get("usage").cloned();
        extract(&reply)
    });
    match &result {
        Ok(gathered) => {
            step.response_content.clone_from(&gathered.text);
            step.finish_reason = Some("completed".into());
        }
        Err(error) => {
            step.set_failed_status(error);
            step.error = Some(error.to_string());
        }
    }
    if let Some(slot) = session.step(index) {
        *slot = step;
    }
    result
}

/// The Responses API request: `enrichment/system.md` as instructions, the recent
/// conversation as input, and the configured search tools.
fn request_body(state: &AppState, prompts: &PromptSet, messages: &[Value]) -> Map<String, Value> {
    let instructions = prompts.render(PromptId::EnrichmentSystem, &[("date", &today())]);
    // The question plus short context, bounded like the classifier's input: a RAG
    // attachment of 200 KB is not worth a search model's tokens.
    let routing = &state.config.routing;
    let turns: Vec<(String, String)> = messages
        .iter()
        .filter_map(|m| match m.get("role").and_then(Value::as_str) {
            Some(role @ ("user" | "assistant")) => {
                Some((role.to_string(), content_text(m.get("content"))))
            }
            _ => None,
        })
        .collect();
    let recent = &turns[turns.len().saturating_sub(routing.context_messages + 1)..];
    let mut context_budget = routing.context_chars;
    let mut input = Vec::with_capacity(recent.len());
    for (i, (role, text)) in recent.iter().enumerate().rev() {
        let text = if i + 1 == recent.len() {
            crate::routing::classify::cut_middle(text, routing.max_input_chars, |_| "…".to_string())
        } else {
            let kept = crate::routing::classify::cut_middle(text, context_budget.max(1), |_| {
                "…".to_string()
            });
            context_budget = context_budget.saturating_sub(kept.chars().count());
            kept
        };
        input.push(json!({"role": role, "content": text}));
    }
    input.reverse();
    let tools: Vec<Value> = state
        .config
        .xai
        .search_tools
        .iter()
        .map(|tool| json!({"type": tool}))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), Value::from(state.xai.model.as_str()));
    body.insert("instructions".into(), Value::from(instructions));
    body.insert("input".into(), Value::Array(input));
    body.insert("tools".into(), Value::Array(tools));
    // xAI keeps Responses requests for 30 days unless told not to: users' chats stay here.
    body.insert("store".into(), Value::Bool(false));
    body
}

/// The text of every `output_text` part of every `message` item, and the URLs of their
/// `url_citation` annotations (plus a top-level `citations` list, if any).
pub fn extract(reply: &Value) -> Gathered {
    let mut gathered = Gathered::default();
    let mut cite = |url: &str| {
        if !url.is_empty() && !gathered.sources.iter().any(|u| u == url) {
            gathered.sources.push(url.to_string());
        }
    };
    let mut texts = Vec::new();
    let items = reply
        .get("output")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for item in items.iter().filter(|i| i["type"] == "message") {
        let parts = item
            .get("content")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for part in parts.iter().filter(|p| p["type"] == "output_text") {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                texts.push(text.trim().to_string());
            }
            let notes = part
                .get("annotations")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for note in notes.iter().filter(|n| n["type"] == "url_citation") {
                cite(note.get("url").and_then(Value::as_str).unwrap_or(""));
            }
        }
    }
    for url in reply
        .get("citations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        cite(url.as_str().unwrap_or(""));
    }
    gathered.text = texts.join("\n\n");
    gathered
}

/// The primary's system prompt for the second hop: `primary/system.md`, then
/// `enrichment/injection.md` filled with what was gathered.
pub fn injection(prompts: &PromptSet, gathered: &Gathered) -> String {
    let sources: Vec<String> = gathered.sources.iter().map(|u| format!("- {u}")).collect();
    let injection = prompts.render(
        PromptId::EnrichmentInjection,
        &[
            ("context", gathered.text.as_str()),
            ("sources", &sources.join("\n")),
            ("date", &today()),
        ],
    );
    let primary = prompts.render(PromptId::PrimarySystem, &[("date", &today())]);
    [primary.as_str(), injection.trim()]
        .iter()
        .filter(|t| !t.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Today's UTC date, for `{{date}}`.
pub fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_text_and_citations_from_a_responses_reply() {
        let reply = json!({
            "output": [
                {"type": "web_search_call", "status": "completed"},
                {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "Oslo: 4 °C, rain (met.no, 2026-11-21).",
                     "annotations": [
                        {"type": "url_citation", "url": "https://met.no/a", "title": "Met"},
                        {"type": "url_citation", "url": "https://met.no/a"},
                        {"type": "url_citation", "url": "https://yr.no/b"}
                     ]}
                ]}
            ],
            "citations": ["https://yr.no/b", "https://x.com/c"]
        });
        let gathered = extract(&reply);
        assert_eq!(gathered.text, "Oslo: 4 °C, rain (met.no, 2026-11-21).");
        assert_eq!(
            gathered.sources,
            ["https://met.no/a", "https://yr.no/b", "https://x.com/c"]
        );
        assert_eq!(extract(&json!({"output": []})), Gathered::default());
    }
}
