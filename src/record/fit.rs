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

use serde_json::Value;

use super::log::{CutToFit, SessionRecord};
use super::measure::{count, measure, write_within};
use crate::secret::Secret;

/// A string is never cut below this many bytes: ids, URLs and short messages stay whole.
const KEEP_AT_LEAST: usize = 256;
/// Only message text at least this long is written once instead of twice.
const SHARE_FROM: usize = 1024;
/// Room one cut note takes (`…[123456789 more bytes cut]`, escaped).
const NOTE_BYTES: usize = 40;
/// How far over the bound a record is measured before cutting is given up for notes: a
/// body nested a hundred deep pretty-prints to gigabytes of indentation.
const MEASURE_UP_TO: usize = 16;

/// The record as the JSON text of its file, at most `max_bytes` long whenever that can
/// be reached by cutting message text and parameters. The record is cut in place, and
/// `secrets` are replaced in what is cut first, so a cut never keeps part of one.
/// Memory stays near `max_bytes` beyond the record itself: sizes are counted, not built.
pub fn to_json(
    record: &mut SessionRecord,
    max_bytes: usize,
    secrets: &[Secret],
) -> serde_json::Result<String> {
    // Nearly every record fits: written once, not measured and then written.
    if let Some(text) = write_within(record, max_bytes)? {
        return Ok(text);
    }
    let original = count(&*record)?;
    for value in messages(record) {
        redact(value, secrets);
    }
    share_copies(record);
    record.cut_to_fit = Some(CutToFit {
        original_bytes: original,
        max_file_bytes: max_bytes,
    });
    // Cutting is measured in raw bytes but the file holds escaped ones: a few passes
    // close the gap.
    for _ in 0..3 {
        if measure(record, max_bytes)?.is_some() {
            return serde_json::to_string_pretty(record);
        }
        // Far over, the pretty size is not worth counting (indentation can dwarf the
        // text): the compact size says well enough how much must go.
        let size = match measure(record, max_bytes.saturating_mul(MEASURE_UP_TO))? {
            Some(size) => size,
            None => count(&*record)?,
        };
        let over = size.saturating_sub(max_bytes).max(NOTE_BYTES);
        if !cut_longest(messages(record), over) {
            break;
        }
    }
    for field in [Field::Sent, Field::Client, Field::Params] {
        if measure(record, max_bytes)?.is_some() {
            break;
        }
        replace_with_note(record, field);
    }
    if measure(record, max_bytes)?.is_none() {
        tracing::warn!(
            max_bytes,
            "a session record is still larger than sessions.max_file_bytes after cutting"
        );
    }
    serde_json::to_string_pretty(record)
}

/// The parts of a record that carry what the client sent: the conversation, each
/// step's copy of it, and each step's parameters (a `tools` list can be large).
fn messages(record: &mut SessionRecord) -> Vec<&mut Value> {
    let mut values = vec![&mut record.client_messages];
    for step in &mut record.steps {
        values.push(&mut step.messages_sent);
        values.push(&mut step.params);
    }
    values
}

/// `***` for every secret in the strings of `value`.
fn redact(value: &mut Value, secrets: &[Secret]) {
    match value {
        Value::String(text) => crate::secret::redact_all(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, secrets)),
        Value::Object(fields) => fields.values_mut().for_each(|v| redact(v, secrets)),
        _ => {}
    }
}

/// Step 1: each step's message whose text is the client's, word for word, names the
/// client's message instead of repeating it.
fn share_copies(record: &mut SessionRecord) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, message) in record
        .client_messages
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(text) = message.get("content").and_then(Value::as_str)
            && text.len() >= SHARE_FROM
        {
            index.entry(text).or_insert(i);
        }
    }
    for step in &mut record.steps {
        let Some(sent) = step.messages_sent.as_array_mut() else {
            continue;
        };
        for message in sent {
            let found = message
                .get("content")
                .and_then(Value::as_str)
                .and_then(|t| index.get(t));
            if let (Some(&i), Some(fields)) = (found, message.as_object_mut()) {
                fields.insert(
                    "content".into(),
                    Value::from(format!("[same as client_messages[{i}]]")),
                );
            }
        }
    }
}

/// Step 2: cuts every string longer than a common length, chosen so that about `over`
/// bytes go. Returns false when nothing can be cut any more.
fn cut_longest(mut values: Vec<&mut Value>, over: usize) -> bool {
    let mut lengths = Vec::new();
    for value in &values {
        collect_lengths(value, &mut lengths);
    }
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
    for value in &mut values {
        cut_strings(value, low);
    }
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

/// The parts step 3 gives up, in order.
#[derive(Clone, Copy)]
enum Field {
    Sent,
    Client,
    Params,
}

/// Step 3: `field` becomes a note of what it held.
fn replace_with_note(record: &mut SessionRecord, field: Field) {
    let note = |old: &Value| {
        let bytes = count(old).unwrap_or(0);
        Value::from(format!(
            "[{bytes} bytes not kept: over sessions.max_file_bytes]"
        ))
    };
    match field {
        Field::Client => record.client_messages = note(&record.client_messages),
        Field::Sent => {
            for step in &mut record.steps {
                step.messages_sent = note(&step.messages_sent);
            }
        }
        Field::Params => {
            for step in &mut record.steps {
                step.params = note(&step.params);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::log::{Outcome, StepRecord};
    use serde_json::json;

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
            cut_to_fit: None,
        }
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn a_small_record_is_written_whole() {
        let r = record(json!([{"role":"user","content":"hi"}]), json!([]));
        let text = to_json(&mut r.clone(), 64 * 1024, &[]).unwrap();
        assert_eq!(text, serde_json::to_string_pretty(&r).unwrap());
    }

    #[test]
    fn a_copy_of_the_clients_text_is_written_once() {
        let book = "word ".repeat(100_000);
        let r = record(
            json!([{"role":"user","content": book}]),
            json!([{"role":"system","content":"be brief"},{"role":"user","content": book}]),
        );
        let text = to_json(&mut r.clone(), 600_000, &[]).unwrap();
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
            let text = to_json(&mut r.clone(), max, &[]).unwrap();
            assert!(text.len() <= max, "{} > {max}", text.len());
            let v = parse(&text);
            assert_eq!(v["id"], "0badf00d");
            assert_eq!(v["steps"][0]["response_content"], "the answer");
            let first = v["client_messages"][0]["content"].as_str().unwrap_or("");
            assert!(first.starts_with("0:é") && first.ends_with("more bytes cut]"));
        }
    }

    #[test]
    fn a_cut_never_keeps_part_of_a_secret() {
        let secret = Secret::new("xai-SECRET-0123456789");
        let text = format!(
            "{}{}{}",
            "a".repeat(300),
            secret.expose(),
            "b".repeat(200_000)
        );
        let r = record(json!([{"role":"user","content": text}]), json!([]));
        let out = to_json(&mut r.clone(), 64 * 1024, &[secret]).unwrap();
        assert!(!out.contains("xai-SEC"), "part of the key survived the cut");
    }

    #[test]
    fn deep_nesting_is_measured_not_built() {
        // 100 levels deep, 100k numbers: pretty-printed, gigabytes of indentation.
        let mut nested = json!(vec![0; 100_000]);
        for _ in 0..100 {
            nested = json!([nested]);
        }
        let r = record(json!([{"role":"user","content": nested}]), json!([]));
        let out = to_json(&mut r.clone(), 64 * 1024, &[]).unwrap();
        assert!(out.len() <= 64 * 1024, "{}", out.len());
        assert_eq!(parse(&out)["id"], "0badf00d");
    }

    #[test]
    fn many_small_messages_give_way_to_a_note() {
        let many: Vec<Value> = (0..20_000)
            .map(|_| json!({"role":"user","content":"short"}))
            .collect();
        let r = record(Value::Array(many.clone()), Value::Array(many));
        let text = to_json(&mut r.clone(), 64 * 1024, &[]).unwrap();
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
