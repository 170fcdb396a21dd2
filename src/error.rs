//! The request path's one error type and its OpenAI-shaped response
//! (`{"error":{"message","type","param","code"}}`), so SDKs raise the right exception;
//! backends' own error bodies are read into it by `upstream`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::names::BackendId;

mod upstream;
pub use upstream::UpstreamError;

/// Everything that can go wrong while answering a request, in user terms.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but breaks the chat-completions contract.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// The body is larger than `server.max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The body could not be read from the client.
    #[error("could not read the request body: {0}")]
    BodyUnreadable(String),
    /// The client took longer than `server.body_read_timeout_secs` to send the body.
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    /// The headers are larger than `server.max_header_bytes`.
    #[error("request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// The request has more headers than `server.max_headers`.
    #[error("the request has more headers than the limit of {limit}")]
    TooManyHeaders { limit: usize },
    /// No such path.
    #[error("unknown route: {method} {path}")]
    NotFound { method: String, path: String },
    /// The path exists but not with this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The backend could not be reached (refused, DNS, connect timeout).
    #[error("the {backend} backend is unreachable ({reason})")]
    UpstreamUnreachable { backend: BackendId, reason: String },
    /// The backend accepted the request but went silent for too long.
    #[error("the {backend} backend did not answer within {secs} s")]
    UpstreamTimeout { backend: BackendId, secs: u64 },
    /// The backend answered with an error of its own; relayed with its status.
    #[error("{}", .error.message)]
    UpstreamStatus {
        backend: BackendId,
        error: Box<UpstreamError>,
    },
    /// A route needs a backend that has no key, and `routing.missing_key = "error"`.
    #[error("this request needs the {backend} backend, which has no API key: set {variable}")]
    KeyMissing {
        backend: BackendId,
        variable: String,
    },
    /// A paid backend's budget for the period is spent, and its `when_spent = "error"`.
    #[error("the {backend} backend's budget is spent: {why}")]
    BudgetSpent {
        backend: BackendId,
        why: String,
        retry_after_secs: u64,
    },
    /// The chat carries images and no route that can see them is available.
    #[error(
        "this chat has {count} image(s) and no route here can see them: {why}. Set images = true on a route whose backend sees images and list its label in routing.image_routes (README: How a chat is routed)"
    )]
    ImagesUnsupported { count: usize, why: String },
    /// Every endpoint of the backend is down and none may be tried now.
    #[error(
        "the {backend} backend has no healthy endpoint ({endpoints} of {endpoints} down); retry shortly"
    )]
    NoHealthyEndpoint {
        backend: BackendId,
        endpoints: usize,
    },
    /// Client keys are required and the request has none, or a wrong one.
    #[error("{}", if *missing { "an API key is required: send Authorization: Bearer <key>" } else { "the API key is not valid" })]
    Unauthorized { missing: bool },
    /// `server.max_concurrent_requests` chats are already being answered.
    #[error("the router is at its limit of {limit} concurrent requests; retry shortly")]
    Overloaded { limit: usize },
    /// This client key started `server.key_requests_per_minute` chats in the last minute.
    #[error(
        "this API key is over its limit of {limit} requests per minute; retry in {retry_after_secs} s"
    )]
    RateLimited { limit: u32, retry_after_secs: u64 },
    /// This client key already has `server.key_max_streams` streams open.
    #[error("this API key already has {limit} streams open, its limit; retry when one ends")]
    TooManyStreams { limit: u32 },
    /// The router is shutting down and its grace period is over.
    #[error("the router is shutting down; please retry")]
    ShuttingDown,
    /// The dashboard refuses this client (not loopback without an admin key, or a
    /// request from another site).
    #[error("{reason}")]
    Forbidden { reason: String },
    /// The dashboard has an admin key and the request has none, or a wrong one.
    #[error("{}", if *missing { "the dashboard needs the admin key: sign in at /dashboard/login or send Authorization: Bearer <admin key>" } else { "the admin key is not valid" })]
    AdminKeyRequired { missing: bool },
    /// `dashboard.max_live_feeds` live feeds are already open.
    #[error(
        "the dashboard already has {limit} live feeds open, its limit; close a tab or retry shortly"
    )]
    TooManyFeeds { limit: usize },
    /// The dashboard could not read the session logs (a missing folder, a hung disk).
    #[error("cannot read the session logs: {reason}")]
    SessionsUnreadable { reason: String },
    /// The backend answered something that is not the protocol we speak.
    #[error("the {backend} backend sent an invalid response ({reason})")]
    UpstreamProtocol { backend: BackendId, reason: String },
}

impl Error {
    /// A 400 for a field that is missing or has the wrong type.
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Error::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidJson(_)
            | Error::InvalidRequest { .. }
            | Error::BodyUnreadable(_)
            | Error::ImagesUnsupported { .. } => StatusCode::BAD_REQUEST,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::HeadersTooLarge { .. } | Error::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::RateLimited { .. }
            | Error::TooManyStreams { .. }
            | Error::BudgetSpent { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Unauthorized { .. } | Error::AdminKeyRequired { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::UpstreamUnreachable { .. } | Error::UpstreamProtocol { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Error::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::ShuttingDown
            | Error::KeyMissing { .. }
            | Error::NoHealthyEndpoint { .. }
            | Error::TooManyFeeds { .. }
            | Error::SessionsUnreadable { .. }
            | Error::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamStatus { error, .. } => error.status,
        }
    }

    /// The envelope's `type`, in OpenAI's vocabulary.
    pub fn kind(&self) -> &str {
        match self {
            Error::InvalidJson(_)
            | Error::InvalidRequest { .. }
            | Error::BodyTooLarge { .. }
            | Error::BodyUnreadable(_)
            | Error::BodyTimeout { .. }
            | Error::HeadersTooLarge { .. }
            | Error::TooManyHeaders { .. }
            | Error::NotFound { .. }
            | Error::ImagesUnsupported { .. }
            | Error::MethodNotAllowed { .. } => "invalid_request_error",
            // OpenAI's own type for its per-key limits.
            Error::RateLimited { .. } | Error::TooManyStreams { .. } => "requests",
            Error::Unauthorized { .. } | Error::AdminKeyRequired { .. } => "authentication_error",
            Error::Forbidden { .. } => "permission_error",
            // OpenAI's own type for a spent quota: SDKs do not retry it as a rate limit.
            Error::BudgetSpent { .. } => "insufficient_quota",
            Error::UpstreamUnreachable { .. }
            | Error::UpstreamTimeout { .. }
            | Error::UpstreamProtocol { .. } => "upstream_error",
            Error::ShuttingDown
            | Error::KeyMissing { .. }
            | Error::NoHealthyEndpoint { .. }
            | Error::TooManyFeeds { .. }
            | Error::SessionsUnreadable { .. }
            | Error::Overloaded { .. } => "server_error",
            Error::UpstreamStatus { error, .. } => &error.kind,
        }
    }

    /// The envelope's `code`: a short machine-readable name, or what the backend sent.
    pub fn code(&self) -> Value {
        let name = match self {
            Error::InvalidJson(_) => "invalid_json",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::BodyTooLarge { .. } => "request_too_large",
            Error::BodyUnreadable(_) => "body_unreadable",
            Error::BodyTimeout { .. } => "body_timeout",
            Error::HeadersTooLarge { .. } => "headers_too_large",
            Error::TooManyHeaders { .. } => "too_many_headers",
            Error::RateLimited { .. } => "rate_limit_exceeded",
            Error::TooManyStreams { .. } => "too_many_streams",
            Error::NotFound { .. } => "unknown_route",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::ImagesUnsupported { .. } => "images_not_supported",
            Error::BudgetSpent { .. } => "budget_exceeded",
            Error::Unauthorized { .. } => "invalid_api_key",
            Error::AdminKeyRequired { .. } => "invalid_admin_key",
            Error::Forbidden { .. } => "dashboard_forbidden",
            Error::TooManyFeeds { .. } => "too_many_live_feeds",
            Error::SessionsUnreadable { .. } => "sessions_unreadable",
            Error::UpstreamUnreachable { .. } => "upstream_unreachable",
            Error::UpstreamTimeout { .. } => "upstream_timeout",
            Error::UpstreamProtocol { .. } => "upstream_invalid_response",
            Error::ShuttingDown => "router_shutdown",
            Error::Overloaded { .. } => "router_overloaded",
            Error::NoHealthyEndpoint { .. } => "backend_unavailable",
            // `xai_not_configured` for the seed's xAI, as before.
            Error::KeyMissing { backend, .. } => {
                return Value::from(format!("{backend}_not_configured"));
            }
            Error::UpstreamStatus { error, .. } => return error.code.clone(),
        };
        Value::from(name)
    }

    /// The `Retry-After` to send with this error, in seconds, when waiting will help.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Overloaded { .. } | Error::TooManyStreams { .. } => Some(1),
            Error::TooManyFeeds { .. } => Some(5),
            // Probes check a down endpoint again within seconds.
            Error::NoHealthyEndpoint { .. } => Some(5),
            Error::RateLimited {
                retry_after_secs, ..
            }
            | Error::BudgetSpent {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // The backend's own wait, passed on (a 429 or 503 that outlasted the retries).
            Error::UpstreamStatus { error, .. } => error.retry_after,
            _ => None,
        }
    }

    fn param(&self) -> Value {
        match self {
            Error::InvalidRequest { param, .. } => param.clone().map_or(Value::Null, Value::from),
            Error::UpstreamStatus { error, .. } => error.param.clone(),
            _ => Value::Null,
        }
    }

    /// The OpenAI error envelope for this error, as JSON.
    pub fn envelope(&self) -> Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

/// What the request-log layer needs to log an error once, kept as a response extension.
#[derive(Clone, Debug)]
pub struct LoggedError(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.envelope())).into_response();
        if let Some(secs) = self.retry_after_secs() {
            // SDKs honour it: they come back when asked instead of hammering.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        // No logging here: the request layer logs it once, with the request's span.
        // Escaped whatever the variant: no text from outside can start a new log line.
        response
            .extensions_mut()
            .insert(LoggedError(upstream::escape_controls(&self.to_string())));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_all_four_fields() {
        let err = Error::invalid("`messages` is required", "messages");
        let body = err.envelope();
        assert_eq!(body["error"]["message"], "`messages` is required");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn router_failures_name_the_backend_not_internals() {
        let err = Error::UpstreamUnreachable {
            backend: "primary".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            err.to_string(),
            "the primary backend is unreachable (connection refused)"
        );
        let timeout = Error::UpstreamTimeout {
            backend: "primary".into(),
            secs: 30,
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
