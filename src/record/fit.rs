//! Keeps a session file within `sessions.max_file_bytes`. A record that fits is written
//! as it is. One that does not (a chat with a pasted book, a huge `tools` list) is made
//! to fit, losing as little as possible, in this order:
//! 1. message text that a step sent exactly as the client had sent it is written once,
//!    in `client_messages`, and the step's copy names it (nothing is lost);
//! 2. the longest strings are cut to a common length, each saying how much was cut;
//! 3. the message arrays, then each step's parameters, are replaced by a note.
//!
//! The file then says `cut_to_fit` with the size it would have had.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::log::SessionRecord;

/// A string is never cut below this many bytes: ids, URLs and short messages stay whole.
const KEEP_AT_LEAST: usize = 256;
/// Only message text at least this long is written once instead of twice.
const SHARE_FROM: usize = 1024;
/// Room one cut note takes (`…[123456789 more bytes cut]`, escaped).
const NOTE_BYTES: usize = 40;

/// The record as the JSON text of its file, at most `max_bytes` long whenever that can
/// be reached by cutting message text and parameters.
pub fn to_json(record: &SessionRecord, max_bytes: usize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(record)?;
    if text.len() <= max_bytes {
        return Ok(text);
    }
    let original = text.len();
    drop(text);
    let mut value = serde_json::to_value(record)?;
    value["cut_to_fit"] = json!({"original_bytes": original, "max_file_bytes": max_bytes});
    share_copies(&mut value);
    let mut text = serde_json::to_string_pretty(&value)?;
    // Cutting is measured in raw bytes but the file holds escaped ones: a few passes
    // close the gap.
    for _ in 0..3 {
        if text.len() <= max_bytes {
            return Ok(text);
        }
        if !cut_longest(&mut value, text.len() - max_bytes) {
            break;
        }
        text = serde_json::to_string_pretty(&value)?;
    }
    for field in ["messages_sent", "client_messages", "params"] {
        if text.len() <= max_bytes {
            break;
        }
        replace_with_note(&mut value, field);
        text = serde_json::to_string_pretty(&value)?;
    }
    Ok(text)
}

/// Step 1: each step's message whose text is the client's, word for word, names the
/// client's message instead of repeating it.
fn share_copies(value: &mut Value) {
    let client = value["client_messages"].take();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, message) in client.as_array().into_iter().flatten().enumerate() {
        if let Some(text) = message["content"].as_str()
            && text.len() >= SHARE_FROM
        {
            index.entry(text).or_insert(i);
        }
    }
    if let Some(steps) = value["steps"].as_array_mut() {
        for step in steps {
            let Some(sent) = step["messages_sent"].as_array_mut() else {
                continue;
            };
            for message in sent {
                let found = message["content"].as_str().and_then(|t| index.get(t));
                if let Some(&i) = found {
                    message["content"] = Value::from(format!("[same as client_messages[{i}]]"));
                }
            }
        }
    }
    value["client_messages"] = client;
}

/// Step 2: cuts every string longer than a common length, chosen so that about `over`
/// bytes go. Returns false when nothing can be cut any more.
fn cut_longest(value: &mut Value, over: usize) -> bool {
    let mut lengths = Vec::new();
    collect_lengths(value, &mut lengths);
    lengths.retain(|&len| len > KEEP_AT_LEAST + NOTE_BYTES);
    if lengths.is_empty() {
        return false;
    }
    let saved = |cap: usize| -> usize {
        lengths
            .iter()
            .map(|&len| len.saturating_sub(cap + NOTE_BYTES))
            .sum()
    };
    // The longest common length that still saves enough (binary search: `saved` falls
    // as the length grows).
    let (mut low, mut high) = (KEEP_AT_LEAST, lengths.iter().copied().max().unwrap_or(0));
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if saved(mid) >= over + over / 16 {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    cut_strings(value, low);
    true
}

fn collect_lengths(value: &Value, lengths: &mut Vec<usize>) {
    match value {
        Value::String(text) => lengths.push(text.len()),
        Value::Array(items) => items.iter().for_each(|v| collect_lengths(v, lengths)),
        Value::Object(fields) => fields.values().for_each(|v| collect_lengths(v, lengths)),
        _ => {}
    }
}

fn cut_strings(value: &mut Value, cap: usize) {
    match value {
        Value::String(text) if text.len() > cap + NOTE_BYTES => {
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let cut = text.len() - end;
            text.truncate(end);
            text.push_str(&format!("…[{cut} more bytes cut]"));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, cap)),
        Value::Object(fields) => fields.values_mut().for_each(|v| cut_strings(v, cap)),
        _ => {}
    }
}

/// Step 3: `field` (at the top, or in each step) becomes a note of what it held.
fn replace_with_note(value: &mut Value, field: &str) {
    let note = |old: &Value| {
        let bytes = serde_json::to_string(old).map_or(0, |t| t.len());
        Value::from(format!(
            "[{bytes} bytes not kept: over sessions.max_file_bytes]"
        ))
    };
    if let Some(old) = value.get(field) {
        let new = note(old);
        value[field] = new;
    }
    if let Some(steps) = value["steps"].as_array_mut() {
        for step in steps {
            if let Some(old) = step.get(field) {
                let new = note(old);
                step[field] = new;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::log::{Outcome, StepRecord};

    fn record(messages: Value, sent: Value) -> SessionRecord {
        SessionRecord {
            started_at: chrono::Utc::now(),
            schema_version: 1,
            id: "0badf00d".into(),
            timestamp: String::new(),
            client_ip: "127.0.0.1".into(),
            user_agent: None,
            client_key: None,
            user_query: "q".into(),
            client_messages: messages,
            rejected_body: None,
            images: None,
            stream: false,
            decision: Default::default(),
            backends_down: Vec::new(),
            steps: vec![StepRecord {
                messages_sent: sent,
                response_content: "the answer".into(),
                ..StepRecord::default()
            }],
            total_ms: 1,
            http_status: 200,
            outcome: Outcome::Ok,
            error: None,
        }
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn a_small_record_is_written_whole() {
        let r = record(json!([{"role":"user","content":"hi"}]), json!([]));
        let text = to_json(&r, 64 * 1024).unwrap();
        assert_eq!(text, serde_json::to_string_pretty(&r).unwrap());
    }

    #[test]
    fn a_copy_of_the_clients_text_is_written_once() {
        let book = "word ".repeat(100_000);
        let r = record(
            json!([{"role":"user","content": book}]),
            json!([{"role":"system","content":"be brief"},{"role":"user","content": book}]),
        );
        let text = to_json(&r, 600_000).unwrap();
        assert!(text.len() <= 600_000, "{}", text.len());
        let v = parse(&text);
        assert_eq!(v["client_messages"][0]["content"], book.as_str());
        assert_eq!(
            v["steps"][0]["messages_sent"][1]["content"],
            "[same as client_messages[0]]"
        );
        assert_eq!(v["steps"][0]["messages_sent"][0]["content"], "be brief");
        assert!(v["cut_to_fit"]["original_bytes"].as_u64().unwrap() > 1_000_000);
    }

    #[test]
    fn long_text_is_cut_to_fit_and_says_so() {
        let long: Vec<Value> = (0..40)
            .map(|i| json!({"role":"user","content": format!("{i}:{}", "é".repeat(50_000))}))
            .collect();
        let r = record(Value::Array(long), json!([]));
        for max in [1_000_000, 200_000, 64 * 1024] {
            let text = to_json(&r, max).unwrap();
            assert!(text.len() <= max, "{} > {max}", text.len());
            let v = parse(&text);
            assert_eq!(v["id"], "0badf00d");
            assert_eq!(v["steps"][0]["response_content"], "the answer");
            let first = v["client_messages"][0]["content"].as_str().unwrap_or("");
            assert!(first.starts_with("0:é") && first.ends_with("more bytes cut]"));
        }
    }

    #[test]
    fn many_small_messages_give_way_to_a_note() {
        let many: Vec<Value> = (0..20_000)
            .map(|_| json!({"role":"user","content":"short"}))
            .collect();
        let r = record(Value::Array(many.clone()), Value::Array(many));
        let text = to_json(&r, 64 * 1024).unwrap();
        assert!(text.len() <= 64 * 1024, "{}", text.len());
        let v = parse(&text);
        assert!(
            v["client_messages"]
                .as_str()
                .unwrap()
                .ends_with("over sessions.max_file_bytes]")
        );
        assert_eq!(v["user_query"], "q");
    }
}
