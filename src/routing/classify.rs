//! Classification: builds the classifier's request from the routing prompts (last user
//! message, a little prior conversation, over-long input cut to head + tail), calls the
//! classifier within its timeout, and reads a label from its reply, leniently.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::config::RoutingConfig;
use crate::error::Error;
use crate::names::{Label, Step};
use crate::openai::content_text;
use crate::prompts::{PromptSet, ROUTING_REQUEST, ROUTING_SYSTEM, TRUNCATION_NOTE};
use crate::record::capture;
use crate::record::session::{Session, millis};
use crate::upstream::{Expect, Reply, call};

use super::Routing;
use super::cache::{Cached, ClassifyCache};
use super::constrain;
use crate::record::decision::Confidence;

/// What the classifier said, for the decision and the session log.
#[derive(Clone, Debug)]
pub struct Classification {
    /// The first label in the reply, if there was one.
    pub label: Option<Label>,
    /// The reply's text as the classifier sent it (empty if it failed).
    pub raw: String,
    /// Time spent, including a timeout.
    pub ms: u64,
    /// Why there is no label: timeout, error, or a reply without one.
    pub failure: Option<String>,
    /// Whether the decision came from the cache (no classifier call).
    pub cached: bool,
    /// How sure the classifier was, when it sent log-probabilities.
    pub confidence: Option<Confidence>,
}

/// How much of a conversation a model that only needs its gist is shown (the classifier,
/// a search hop): the last user message cut to head + tail, and a little before it.
#[derive(Clone, Copy, Debug)]
pub struct InputLimits {
    /// Earlier messages shown besides the last user message.
    pub context_messages: usize,
    /// At most this many characters of them (the most recent are kept).
    pub context_chars: usize,
    /// A longer last user message is cut to head + tail.
    pub max_input_chars: usize,
}

impl InputLimits {
    /// The limits `[routing]` sets.
    pub fn of(config: &RoutingConfig) -> Self {
        InputLimits {
            context_messages: config.context_messages,
            context_chars: config.context_chars,
            max_input_chars: config.max_input_chars,
        }
    }
}

impl Routing {
    /// Asks the classifier for a label for the conversation `messages`. Never fails: a
    /// timeout, an error or a reply without a label comes back as `failure`. The call
    /// is added to `session` as a `classify` step.
    pub async fn classify(
        &self,
        prompts: &PromptSet,
        messages: &[Value],
        session: &mut Session,
    ) -> Classification {
        let classifier = &self.classifier;
        let body = request_body(
            prompts,
            self.limits,
            &self.classifier_params,
            &classifier.model,
            messages,
        );
        let started = Instant::now();
        let cache = &self.cache;
        let key = cache.enabled().then(|| ClassifyCache::key(&body));
        if let Some(hit) = key.and_then(|key| cache.get(key)) {
            return Classification {
                label: Some(hit.label),
                raw: hit.raw,
                ms: millis(started.elapsed()),
                failure: None,
                cached: true,
                confidence: hit.confidence,
            };
        }
        // Recorded before the call, so a client that leaves mid-call still shows it.
        let step = session.push_sending(
            Step::Classify,
            &classifier.id,
            &classifier.model,
            &body,
            "messages",
        );
        // For the classifier, `timeout_secs` bounds the whole call: a label is a few
        // tokens, and a slow classifier must not hold the request up.
        let reply = tokio::time::timeout(
            classifier.timeout,
            call(
                classifier,
                "/chat/completions",
                &body,
                Expect::Json,
                session,
                step,
            ),
        )
        .await;
        let ms = millis(started.elapsed());
        let timed_out = || {
            format!(
                "the classifier timed out after {} s",
                classifier.timeout.as_secs()
            )
        };
        let outcome = match reply {
            // Whether the whole call or the wait for its body ran out, it is one timeout.
            Err(_) | Ok(Err(Error::UpstreamTimeout { .. })) => failed(ms, timed_out()),
            Ok(Err(error)) => failed(ms, format!("the classifier failed: {error}")),
            Ok(Ok(reply)) => self.read(reply, ms, session, step, key),
        };
        if let Some(record) = session.step(step) {
            record.duration_ms = ms;
            record.error.clone_from(&outcome.failure);
        }
        outcome
    }

    /// The label in the classifier's reply, remembered for the same input.
    fn read(
        &self,
        reply: Reply,
        ms: u64,
        session: &mut Session,
        step: usize,
        key: Option<u64>,
    ) -> Classification {
        let Reply::Json(reply) = reply else {
            return failed(ms, "the classifier answered with a stream".into());
        };
        // The label is read from the whole reply (it may come after pages of thinking);
        // the record keeps what `sessions.max_answer_bytes` allows.
        let whole = capture::answer_text(&reply);
        if let Some(record) = session.step(step) {
            capture::completion(record, &reply, self.answer_cap);
        }
        let label = self.table.parse_label(&whole);
        let raw = capture::head_bytes(&whole, self.answer_cap).to_string();
        let Some(label) = label else {
            return Classification {
                label: None,
                raw,
                ms,
                failure: Some("the classifier answered without a label".into()),
                cached: false,
                confidence: None,
            };
        };
        let confidence = constrain::confidence(&reply, &label, &self.choosable);
        if let Some(key) = key {
            let cached = Cached {
                label: label.clone(),
                raw: raw.clone(),
                confidence: confidence.clone(),
            };
            self.cache.put(key, cached);
        }
        Classification {
            label: Some(label),
            raw,
            ms,
            failure: None,
            cached: false,
            confidence,
        }
    }
}

fn failed(ms: u64, why: String) -> Classification {
    Classification {
        label: None,
        raw: String::new(),
        ms,
        failure: Some(why),
        cached: false,
        confidence: None,
    }
}

/// The classifier's request: `routing/system.md`, then `routing/request.md` filled with
/// the last user message (cut to `max_input_chars`) and the prior conversation; the
/// configured `classifier_params`; never a length cap.
pub fn request_body(
    prompts: &PromptSet,
    limits: InputLimits,
    params: &Map<String, Value>,
    model: &str,
    messages: &[Value],
) -> Map<String, Value> {
    let (query, context) = split_conversation(messages, limits);
    let note =
        |omitted: usize| prompts.render(TRUNCATION_NOTE, &[("omitted", &omitted.to_string())]);
    let query = cut_middle(&query, limits.max_input_chars, note);
    let user = prompts.render(ROUTING_REQUEST, &[("query", &query), ("context", &context)]);
    // Sent as written: it has no placeholders, and rendering would copy it every time.
    let system = prompts.get(ROUTING_SYSTEM).map_or("", |p| p.text.as_str());
    let mut turns = Vec::new();
    if !system.is_empty() {
        turns.push(json!({"role": "system", "content": system}));
    }
    turns.push(json!({"role": "user", "content": user}));
    let mut body = params.clone();
    body.remove("max_tokens");
    body.remove("max_completion_tokens");
    body.insert("model".into(), Value::from(model));
    body.insert("messages".into(), Value::Array(turns));
    body.insert("stream".into(), Value::Bool(false));
    body
}

/// The last user message, and up to `context_messages` user/assistant turns before it
/// as `role: text` lines, at most `context_chars` long (the most recent are kept).
fn split_conversation(messages: &[Value], limits: InputLimits) -> (String, String) {
    let role = |m: &Value| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let last_user = messages.iter().rposition(|m| role(m) == "user");
    let Some(last_user) = last_user else {
        return (String::new(), String::new());
    };
    let query = content_text(messages[last_user].get("content"));
    let lines: Vec<String> = messages[..last_user]
        .iter()
        .filter(|m| matches!(role(m).as_str(), "user" | "assistant"))
        .map(|m| format!("{}: {}", role(m), content_text(m.get("content")).trim()))
        .collect();
    let start = lines.len().saturating_sub(limits.context_messages);
    let context = lines[start..].join("\n");
    (query, keep_tail(&context, limits.context_chars))
}

fn keep_tail(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(max_chars)).collect()
}

/// `text` if it fits in `budget` characters; otherwise its first and last halves of the
/// budget with `note(omitted)` between them (the question is often at either end).
pub fn cut_middle(text: &str, budget: usize, note: impl Fn(usize) -> String) -> String {
    let count = text.chars().count();
    if count <= budget {
        return text.to_string();
    }
    let half = budget / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(count - half).collect();
    format!("{head}\n\n{}\n\n{tail}", note(count - 2 * half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_cut_to_head_and_tail() {
        let text = format!("{}{}{}", "a".repeat(100), "b".repeat(1000), "c".repeat(100));
        let cut = cut_middle(&text, 200, |n| format!("[{n} cut]"));
        assert_eq!(
            cut,
            format!("{}\n\n[1000 cut]\n\n{}", "a".repeat(100), "c".repeat(100))
        );
        assert_eq!(cut_middle("short", 200, |_| unreachable!()), "short");
        let multibyte = "é".repeat(300);
        assert_eq!(
            cut_middle(&multibyte, 200, |_| "…".into()).chars().count(),
            200 + 5
        );
    }

    #[test]
    fn context_is_the_recent_turns_before_the_last_user_message() {
        let messages = vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": "one"}),
            json!({"role": "assistant", "content": "two"}),
            json!({"role": "user", "content": [{"type": "text", "text": "three"}]}),
            json!({"role": "assistant", "content": "four"}),
            json!({"role": "user", "content": "and tomorrow?"}),
        ];
        let limits = InputLimits::of(&RoutingConfig::default());
        let two = InputLimits {
            context_messages: 2,
            ..limits
        };
        let (query, context) = split_conversation(&messages, two);
        assert_eq!(query, "and tomorrow?");
        assert_eq!(context, "user: three\nassistant: four");
        let tight = InputLimits {
            context_chars: 10,
            ..limits
        };
        assert_eq!(split_conversation(&messages, tight).1, "tant: four");
    }

    #[test]
    fn the_request_uses_both_prompts_and_no_length_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("routing")).unwrap();
        std::fs::write(dir.path().join("routing/system.md"), "Label it.").unwrap();
        std::fs::write(
            dir.path().join("routing/request.md"),
            "Context:\n{{context}}\nMessage: {{query}}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("routing/truncation_note.md"),
            "[{{omitted}} chars cut]",
        )
        .unwrap();
        let config = crate::config::Config::default();
        let prompts = PromptSet::load(dir.path(), &crate::prompts::wanted(&config)).unwrap();
        let limits = InputLimits {
            max_input_chars: 200,
            ..InputLimits::of(&config.routing)
        };
        let mut params = config.routing.classifier_params.clone();
        params.insert("max_tokens".into(), json!(5));
        let long = format!("start {} end", "x".repeat(500));
        let body = request_body(
            &prompts,
            limits,
            &params,
            "orchestrator",
            &[json!({"role": "user", "content": long})],
        );
        assert_eq!(body["model"], "orchestrator");
        assert_eq!(body["stream"], false);
        assert_eq!(body["temperature"], 0.0);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Label it."})
        );
        let user = body["messages"][1]["content"].as_str().unwrap();
        assert!(user.starts_with("Context:\n\nMessage: start "), "{user}");
        assert!(
            user.contains("[310 chars cut]") && user.ends_with(" end"),
            "{user}"
        );
    }
}
