//! Reads what the session log keeps from an answer (content, reasoning, finish reason,
//! usage), from a whole JSON completion or from one stream chunk at a time.

use serde_json::Value;

pub use super::chunk_view::{ChunkView, Text};

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

/// [`completion`] for a completion read as a [`ChunkView`]: the same fields, the same
/// rules (a choice's `message`, or else its `text`; the first reasoning field that is a
/// string).
pub fn completion_view(step: &mut StepRecord, view: &ChunkView<'_>, cap: usize) {
    if let Some(choice) = view.choices.as_ref().and_then(|c| c.first()) {
        step.response_content.clear();
        step.reasoning_content.clear();
        let answer = match &choice.message {
            Some(message) => message.content.as_ref(),
            None => choice.text.as_ref(),
        };
        let reasoning = choice.message.as_ref().and_then(|m| {
            [&m.reasoning_content, &m.reasoning, &m.thinking]
                .into_iter()
                .find_map(Option::as_ref)
        });
        let [answer, reasoning] = [answer, reasoning].map(|t| t.map_or("", Text::as_str));
        step.truncated |= !keep(&mut step.response_content, answer, cap);
        step.truncated |= !keep(&mut step.reasoning_content, reasoning, cap);
        step.finish_reason = choice
            .finish_reason
            .as_ref()
            .map(|t| t.as_str().to_string());
    }
    if let Some(usage) = view.usage.as_ref().filter(|u| u.is_object()) {
        step.usage = Some(usage.clone());
    }
}

/// Adds one `chat.completion.chunk` to `step`, keeping at most `cap` bytes of the answer
/// and of the reasoning (a stream that never ends must not grow the record without
/// bound); returns whether it carried any token (text, reasoning or a tool call), which
/// marks the time to first token.
pub fn chunk(step: &mut StepRecord, body: &Value, cap: usize) -> bool {
    let choice = body.pointer("/choices/0");
    let delta = choice.and_then(|c| c.get("delta"));
    let content = match delta {
        Some(_) => text_field(delta, &["content"]),
        None => text_field(choice, &["text"]),
    };
    let parts = Parts {
        choice: choice.is_some(),
        content: &content,
        reasoning: &text_field(delta, &REASONING_FIELDS),
        tool_calls: delta.and_then(|d| d.get("tool_calls")).is_some(),
        finish_reason: choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str),
        usage: body.get("usage").filter(|u| u.is_object()),
    };
    add(step, &parts, cap)
}

/// [`chunk`] for a chunk read as a [`ChunkView`].
pub fn chunk_view(step: &mut StepRecord, view: &ChunkView<'_>, cap: usize) -> bool {
    let choice = view.choices.as_ref().and_then(|c| c.first());
    let delta = choice.and_then(|c| c.delta.as_ref());
    let content = match (delta, choice) {
        (Some(delta), _) => delta.content.as_ref().map(Text::as_str),
        (None, Some(choice)) => choice.text.as_ref().map(Text::as_str),
        (None, None) => None,
    }
    .unwrap_or("");
    // In the order of REASONING_FIELDS.
    let reasoning = delta
        .and_then(|d| {
            [&d.reasoning_content, &d.reasoning, &d.thinking]
                .into_iter()
                .find_map(|f| f.as_ref().map(Text::as_str))
        })
        .unwrap_or("");
    let parts = Parts {
        choice: choice.is_some(),
        content,
        reasoning,
        tool_calls: delta.is_some_and(|d| d.tool_calls.is_some()),
        finish_reason: choice.and_then(|c| c.finish_reason.as_ref().map(Text::as_str)),
        usage: view.usage.as_ref().filter(|u| u.is_object()),
    };
    add(step, &parts, cap)
}

/// What a chunk adds to the record, however it was read.
struct Parts<'a> {
    /// Whether it has a first choice at all.
    choice: bool,
    content: &'a str,
    reasoning: &'a str,
    tool_calls: bool,
    finish_reason: Option<&'a str>,
    usage: Option<&'a Value>,
}

fn add(step: &mut StepRecord, parts: &Parts<'_>, cap: usize) -> bool {
    let mut carried = false;
    if parts.choice {
        carried = !parts.content.is_empty() || !parts.reasoning.is_empty() || parts.tool_calls;
        step.truncated |= !keep(&mut step.response_content, parts.content, cap);
        step.truncated |= !keep(&mut step.reasoning_content, parts.reasoning, cap);
        if let Some(reason) = parts.finish_reason {
            step.finish_reason = Some(reason.to_string());
        }
    }
    if let Some(usage) = parts.usage {
        step.usage = Some(usage.clone());
    }
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
    fn a_completion_read_as_a_view_is_recorded_as_the_value_is() {
        let bodies = [
            json!({"choices":[{"message":{"content":"Hi!","reasoning_content":"greet"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}),
            json!({"choices":[{"message":{"content":null,"reasoning_content":null,"reasoning":"r","tool_calls":[{"id":"t"}]},"finish_reason":"tool_calls"}]}),
            json!({"choices":[{"text":"legacy","finish_reason":null}],"usage":null}),
            json!({"choices":[{"message":{"content":"ünïcode answer that is long","thinking":"t"}}]}),
            json!({"choices":[],"usage":{"prompt_tokens":1}}),
            json!({"model":"m"}),
        ];
        for body in &bodies {
            for cap in [CAP, 5] {
                let text = body.to_string();
                let view = ChunkView::parse_bytes(text.as_bytes()).unwrap();
                let (mut by_value, mut by_view) = (StepRecord::default(), StepRecord::default());
                completion(&mut by_value, body, cap);
                completion_view(&mut by_view, &view, cap);
                let fields = |s: &StepRecord| {
                    let usage = s.usage.clone();
                    (
                        s.response_content.clone(),
                        s.reasoning_content.clone(),
                        s.finish_reason.clone(),
                        usage,
                        s.truncated,
                    )
                };
                assert_eq!(fields(&by_view), fields(&by_value), "{body} with cap {cap}");
            }
        }
    }

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

    /// The relay reads most chunks as a `ChunkView`; the record must be the same as when
    /// they are read as a `Value`, for every shape a backend sends.
    #[test]
    fn a_chunk_read_as_a_view_records_exactly_what_the_general_path_records() {
        let chunks = [
            r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"model":"m","choices":[{"delta":{"reasoning":"why \"so\"\n","reasoning_content":"why \"so\"\n"}}]}"#,
            r#"{"model":"m","choices":[{"delta":{"thinking":"hmm"}}]}"#,
            r#"{"model":"m","choices":[{"delta":{"content":"caf\u00e9 \ud83d\ude00 <b>"}}],"usage":null}"#,
            r#"{"model":"m","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#,
            r#"{"model":"m","choices":[{"delta":{"content":null},"finish_reason":"stop"}]}"#,
            r#"{"model":"m","choices":[{"text":"legacy","finish_reason":"length"}]}"#,
            r#"{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            r#"{"model":"m","choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
        ];
        for cap in [usize::MAX, 5] {
            let mut general = StepRecord::default();
            let mut viewed = StepRecord::default();
            for data in chunks {
                let value: Value = serde_json::from_str(data).unwrap();
                let view = ChunkView::parse(data).unwrap_or_else(|| panic!("{data}"));
                assert_eq!(
                    chunk(&mut general, &value, cap),
                    chunk_view(&mut viewed, &view, cap),
                    "{data}"
                );
                assert_eq!(is_usage_only(&value), view.is_usage_only(), "{data}");
            }
            assert_eq!(
                serde_json::to_value(&general).unwrap(),
                serde_json::to_value(&viewed).unwrap()
            );
        }
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
