//! A route's search hop (ENRICH's): a backend's Responses API with its server-side
//! search tools gathers current context for the question; `injection` renders it into
//! the answering route's system prompt.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::names::Step;
use crate::openai::content_text;
use crate::prompts::{PromptSet, today};
use crate::record::session::{Session, millis};
use crate::routing::InputLimits;
use crate::routing::classify::cut_middle;
use crate::routing::table::SearchHop;
use crate::upstream::{Backend, call_json_within};

/// What the search hop found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gathered {
    /// The text the model wrote from its searches.
    pub text: String,
    /// The URLs it cited, in order, without repeats.
    pub sources: Vec<String>,
}

/// Runs `hop` through `backend` for `messages` and records it in `session` as an
/// `enrich` step, within the hop's timeout.
pub async fn gather(
    backend: &Backend,
    hop: &SearchHop,
    limits: InputLimits,
    prompts: &PromptSet,
    messages: &[Value],
    session: &mut Session,
) -> Result<Gathered, Error> {
    let body = request_body(backend, hop, limits, prompts, messages);
    // Recorded before the call, so a client that leaves mid-search still shows it.
    let step = session.push_sending(Step::Search, &backend.id, &backend.model, &body, "input");
    let started = Instant::now();
    let result = call_json_within(
        backend,
        "/responses",
        &body,
        hop.timeout,
        hop.timeout,
        session,
        step,
    )
    .await;
    let Some(record) = session.step(step) else {
        return result.map(|reply| extract(&reply));
    };
    record.duration_ms = millis(started.elapsed());
    match result {
        Ok(reply) => {
            let gathered = extract(&reply);
            record.usage = reply.get("usage").cloned();
            record.response_content.clone_from(&gathered.text);
            record.finish_reason = Some("completed".into());
            Ok(gathered)
        }
        Err(error) => {
            record.set_failed_status(&error);
            record.error = Some(error.to_string());
            Err(error)
        }
    }
}

/// The Responses API request: the hop's instructions, the recent conversation as
/// input, and its search tools.
fn request_body(
    backend: &Backend,
    hop: &SearchHop,
    limits: InputLimits,
    prompts: &PromptSet,
    messages: &[Value],
) -> Map<String, Value> {
    let instructions = prompts.render(&hop.prompt, &[("date", &today())]);
    // The question plus short context, bounded like the classifier's input: a RAG
    // attachment of 200 KB is not worth a search model's tokens.
    let turns: Vec<(String, String)> = messages
        .iter()
        .filter_map(|m| match m.get("role").and_then(Value::as_str) {
            Some(role @ ("user" | "assistant")) => {
                Some((role.to_string(), content_text(m.get("content"))))
            }
            _ => None,
        })
        .collect();
    let recent = &turns[turns.len().saturating_sub(limits.context_messages + 1)..];
    let mut context_budget = limits.context_chars;
    let mut input = Vec::with_capacity(recent.len());
    for (i, (role, text)) in recent.iter().enumerate().rev() {
        let text = if i + 1 == recent.len() {
            cut_middle(text, limits.max_input_chars, |_| "…".to_string())
        } else {
            let kept = cut_middle(text, context_budget.max(1), |_| "…".to_string());
            context_budget = context_budget.saturating_sub(kept.chars().count());
            kept
        };
        input.push(json!({"role": role, "content": text}));
    }
    input.reverse();
    let tools: Vec<Value> = hop.tools.iter().map(|tool| json!({"type": tool})).collect();
    let mut body = Map::new();
    body.insert("model".into(), Value::from(backend.model.as_str()));
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

/// The answering model's system prompt after a search: `system` (its route's prompt),
/// then the hop's injection filled with what was gathered.
pub fn injection(
    prompts: &PromptSet,
    hop: &SearchHop,
    system: &str,
    gathered: &Gathered,
) -> String {
    let sources: Vec<String> = gathered.sources.iter().map(|u| format!("- {u}")).collect();
    let injection = prompts.render(
        &hop.injection,
        &[
            ("context", gathered.text.as_str()),
            ("sources", &sources.join("\n")),
            ("date", &today()),
        ],
    );
    [system, injection.trim()]
        .iter()
        .filter(|t| !t.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n")
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
