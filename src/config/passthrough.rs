//! `[passthrough."/v1/PATH"]`: the rest of the OpenAI API (`/v1/embeddings`,
//! `/v1/completions`, …) passed to a backend as it came, with the same client keys,
//! limits, timeouts, metrics and a lean session record. No classification, no prompts.

use serde::{Deserialize, Serialize};

/// One passed-through path.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassthroughConfig {
    /// The backend that answers it (its `model` is what the request names).
    pub backend: String,
    /// Backends tried in order when it fails before answering (unreachable, timed out,
    /// 429, 5xx).
    pub failover: Vec<String>,
}

/// Paths the router answers itself, never passed through.
pub const OWN_PATHS: [&str; 2] = ["/v1/chat/completions", "/v1/models"];

/// Whether `path` may be passed through: `/v1/` and a plain lower-case path after it.
pub fn valid_path(path: &str) -> bool {
    path.strip_prefix("/v1/").is_some_and(|rest| {
        !rest.is_empty()
            && !rest.ends_with('/')
            && !rest.contains("//")
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_-.".contains(&b))
            && !rest.split('/').any(|part| part == "." || part == "..")
    }) && !OWN_PATHS.contains(&path)
}
