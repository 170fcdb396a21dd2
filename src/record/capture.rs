//! Reads what the session log keeps from an answer (content, reasoning, finish reason,
//! usage), from a whole JSON completion or from one stream chunk at a time.

use serde_json::Value;

use super::log::StepRecord;

/// Reasoning arrives under one of these names depending on the server and version.
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "reasoning", "thinking"];

/// Fills `step` from a non-streamed `chat.completion`.
pub fn completion(step: &mut StepRecord, body: &Value) {
    if let Some(choice) = body.pointer("/choices/0") {
        let message = choice.get("message");
        step.response_content = text_field(message, &["content"]);
        step.reasoning_content = text_field(message, &REASONING_FIELDS);
        step.finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(String::from);
    }
    usage(step, body);
}

/// Adds one `chat.completion.chunk` to `step`; returns whether it carried any token
/// (text, reasoning or a tool call), which marks the time to first token.
pub fn chunk(step: &mut StepRecord, body: &Value) -> bool {
    let mut carried = false;
    if let Some(choice) = body.pointer("/choices/0") {
        let delta = choice.get("delta");
        let content = text_field(delta, &["content"]);
        let reasoning = text_field(delta, &REASONING_FIELDS);
        carried = !content.is_empty()
            || !reasoning.is_empty()
            || delta.and_then(|d| d.get("tool_calls")).is_some();
        step.response_content.push_str(&content);
        step.reasoning_content.push_str(&reasoning);
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            step.finish_reason = Some(reason.to_string());
        }
    }
    usage(step, body);
    carried
}

/// Whether a chunk is the usage-only chunk (`choices: []`) that a client gets only when
/// it asked with `stream_options.include_usage`.
pub fn is_usage_only(body: &Value) -> bool {
    body.get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && body.get("usage").is_some_and(Value::is_object)
}

fn usage(step: &mut StepRecord, body: &Value) {
    if let Some(usage) = body.get("usage").filter(|u| u.is_object()) {
        step.usage = Some(usage.clone());
    }
}

/// The first of `fields` that holds text (vLLM 0.12 sends reasoning under two names).
fn text_field(object: Option<&Value>, fields: &[&str]) -> String {
    object
        .and_then(|o| {
            fields
                .iter()
                .find_map(|f| o.get(*f).and_then(Value::as_str))
        })
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_completion() {
        let mut step = StepRecord::default();
        completion(
            &mut step,
            &json!({"choices":[{"message":{"content":"Hi!","reasoning_content":"greet"},"finish_reason":"stop"}],
                    "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}),
        );
        assert_eq!(step.response_content, "Hi!");
        assert_eq!(step.reasoning_content, "greet");
        assert_eq!(step.finish_reason.as_deref(), Some("stop"));
        assert_eq!(step.usage.unwrap()["total_tokens"], 7);
    }

    #[test]
    fn chunks_accumulate_and_mark_first_token() {
        let mut step = StepRecord::default();
        assert!(!chunk(
            &mut step,
            &json!({"choices":[{"delta":{"role":"assistant","content":""}}]})
        ));
        assert!(chunk(
            &mut step,
            &json!({"choices":[{"delta":{"reasoning":"hmm "}}]})
        ));
        assert!(chunk(
            &mut step,
            &json!({"choices":[{"delta":{"reasoning_content":"ok","reasoning":"ok"}}]})
        ));
        assert!(chunk(
            &mut step,
            &json!({"choices":[{"delta":{"content":"Hel"}}]})
        ));
        chunk(
            &mut step,
            &json!({"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":null}),
        );
        let usage_chunk = json!({"choices":[],"usage":{"total_tokens":9}});
        assert!(is_usage_only(&usage_chunk));
        chunk(&mut step, &usage_chunk);
        assert_eq!(step.response_content, "Hello");
        assert_eq!(step.reasoning_content, "hmm ok");
        assert_eq!(step.finish_reason.as_deref(), Some("stop"));
        assert_eq!(step.usage.unwrap()["total_tokens"], 9);
        assert!(!is_usage_only(
            &json!({"choices":[{"delta":{}}],"usage":{"a":1}})
        ));
    }
}
