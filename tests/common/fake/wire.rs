//! What a vLLM-like backend sends: completion chunks, reasoning, usage, whole
//! completions, classifier labels and xAI's Responses API output.

use std::time::Duration;

use serde_json::{Value, json};

use super::Reply;

/// A `chat.completion.chunk` with optional content and finish reason.
pub fn chunk_json(content: &str, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    })
    .to_string()
}

/// A reasoning delta chunk, in vLLM 0.12's style (both field names).
pub fn reasoning_json(text: &str) -> String {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": {"reasoning": text, "reasoning_content": text}, "finish_reason": null}]
    })
    .to_string()
}

/// The usage-only chunk vLLM sends last when asked.
pub fn usage_json() -> String {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
        "model": "fake-model", "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    })
    .to_string()
}

/// A typical stream: role, reasoning, content in two parts, finish, usage if asked, DONE.
pub fn stream_events(body: &Value) -> Vec<String> {
    let mut events = vec![
        json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model",
               "choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})
        .to_string(),
        reasoning_json("The user greets. "),
        chunk_json("Hello", None),
        chunk_json(" there!", Some("stop")),
    ];
    if body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)) {
        events.push(usage_json());
    }
    events.push("[DONE]".into());
    events
}

/// Answers like vLLM: JSON with reasoning for `stream: false`, a stream otherwise.
pub fn vllm_reply(body: &Value) -> Reply {
    if body["stream"] == true {
        Reply::Sse(stream_events(body), Duration::from_millis(5))
    } else {
        Reply::Json(completion_json("Hello there!"))
    }
}

/// A non-streamed `chat.completion` with reasoning and usage.
pub fn completion_json(content: &str) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                     "reasoning_content": "The user greets."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    })
}

/// A classifier that answers `label` (as a whole non-streamed completion).
pub fn label_reply(label: &'static str) -> impl Fn(&Value) -> Reply + Send + Sync + 'static {
    move |_| Reply::Json(completion_json(label))
}

/// A Responses API reply with one cited message, as xAI sends after a web search.
pub fn responses_json(text: &str, url: &str) -> Value {
    json!({
        "id": "resp_fake", "object": "response", "model": "grok-fake",
        "output": [
            {"type": "web_search_call", "status": "completed"},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": text,
                 "annotations": [{"type": "url_citation", "url": url, "title": "source"}]}
            ]}
        ],
        "usage": {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70}
    })
}

/// Answers like xAI: the Responses API (the search hop) with a cited finding about Oslo's
/// weather, chat completions like vLLM.
pub fn xai_reply(body: &Value) -> Reply {
    if body.get("input").is_some() {
        Reply::Json(responses_json(
            "Oslo: 4 °C and rain today.",
            "https://met.example/oslo",
        ))
    } else {
        vllm_reply(body)
    }
}
