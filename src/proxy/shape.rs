//! Shapes a client's chat request for the route that answers it: the model name, the
//! length rule, dropped parameters, thinking, and the single leading system message.
//! Pure functions, unit-tested here.

use serde_json::{Map, Value, json};

use crate::config::{MaxTokens, Thinking};
use crate::openai::{ChatRequest, content_text};
use crate::routing::Route;

/// Roles whose text is folded into the one leading system message.
const SYSTEM_ROLES: [&str; 2] = ["system", "developer"];

/// The length fields a client may send; the route decides what happens to them.
const LENGTH_FIELDS: [&str; 2] = ["max_tokens", "max_completion_tokens"];

/// The body for `route`'s backend, which serves `model`: `model` rewritten, the length
/// cap stripped (reasoning models: any cap can end the answer inside `<think>`), raised
/// to the route's floor (never lowered; `max_completion_tokens` folded in) or passed,
/// the route's dropped parameters removed, thinking set as the route says, one leading
/// system message (`system_prompt` first), and usage requested on streams so the
/// session log has it. Every other field passes through as the client sent it.
pub fn for_route(
    request: &ChatRequest,
    route: &Route,
    model: &str,
    system_prompt: &str,
) -> Map<String, Value> {
    // Every field but the conversation, which is built below from the client's messages:
    // cloning the whole body first would copy the conversation twice.
    let mut body: Map<String, Value> = request
        .body
        .iter()
        .filter(|(name, _)| *name != "messages")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    body.insert("model".into(), Value::from(model));
    match route.max_tokens {
        MaxTokens::Strip => {
            for field in LENGTH_FIELDS {
                body.remove(field);
            }
        }
        MaxTokens::Floor => {
            let asked = LENGTH_FIELDS
                .iter()
                .filter_map(|field| body.remove(*field))
                .filter_map(|v| v.as_u64())
                .max()
                .unwrap_or(0);
            let floor = u64::from(route.min_max_tokens);
            body.insert("max_tokens".into(), Value::from(asked.max(floor)));
        }
        MaxTokens::Pass => {}
    }
    for param in &route.drop_params {
        body.remove(param);
    }
    let messages = with_one_system_message(request.messages(), system_prompt);
    body.insert("messages".into(), Value::Array(messages));
    if request.stream {
        request_usage(&mut body);
    }
    match route.thinking {
        Thinking::Pass => {}
        Thinking::Off => set_thinking(&mut body, false),
        Thinking::On => set_thinking(&mut body, true),
    }
    body
}

/// Turns a reasoning model's thinking on or off for this request
/// (`chat_template_kwargs.enable_thinking`), keeping other template arguments.
pub fn set_thinking(body: &mut Map<String, Value>, on: bool) {
    set_in(
        body,
        "chat_template_kwargs",
        "enable_thinking",
        Value::Bool(on),
    );
}

/// Returns the conversation with every system/developer message folded into one
/// leading system message: `system_prompt` first, then the client's text, each
/// separated by a blank line. Chat templates such as Nemotron's expect exactly that.
pub fn with_one_system_message(messages: &[Value], system_prompt: &str) -> Vec<Value> {
    let mut system_texts: Vec<String> = Vec::new();
    if !system_prompt.trim().is_empty() {
        system_texts.push(system_prompt.trim().to_string());
    }
    let mut rest = Vec::with_capacity(messages.len() + 1);
    for message in messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if SYSTEM_ROLES.contains(&role) {
            let text = content_text(message.get("content"));
            if !text.trim().is_empty() {
                system_texts.push(text.trim().to_string());
            }
        } else {
            rest.push(message.clone());
        }
    }
    if !system_texts.is_empty() {
        rest.insert(
            0,
            json!({"role": "system", "content": system_texts.join("\n\n")}),
        );
    }
    rest
}

/// Asks a streaming backend for its final usage chunk; the relay hides that chunk from
/// clients that did not ask for it.
fn request_usage(body: &mut Map<String, Value>) {
    set_in(body, "stream_options", "include_usage", Value::Bool(true));
}

/// Sets `body[field][key]`, keeping the object's other keys; a `field` that is not an
/// object (a client's `null`, say) is replaced by one.
fn set_in(body: &mut Map<String, Value>, field: &str, key: &str, value: Value) {
    let object = body
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    if let Some(object) = object.as_object_mut() {
        object.insert(key.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::routing::RouteTable;

    fn request(body: Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    fn route(label: &str) -> Route {
        Route::clone(RouteTable::new(&Config::default()).get(label).unwrap())
    }

    #[test]
    fn local_body_drops_length_caps_and_rewrites_model() {
        let req = request(json!({
            "model": "ai-router:latest",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100,
            "max_completion_tokens": 200,
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 7,
            "chat_template_kwargs": {"enable_thinking": false}
        }));
        let body = for_route(&req, &route("MODERATE"), "nemotron", "Be kind.");
        assert_eq!(body["model"], "nemotron");
        assert!(!body.contains_key("max_tokens"));
        assert!(!body.contains_key("max_completion_tokens"));
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["chat_template_kwargs"]["enable_thinking"], false);
        assert!(!body.contains_key("stream_options"));
    }

    #[test]
    fn one_leading_system_message_ours_then_the_clients() {
        let messages = vec![
            json!({"role": "system", "content": "Client rules."}),
            json!({"role": "user", "content": "hi"}),
            json!({"role": "developer", "content": [{"type": "text", "text": "More rules."}]}),
            json!({"role": "assistant", "content": "hello"}),
        ];
        let out = with_one_system_message(&messages, "Ours.\n");
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["role"], "system");
        assert_eq!(out[0]["content"], "Ours.\n\nClient rules.\n\nMore rules.");
        assert_eq!(out[1]["content"], "hi");
        assert_eq!(out[2]["role"], "assistant");
        let systems = out.iter().filter(|m| m["role"] == "system").count();
        assert_eq!(systems, 1);
    }

    #[test]
    fn no_system_message_when_both_are_empty() {
        let messages = vec![json!({"role": "user", "content": "hi"})];
        assert_eq!(with_one_system_message(&messages, "  "), messages);
        let only_ours = with_one_system_message(&messages, "Ours.");
        assert_eq!(only_ours[0]["content"], "Ours.");
    }

    #[test]
    fn the_cloud_route_has_a_max_tokens_floor_and_no_rejected_params() {
        let complex = route("COMPLEX");
        let req = request(json!({
            "messages": [{"role": "user", "content": "prove it"}],
            "max_completion_tokens": 100,
            "presence_penalty": 0.5, "frequency_penalty": 0.1, "stop": ["x"],
            "reasoning_effort": "high", "temperature": 0.7
        }));
        let body = for_route(&req, &complex, "grok", "Be rigorous.");
        assert_eq!(body["model"], "grok");
        assert_eq!(body["max_tokens"], 16384, "raised to the floor");
        assert!(!body.contains_key("max_completion_tokens"));
        for dropped in [
            "presence_penalty",
            "frequency_penalty",
            "stop",
            "reasoning_effort",
        ] {
            assert!(!body.contains_key(dropped), "{dropped} reached xAI");
        }
        assert_eq!(body["temperature"], 0.7);
        assert_eq!(body["messages"][0]["content"], "Be rigorous.");
        let big =
            request(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 50000}));
        assert_eq!(
            for_route(&big, &complex, "grok", "")["max_tokens"],
            50000,
            "never lowered"
        );
    }

    #[test]
    fn pass_leaves_the_length_cap_and_meta_turns_thinking_off() {
        let req = request(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 7}));
        let pass = Route {
            max_tokens: MaxTokens::Pass,
            ..route("MODERATE")
        };
        assert_eq!(for_route(&req, &pass, "m", "")["max_tokens"], 7);
        let meta = for_route(&req, &route("META"), "m", "");
        assert_eq!(meta["chat_template_kwargs"]["enable_thinking"], false);
        assert!(!meta.contains_key("max_tokens"));
    }

    #[test]
    fn thinking_is_set_keeping_other_kwargs() {
        let mut body = Map::new();
        body.insert("chat_template_kwargs".into(), json!({"custom": 1}));
        set_thinking(&mut body, false);
        assert_eq!(
            body["chat_template_kwargs"],
            json!({"custom": 1, "enable_thinking": false})
        );
        let mut empty = Map::new();
        set_thinking(&mut empty, true);
        assert_eq!(empty["chat_template_kwargs"]["enable_thinking"], true);
    }

    #[test]
    fn streams_ask_for_usage_and_keep_client_options() {
        let req = request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": false, "continuous_usage_stats": true}
        }));
        let body = for_route(&req, &route("SIMPLE"), "m", "");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stream_options"]["continuous_usage_stats"], true);
        assert_eq!(body["stream"], true);
    }
}
