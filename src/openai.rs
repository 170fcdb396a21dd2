//! The few typed parts of OpenAI's chat wire format the router reads; everything else
//! stays a `serde_json` value and passes through untouched.

use serde_json::{Map, Value};

use crate::error::Error;

/// A validated `POST /v1/chat/completions` body.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The whole body as the client sent it.
    pub body: Map<String, Value>,
    /// Whether the client asked for an SSE stream.
    pub stream: bool,
    /// Whether the client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
}

impl ChatRequest {
    /// Parses and validates a request body: a JSON object with a non-empty `messages`
    /// array of objects that each have a string `role`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson(e.to_string()))?;
        let Value::Object(body) = value else {
            return Err(Error::InvalidRequest {
                message: "the request body must be a JSON object".into(),
                param: None,
            });
        };
        validate_messages(body.get("messages"))?;
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Error::invalid("`stream` must be a boolean", "stream")),
        };
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(options)) => options
                .get("include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            Some(_) => {
                return Err(Error::invalid(
                    "`stream_options` must be an object",
                    "stream_options",
                ));
            }
        };
        Ok(ChatRequest {
            body,
            stream,
            include_usage,
        })
    }

    /// Checks `n`, the number of choices asked for: absent, or a whole number from 1 to
    /// `max` (`server.max_choices`). Each choice is a whole answer the backend
    /// generates, and local backends get no `max_tokens`: `n = 1000` would turn one
    /// request into a thousand.
    pub fn check_choices(&self, max: u32) -> Result<(), Error> {
        let n = match self.body.get("n") {
            None | Some(Value::Null) => return Ok(()),
            Some(n) => n,
        };
        match n.as_u64() {
            Some(count) if count > u64::from(max) => Err(Error::invalid(
                format!("`n` is {count}, more than this router's limit of {max} choices"),
                "n",
            )),
            Some(1..) => Ok(()),
            _ => Err(Error::invalid(
                format!("`n` must be a whole number from 1 to {max}"),
                "n",
            )),
        }
    }

    /// The conversation (validated to be a non-empty array of objects).
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The text of the last user message, or an empty string when there is none.
    pub fn last_user_text(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| content_text(m.get("content")))
            .unwrap_or_default()
    }
}

fn validate_messages(messages: Option<&Value>) -> Result<(), Error> {
    let messages = match messages {
        None | Some(Value::Null) => {
            return Err(Error::invalid("`messages` is required", "messages"));
        }
        Some(Value::Array(list)) => list,
        Some(_) => return Err(Error::invalid("`messages` must be an array", "messages")),
    };
    if messages.is_empty() {
        return Err(Error::invalid(
            "`messages` must contain at least one message",
            "messages",
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        let Some(fields) = message.as_object() else {
            return Err(Error::invalid(
                format!("`messages[{i}]` must be an object"),
                format!("messages[{i}]"),
            ));
        };
        if !fields.get("role").is_some_and(Value::is_string) {
            return Err(Error::invalid(
                format!("`messages[{i}].role` must be a string"),
                format!("messages[{i}].role"),
            ));
        }
        match fields.get("content") {
            None | Some(Value::Null | Value::String(_) | Value::Array(_)) => {}
            Some(_) => {
                return Err(Error::invalid(
                    format!("`messages[{i}].content` must be a string or an array of parts"),
                    format!("messages[{i}].content"),
                ));
            }
        }
    }
    Ok(())
}

/// The images `messages` carry (`image_url` parts), never their bytes: for routing
/// (a text model cannot see them) and the session log.
pub fn images(messages: &[Value]) -> Images {
    let mut images = Images::default();
    for ImagePart { url, .. } in image_parts(messages) {
        let (kind, bytes) = match url.strip_prefix("data:") {
            // `data:image/png;base64,…`: the type, and the decoded size.
            Some(rest) => {
                let payload = rest.split_once(',').map_or("", |(_, p)| p);
                (media_type(rest), (payload.len() as u64) * 3 / 4)
            }
            None => ("link", 0),
        };
        images.count += 1;
        images.bytes += bytes;
        // A handful of types at most: a list that grew with the client's parts would
        // make this loop quadratic, and the log would carry what the client wrote.
        if images.types.len() < MAX_IMAGE_TYPES && !images.types.iter().any(|t| t == kind) {
            images.types.push(kind.to_string());
        }
    }
    images
}

/// One `image_url` part of a conversation: where it is, and its URL (a `data:` URL or a
/// link; empty when the part has none).
#[derive(Clone, Copy, Debug)]
pub struct ImagePart<'a> {
    /// The message's index in `messages`.
    pub message: usize,
    /// The part's index in that message's `content`.
    pub part: usize,
    pub url: &'a str,
}

/// Every `image_url` part of `messages`, in order.
pub fn image_parts(messages: &[Value]) -> impl Iterator<Item = ImagePart<'_>> {
    messages.iter().enumerate().flat_map(|(m, message)| {
        let parts = message.get("content").and_then(Value::as_array);
        parts
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(move |(p, part)| {
                if part.get("type").and_then(Value::as_str) != Some("image_url") {
                    return None;
                }
                let url = part
                    .pointer("/image_url/url")
                    .or_else(|| part.get("image_url"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Some(ImagePart {
                    message: m,
                    part: p,
                    url,
                })
            })
    })
}

/// Distinct image types kept in `Images::types`.
const MAX_IMAGE_TYPES: usize = 8;

/// The media type a `data:` URL (without `data:`) declares, when it looks like one
/// (`type/subtype`, short); `other` for anything else, so no image bytes reach the log.
fn media_type(rest: &str) -> &str {
    let kind = rest.split([';', ',']).next().unwrap_or("");
    let plausible = kind.contains('/')
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+.-".contains(&b));
    if plausible { kind } else { "other" }
}

/// What images a conversation carries: how many, their types (`image/png`, or `link`
/// for a URL the backend fetches) and the decoded size of those sent inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Images {
    pub count: usize,
    pub types: Vec<String>,
    pub bytes: u64,
}

/// The text of a message's `content`: the string itself, or the `text` parts of a list
/// joined by newlines (images and other parts are skipped).
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_counted_with_a_few_plausible_types_and_never_their_bytes() {
        let mut parts = vec![
            serde_json::json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}),
            serde_json::json!({"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}),
            serde_json::json!({"type": "image_url", "image_url": "data:SECRETBYTESWITHOUTSEPARATOR"}),
        ];
        for i in 0..5000 {
            parts.push(
                serde_json::json!({"type": "image_url", "image_url": format!("data:t{i}/x,AA")}),
            );
        }
        let messages = vec![serde_json::json!({"role": "user", "content": parts})];
        let images = images(&messages);
        assert_eq!(images.count, 5003);
        assert_eq!(images.types.len(), MAX_IMAGE_TYPES);
        assert_eq!(images.types[..3], ["image/png", "link", "other"]);
        assert!(!images.types.iter().any(|t| t.contains("SECRET")));
    }
    use axum::http::StatusCode;

    fn parse(body: &str) -> Result<ChatRequest, Error> {
        ChatRequest::parse(body.as_bytes())
    }

    fn param_of(body: &str) -> String {
        let err = parse(body).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
        err.envelope()["error"]["param"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn accepts_a_minimal_request_and_reads_flags() {
        let req = parse(r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert!(req.stream);
        assert!(req.include_usage);
        assert_eq!(req.last_user_text(), "hi");
        let plain = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(!plain.stream);
    }

    #[test]
    fn rejects_bad_shapes_naming_the_field() {
        assert!(matches!(parse("{not json"), Err(Error::InvalidJson(_))));
        assert!(matches!(
            parse("[1,2]"),
            Err(Error::InvalidRequest { param: None, .. })
        ));
        assert_eq!(param_of(r#"{"model":"x"}"#), "messages");
        assert_eq!(param_of(r#"{"messages":"hi"}"#), "messages");
        assert_eq!(param_of(r#"{"messages":[]}"#), "messages");
        assert_eq!(param_of(r#"{"messages":[42]}"#), "messages[0]");
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"a"},{"content":"b"}]}"#),
            "messages[1].role"
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":7}]}"#),
            "messages[0].content"
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"a"}],"stream":"yes"}"#),
            "stream"
        );
    }

    #[test]
    fn choices_are_bounded_and_whole() {
        let with_n = |n: &str| {
            parse(&format!(
                r#"{{"messages":[{{"role":"user","content":"hi"}}],"n":{n}}}"#
            ))
            .unwrap()
            .check_choices(8)
        };
        for fine in ["null", "1", "8"] {
            assert!(with_n(fine).is_ok(), "{fine}");
        }
        for bad in [
            "9",
            "1000",
            "0",
            "-1",
            "2.5",
            "\"3\"",
            "18446744073709551616",
        ] {
            let error = with_n(bad).unwrap_err();
            assert_eq!(error.envelope()["error"]["param"], "n", "{bad}");
        }
        assert!(
            with_n("1000")
                .unwrap_err()
                .to_string()
                .contains("limit of 8")
        );
    }

    #[test]
    fn last_user_text_reads_list_content_and_skips_images() {
        let req = parse(
            r#"{"messages":[
                {"role":"user","content":"first"},
                {"role":"assistant","content":"ok"},
                {"role":"user","content":[{"type":"text","text":"what is"},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"this?"}]},
                {"role":"assistant","content":null,"tool_calls":[]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(req.last_user_text(), "what is\nthis?");
    }
}
