//! Classification: builds the classifier's request from the routing prompts (last user
//! message, a little prior conversation, over-long input cut to head + tail), calls the
//! classifier within its timeout, and reads a label from its reply, leniently.

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::config::{Label, RoutingConfig};
use crate::edge::state::AppState;
use crate::openai::chat::content_text;
use crate::prompts::{PromptId, PromptSet};
use crate::record::capture;
use crate::record::session::{Session, millis};
use crate::routing::cache::{Cached, ClassifyCache};
use crate::upstream::backend::Expect;

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
}

/// Asks the classifier for a label for the conversation `messages`. Never fails: a
/// timeout, an error or a reply without a label comes back as `failure`. The call is
/// added to `session` as a `classify` step.
pub async fn classify(
    state: &AppState,
    prompts: &PromptSet,
    messages: &[Value],
    session: Option<&mut Session>,
) -> Classification {
    let classifier = &state.classifier;
    let body = request_body(prompts, &state.config.routing, &classifier.model, messages);
    let started = Instant::now();
    let cache = &state.classify_cache;
    let key = cache.enabled().then(|| ClassifyCache::key(&body));
    if let Some(hit) = key.and_then(|key| cache.get(key)) {
        return Classification {
            label: Some(hit.label),
            raw: hit.raw,
            ms: millis(started.elapsed()),
            failure: None,
            cached: true,
        };
    }
    let mut step = classifier.step_record("classify", "/chat/completions", &body, "messages");
    let mut session = session;
    let id = session
        .as_ref()
        .map_or(String::new(), |s| s.id().to_string());
    // Recorded before the call, so a client that leaves mid-call still shows it.
    let index = session.as_mut().map(|s| s.push_step(step.clone()));
    // For the classifier, `timeout_secs` bounds the whole call: a label is a few tokens,
    // and a slow classifier must not hold the request up.
    let call = async {
        let response = classifier
            .post("/chat/completions", &body, &id, Expect::Json)
            .await?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| crate::error::Error::UpstreamProtocol {
                backend: classifier.name,
                reason: e.without_url().to_string(),
            })?;
        let reply: Value =
            serde_json::from_slice(&bytes).map_err(|_| crate::error::Error::UpstreamProtocol {
                backend: classifier.name,
                reason: "the answer is not JSON".into(),
            })?;
        Ok::<_, crate::error::Error>((status, reply))
    };
    let result = tokio::time::timeout(classifier.timeout, call).await;
    let ms = millis(started.elapsed());
    step.duration_ms = ms;
    let outcome = match result {
        Err(_) => failed(
            ms,
            format!(
                "the classifier timed out after {} s",
                classifier.timeout.as_secs()
            ),
        ),
        Ok(Err(error)) => {
            if let crate::error::Error::UpstreamStatus {
                error: upstream, ..
            } = &error
            {
                step.status = Some(upstream.status.as_u16());
            }
            failed(ms, format!("the classifier failed: {error}"))
        }
        Ok(Ok((status, reply))) => {
            step.status = Some(status);
            capture::completion(&mut step, &reply);
            let raw = step.response_content.clone();
            match parse_label(&raw) {
                Some(label) => {
                    let cached = Cached {
                        label,
                        raw: raw.clone(),
                    };
                    if let Some(key) = key {
                        cache.put(key, cached);
                    }
                    Classification {
                        label: Some(label),
                        raw,
                        ms,
                        failure: None,
                        cached: false,
                    }
                }
                None => Classification {
                    label: None,
                    raw,
                    ms,
                    failure: Some("the classifier answered without a label".into()),
                    cached: false,
                },
            }
        }
    };
    step.error.clone_from(&outcome.failure);
    if let Some(slot) = session.zip(index).and_then(|(s, i)| s.step(i)) {
        *slot = step;
    }
    outcome
}

fn failed(ms: u64, why: String) -> Classification {
    Classification {
        label: None,
        raw: String::new(),
        ms,
        failure: Some(why),
        cached: false,
    }
}

/// The classifier's request: `routing/system.md`, then `routing/request.md` filled with
/// the last user message (cut to `max_input_chars`) and the prior conversation; the
/// configured `classifier_params`; never a length cap.
pub fn request_body(
    prompts: &PromptSet,
    config: &RoutingConfig,
    model: &str,
    messages: &[Value],
) -> Map<String, Value> {
    let (query, context) = split_conversation(messages, config);
    let note = |omitted: usize| {
        prompts.render(
            PromptId::TruncationNote,
            &[("omitted", &omitted.to_string())],
        )
    };
    let query = cut_middle(&query, config.max_input_chars, note);
    let user = prompts.render(
        PromptId::RoutingRequest,
        &[("query", &query), ("context", &context)],
    );
    let system = &prompts.get(PromptId::RoutingSystem).text;
    let mut turns = Vec::new();
    if !system.is_empty() {
        turns.push(json!({"role": "system", "content": system}));
    }
    turns.push(json!({"role": "user", "content": user}));
    let mut body = config.classifier_params.clone();
    body.remove("max_tokens");
    body.remove("max_completion_tokens");
    body.insert("model".into(), Value::from(model));
    body.insert("messages".into(), Value::Array(turns));
    body.insert("stream".into(), Value::Bool(false));
    body
}

/// The last user message, and up to `context_messages` user/assistant turns before it
/// as `role: text` lines, at most `context_chars` long (the most recent are kept).
fn split_conversation(messages: &[Value], config: &RoutingConfig) -> (String, String) {
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
    let start = lines.len().saturating_sub(config.context_messages);
    let context = lines[start..].join("\n");
    (query, keep_tail(&context, config.context_chars))
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

/// The first whole-word label in a reply, ignoring case, punctuation, surrounding words
/// and anything the model thought inside `<think>…</think>`.
pub fn parse_label(reply: &str) -> Option<Label> {
    visible_text(reply)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|word| {
            Label::ALL
                .into_iter()
                .find(|l| l.as_str().eq_ignore_ascii_case(word))
        })
}

/// The reply without its reasoning: text after the last `</think>` (some templates open
/// the block in the prompt, so only the end tag appears), and nothing after an
/// unclosed `<think>`.
fn visible_text(reply: &str) -> &str {
    let lower = reply.to_ascii_lowercase();
    let start = lower.rfind("</think>").map_or(0, |i| i + "</think>".len());
    let visible = &reply[start..];
    match visible.to_ascii_lowercase().find("<think>") {
        Some(open) => &visible[..open],
        None => visible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_leniently() {
        let cases = [
            ("SIMPLE", Some(Label::Simple)),
            ("  moderate.\n", Some(Label::Moderate)),
            ("Label: **COMPLEX**", Some(Label::Complex)),
            (
                "I would say this is Enrich because it needs news",
                Some(Label::Enrich),
            ),
            (
                "<think>Could be COMPLEX… no.</think>\nSIMPLE",
                Some(Label::Simple),
            ),
            ("<THINK>hmm ENRICH</THINK> moderate", Some(Label::Moderate)),
            (
                "it needs thought about ENRICH</think>MODERATE",
                Some(Label::Moderate),
            ),
            ("<think>still thinking about COMPLEX", None),
            ("SIMPLEX or COMPLEXITY", None),
            ("", None),
            ("META", Some(Label::Meta)),
            ("simple, or maybe complex", Some(Label::Simple)),
        ];
        for (reply, expected) in cases {
            assert_eq!(parse_label(reply), expected, "{reply:?}");
        }
    }

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
        let config = RoutingConfig {
            context_messages: 2,
            ..RoutingConfig::default()
        };
        let (query, context) = split_conversation(&messages, &config);
        assert_eq!(query, "and tomorrow?");
        assert_eq!(context, "user: three\nassistant: four");
        let tight = RoutingConfig {
            context_chars: 10,
            ..RoutingConfig::default()
        };
        assert_eq!(split_conversation(&messages, &tight).1, "tant: four");
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
        let prompts = PromptSet::load(dir.path()).unwrap();
        let mut config = RoutingConfig {
            max_input_chars: 200,
            ..RoutingConfig::default()
        };
        config
            .classifier_params
            .insert("max_tokens".into(), json!(5));
        let long = format!("start {} end", "x".repeat(500));
        let body = request_body(
            &prompts,
            &config,
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
