//! Reads what the session log keeps from an answer (content, reasoning, finish reason,
//! usage), from a whole JSON completion or from one stream chunk at a time.

use serde_json::Value;

use super::log::StepRecord;

/// Reasoning arrives under one of these names depending on the server and version.
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "reasoning", "thinking"];

/// Fills `step` from a non-streamed `chat.completion`, keeping at most `cap` bytes of
/// its answer and of its reasoning.
pub fn completion(step: &mut StepRecord, body: &Value, cap: usize) {
    if let Some(choice) = body.pointer("/choices/0") {
        let message = choice.get("message");
        step.response_content.clear();
        step.reasoning_content.clear();
        // A chat completion's message, or a (legacy) completion's `text`.
        let answer = match message {
            Some(_) => text_field(message, &["content"]),
            None => text_field(Some(choice), &["text"]),
        };
        let reasoning = text_field(message, &REASONING_FIELDS);
        step.truncated |= !keep(&mut step.response_content, &answer, cap);
        step.truncated |= !keep(&mut step.reasoning_content, &reasoning, cap);
        step.finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(String::from);
    }
    usage(step, body);
}

/// Adds one `chat.completion.chunk` to `step`, keeping at most `cap` bytes of the answer
/// and of the reasoning (a stream that never ends must not grow the record without
/// bound); returns whether it carried any token (text, reasoning or a tool call), which
/// marks the time to first token.
pub fn chunk(step: &mut StepRecord, body: &Value, cap: usize) -> bool {
    let mut carried = false;
    if let Some(choice) = body.pointer("/choices/0") {
        let delta = choice.get("delta");
        let content = match delta {
            Some(_) => text_field(delta, &["content"]),
            None => text_field(Some(choice), &["text"]),
        };
        let reasoning = text_field(delta, &REASONING_FIELDS);
        carried = !content.is_empty()
            || !reasoning.is_empty()
            || delta.and_then(|d| d.get("tool_calls")).is_some();
        step.truncated |= !keep(&mut step.response_content, &content, cap);
        step.truncated |= !keep(&mut step.reasoning_content, &reasoning, cap);
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            step.finish_reason = Some(reason.to_string());
        }
    }
    usage(step, body);
    carried
}

/// The answer's text in a non-streamed `chat.completion`, whole.
pub fn answer_text(body: &Value) -> String {
    text_field(body.pointer("/choices/0/message"), &["content"])
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

/// Appends `text` to `kept` up to `cap` bytes in all, on a character boundary; false when
/// some of it did not fit.
fn keep(kept: &mut String, text: &str, cap: usize) -> bool {
    let part = head_bytes(text, cap.saturating_sub(kept.len()));
    kept.push_str(part);
    part.len() == text.len()
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
pub fn head_bytes(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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

    const CAP: usize = 1024;

    #[test]
    fn whole_completion() {
        let mut step = StepRecord::default();
        completion(
            &mut step,
            &json!({"choices":[{"message":{"content":"Hi!","reasoning_content":"greet"},"finish_reason":"stop"}],
                    "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}),
            CAP,
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
            &json!({"choices":[{"delta":{"role":"assistant","content":""}}]}),
            CAP,
        ));
        assert!(chunk(
            &mut step,
            &json!({"choices":[{"delta":{"reasoning":"hmm "}}]}),
            CAP,
        ));
        assert!(chunk(
            &mut step,
            &json!({"choices":[{"delta":{"reasoning_content":"ok","reasoning":"ok"}}]}),
            CAP,
        ));
        assert!(chunk(
            &mut step,
            &json!({"choices":[{"delta":{"content":"Hel"}}]}),
            CAP,
        ));
        chunk(
            &mut step,
            &json!({"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":null}),
            CAP,
        );
        let usage_chunk = json!({"choices":[],"usage":{"total_tokens":9}});
        assert!(is_usage_only(&usage_chunk));
        chunk(&mut step, &usage_chunk, CAP);
        assert_eq!(step.response_content, "Hello");
        assert_eq!(step.reasoning_content, "hmm ok");
        assert_eq!(step.finish_reason.as_deref(), Some("stop"));
        assert_eq!(step.usage.unwrap()["total_tokens"], 9);
        assert!(!is_usage_only(
            &json!({"choices":[{"delta":{}}],"usage":{"a":1}})
        ));
        assert!(!step.truncated);
    }

    #[test]
    fn an_answer_past_the_cap_is_cut_on_a_character_boundary_and_marked() {
        let mut step = StepRecord::default();
        for _ in 0..3 {
            chunk(
                &mut step,
                &json!({"choices":[{"delta":{"content":"héllo"}}]}),
                14,
            );
        }
        // 12 bytes, then "h": a 14th byte would split the é.
        assert_eq!(step.response_content, "héllohélloh");
        assert!(step.truncated);
        let mut whole = StepRecord::default();
        completion(
            &mut whole,
            &json!({"choices":[{"message":{"content":"x".repeat(20)}}]}),
            8,
        );
        assert_eq!(whole.response_content.len(), 8);
        assert!(whole.truncated);
    }
}
