//! What one session log file holds: the request, the decision, each upstream call (a
//! step) and how it ended.

use serde::Serialize;
use serde_json::{Map, Value};

use super::decision::Decision;
use crate::error::Error;
use crate::names::{BackendId, Step};

/// Version of the session-log schema; bump when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered in full.
    Ok,
    /// Answered with an error (to the client, or in-band on a stream).
    Error,
    /// The client went away before the answer was complete.
    ClientDisconnected,
}

impl Outcome {
    /// The outcome's name in the log and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::ClientDisconnected => "client_disconnected",
        }
    }
}

/// One request's session log, as written to `logs/sessions/*.json`.
#[derive(Clone, Debug, Serialize)]
pub struct SessionRecord {
    /// When the request started, for the file name.
    #[serde(skip)]
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub schema_version: u32,
    pub id: String,
    pub timestamp: String,
    pub client_ip: String,
    pub user_agent: Option<String>,
    /// The client key's fingerprint, when client keys are required (never the key).
    pub client_key: Option<String>,
    pub user_query: String,
    pub client_messages: Value,
    /// For a request refused before it was understood (not JSON, not a chat): the
    /// start of its body as text. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_body: Option<String>,
    /// The images the conversation carries (count, types, size; never the bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<crate::openai::Images>,
    pub stream: bool,
    /// The route, the label and why.
    #[serde(flatten)]
    pub decision: Decision,
    /// Backends whose every endpoint was down when the request arrived.
    pub backends_down: Vec<BackendId>,
    pub steps: Vec<StepRecord>,
    pub total_ms: u64,
    /// The HTTP status the client received.
    pub http_status: u16,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Set when the record was larger than `sessions.max_file_bytes` and was cut to fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_to_fit: Option<CutToFit>,
}

/// How large a record was before it was cut to fit its file.
#[derive(Clone, Debug, Serialize)]
pub struct CutToFit {
    /// Its size as compact JSON.
    pub original_bytes: usize,
    pub max_file_bytes: usize,
}

/// One upstream call within a request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepRecord {
    /// What the call was for: `classify`, `enrich` (a search hop) or `answer`.
    pub step: Step,
    /// Which backend.
    pub provider: BackendId,
    /// The endpoint's URL that was called (the last one tried).
    pub url: String,
    /// The attempts that failed before the one `url` names, oldest first: the pool's
    /// other endpoints, retries, a call moved off an endpoint ejected while it waited.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<FailedAttempt>,
    pub model: String,
    pub messages_sent: Value,
    /// Everything sent besides `messages`.
    pub params: Value,
    pub response_content: String,
    pub reasoning_content: String,
    pub duration_ms: u64,
    pub ttft_ms: Option<u64>,
    /// The backend's HTTP status, when it answered; for a failure the router counts as
    /// its own (a rejected key, a retired feature), the status the client got (502).
    pub status: Option<u16>,
    /// What the backend really sent, only when `status` differs from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_status: Option<u16>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub error: Option<String>,
    /// The answer or the reasoning went on past `sessions.max_answer_bytes`: the record
    /// keeps their first bytes (the client got everything).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Characters of text sent in the conversation, for the usage estimate of a backend
    /// that reports none (`cost::estimate_usage`): known even when `messages_sent` is
    /// not kept.
    #[serde(skip)]
    pub sent_chars: usize,
}

/// One attempt of a step that failed before another was made.
#[derive(Clone, Debug, Serialize)]
pub struct FailedAttempt {
    /// The endpoint's URL that was called.
    pub url: String,
    pub error: String,
    pub duration_ms: u64,
}

impl StepRecord {
    /// The record of a call about to be made to `provider` with `body`: the
    /// conversation (the `conversation` field: `messages`, or `input` for the Responses
    /// API) apart from the other parameters, so review agents see exactly what was sent.
    /// Without `content` (no session log will be written) neither is copied: only the
    /// size of the conversation's text is kept.
    pub fn sending(
        step: Step,
        provider: &BackendId,
        model: &str,
        body: &Map<String, Value>,
        conversation: &str,
        content: bool,
    ) -> Self {
        let sent = body.get(conversation);
        let (messages_sent, params) = if content {
            let params: Map<String, Value> = body
                .iter()
                .filter(|(name, _)| *name != conversation)
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            (sent.cloned().unwrap_or(Value::Null), Value::Object(params))
        } else {
            (Value::Null, Value::Null)
        };
        StepRecord {
            step,
            provider: provider.clone(),
            model: model.to_string(),
            sent_chars: sent.map_or(0, super::cost::text_chars),
            messages_sent,
            params,
            ..StepRecord::default()
        }
    }

    /// Records the statuses of a call that failed with `error`.
    pub fn set_failed_status(&mut self, error: &Error) {
        if let Error::UpstreamStatus {
            error: upstream, ..
        } = error
        {
            self.status = Some(upstream.status.as_u16());
            self.backend_status = (upstream.backend_status != upstream.status)
                .then_some(upstream.backend_status.as_u16());
        }
    }
}
