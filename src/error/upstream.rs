//! Normalises a backend's own error (vLLM new and old, llama-server, xAI, plain text)
//! into the parts of OpenAI's envelope, keeping the backend's status.

use axum::http::StatusCode;
use serde_json::Value;

/// Longest piece of a non-JSON error body we quote back to the client.
const MAX_TEXT_MESSAGE: usize = 500;

/// A backend's error, in OpenAI's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamError {
    /// The status the client gets: the backend's own.
    pub status: StatusCode,
    /// What went wrong, as the backend said it.
    pub message: String,
    /// OpenAI's `type`.
    pub kind: String,
    /// OpenAI's `param`, or null.
    pub param: Value,
    /// OpenAI's `code` (text or integer, as the backend sent it), or null.
    pub code: Value,
    /// The status the backend sent. It differs from `status` when the failure is the
    /// router's, not the client's (a rejected key, a retired feature), and it is what
    /// decides retries: those would fail again.
    pub backend_status: StatusCode,
    /// The backend's `Retry-After` in seconds, passed on to the client with the error.
    pub retry_after: Option<u64>,
}

/// `text` with control characters (newlines, escapes, NUL…) written as `\n`, `\u{1b}`…
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

impl UpstreamError {
    /// Reads an error body of any known shape; `status` is the backend's HTTP status.
    pub fn parse(backend: &str, status: StatusCode, body: &[u8]) -> Self {
        let mut error = UpstreamError {
            status,
            message: String::new(),
            kind: default_kind(status).to_string(),
            param: Value::Null,
            code: Value::Null,
            backend_status: status,
            retry_after: None,
        };
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => error.read_object(&map),
            _ => error.message = text_message(body),
        }
        if error.message.is_empty() {
            let reason = status.canonical_reason().unwrap_or("error");
            error.message = format!(
                "the {backend} backend answered {} {reason}",
                status.as_u16()
            );
        }
        if rejects_our_key(status, &error.message) {
            // The router's key, not the client's request, is wrong. xAI says so with a 400.
            error.mark_routers_failure(
                "upstream_auth_failed",
                &format!("the {backend} backend rejected the router's API key"),
            );
        }
        if status == StatusCode::GONE {
            // The client asked for the virtual model; what is gone is what the router
            // asked for (xAI answers 410 to retired features such as Live Search).
            error.mark_routers_failure(
                "upstream_gone",
                &format!("the {backend} backend no longer offers what the router asked for"),
            );
        }
        // What a backend says reaches the client and the log: a newline in it would
        // write a line of the backend's choosing into the text log.
        error.message = escape_controls(&error.message);
        error
    }

    /// Makes a backend's answer that is the router's failure, not the client's request,
    /// a 502: a 4xx would make SDKs blame the caller and never retry, and a failover may
    /// help. `backend_status` keeps what the backend sent.
    fn mark_routers_failure(&mut self, code: &'static str, what: &str) {
        self.status = StatusCode::BAD_GATEWAY;
        self.kind = "upstream_error".into();
        self.code = Value::from(code);
        self.message = format!("{what}: {}", self.message);
    }

    /// Reads an error object carried inside a stream event (`{"error":{…}}`), which has
    /// no HTTP status of its own: its integer `code` is used when it is a 4xx/5xx.
    pub fn from_event(backend: &str, event: &Value) -> Self {
        let status = event
            .pointer("/error/code")
            .and_then(Value::as_u64)
            .and_then(|code| u16::try_from(code).ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        let body = serde_json::to_vec(event).unwrap_or_default();
        Self::parse(backend, status, &body)
    }

    fn read_object(&mut self, map: &serde_json::Map<String, Value>) {
        match map.get("error") {
            // OpenAI, vLLM ≥ 0.10.1, llama-server: {"error":{"message","type","param","code"}}
            Some(Value::Object(inner)) => self.read_fields(inner),
            // xAI: {"code": "...", "error": "text"}; vLLM --api-key: {"error":"Unauthorized"}
            Some(Value::String(text)) => {
                self.message = text.clone();
                if let Some(code) = map.get("code") {
                    self.code = code.clone();
                }
            }
            // vLLM before 0.10.1: {"object":"error","message","type","param","code"}
            _ => self.read_fields(map),
        }
    }

    fn read_fields(&mut self, fields: &serde_json::Map<String, Value>) {
        if let Some(message) = fields.get("message").and_then(Value::as_str) {
            self.message = message.to_string();
        }
        if let Some(kind) = fields.get("type").and_then(Value::as_str) {
            self.kind = kind.to_string();
        }
        if let Some(param) = fields.get("param") {
            self.param = param.clone();
        }
        if let Some(code) = fields.get("code") {
            self.code = code.clone();
        }
    }

    /// The OpenAI envelope for this error.
    pub fn envelope(&self) -> Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// Whether a backend refused the key the router sent (401, 403, or xAI's 400 "API key").
fn rejects_our_key(status: StatusCode, message: &str) -> bool {
    matches!(status.as_u16(), 401 | 403)
        || (status == StatusCode::BAD_REQUEST && message.to_lowercase().contains("api key"))
}

/// OpenAI's `type` for a status, used when the backend gives none.
fn default_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "upstream_error",
    }
}

fn text_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_TEXT_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(status: u16, body: &str) -> UpstreamError {
        let status = StatusCode::from_u16(status).unwrap();
        UpstreamError::parse("primary", status, body.as_bytes())
    }

    #[test]
    fn vllm_nested_shape_keeps_every_field() {
        let e = parse(
            400,
            r#"{"error":{"message":"This model's maximum context length is 32768 tokens","type":"BadRequestError","param":null,"code":400}}"#,
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("This model's maximum context length"));
        assert_eq!(e.kind, "BadRequestError");
        assert_eq!(e.code, json!(400));
    }

    #[test]
    fn vllm_old_flat_shape() {
        let e = parse(
            404,
            r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#,
        );
        assert_eq!(e.message, "The model `x` does not exist.");
        assert_eq!(e.kind, "NotFoundError");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_rejected_router_key_is_a_bad_gateway_not_the_clients_fault() {
        let e = parse(401, r#"{"error":"Unauthorized"}"#);
        assert_eq!(
            e.message,
            "the primary backend rejected the router's API key: Unauthorized"
        );
        assert_eq!(e.kind, "upstream_error");
        assert_eq!(e.code, json!("upstream_auth_failed"));
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn xai_shape_with_text_code() {
        let e = parse(
            400,
            r#"{"code":"Client specified an invalid argument","error":"Argument not supported: logprobs"}"#,
        );
        assert_eq!(e.message, "Argument not supported: logprobs");
        assert_eq!(e.code, json!("Client specified an invalid argument"));
        assert_eq!(e.kind, "invalid_request_error");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let bad_key = parse(
            400,
            r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***."}"#,
        );
        assert_eq!(bad_key.status, StatusCode::BAD_GATEWAY);
        assert!(
            bad_key
                .message
                .contains("rejected the router's API key: Incorrect API key")
        );
    }

    #[test]
    fn gone_is_the_routers_failure_and_keeps_the_backends_status() {
        let e = parse(410, r#"{"code":"x","error":"Live search is deprecated"}"#);
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        assert_eq!(e.backend_status, StatusCode::GONE);
        assert_eq!(e.code, json!("upstream_gone"));
        assert!(e.message.ends_with("asked for: Live search is deprecated"));
    }

    #[test]
    fn llama_server_shape() {
        let e = parse(
            400,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#,
        );
        assert_eq!(e.message, "the request exceeds the available context size");
        assert_eq!(e.kind, "exceed_context_size_error");
        assert_eq!(e.param, Value::Null);
    }

    #[test]
    fn plain_text_and_empty_bodies() {
        let e = parse(502, "Bad Gateway from nginx");
        assert_eq!(e.message, "Bad Gateway from nginx");
        assert_eq!(e.kind, "upstream_error");
        let empty = parse(503, "");
        assert_eq!(
            empty.message,
            "the primary backend answered 503 Service Unavailable"
        );
        let long = parse(500, &"x".repeat(2000));
        assert_eq!(long.message.chars().count(), MAX_TEXT_MESSAGE + 1);
    }

    #[test]
    fn stream_error_event_takes_status_from_code() {
        let event =
            json!({"error":{"message":"out of memory","type":"InternalServerError","code":500}});
        let e = UpstreamError::from_event("primary", &event);
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.message, "out of memory");
        let no_code = json!({"error":{"message":"boom"}});
        assert_eq!(
            UpstreamError::from_event("primary", &no_code).status,
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn envelope_is_openai_shaped() {
        let e = parse(429, r#"{"code":"rate","error":"slow down"}"#);
        let env = e.envelope();
        assert_eq!(env["error"]["message"], "slow down");
        assert_eq!(env["error"]["type"], "rate_limit_error");
        assert_eq!(env["error"]["code"], "rate");
        assert!(env["error"].get("param").is_some());
    }
}
