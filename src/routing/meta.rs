//! Recognises a client's own task prompts (titles, tags, follow-ups…), which are
//! answered as META without paying for classification. Best evidence first: a task
//! header, then the configured task model, then the text rules. What only looks like a
//! task is flagged (`meta_suspect`), never routed.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::{Config, MetaConfig};
use crate::openai::ChatRequest;

use super::meta_rules::{MetaRules, MetaRulesError};

/// What marks a task prompt, from `[meta]` and `server.task_model`.
#[derive(Debug)]
pub struct MetaDetector {
    headers: Vec<String>,
    task_model: String,
    /// Swapped whole when the rules file changes (`app::hot_reload`); each request
    /// reads one snapshot.
    rules: Arc<ArcSwap<MetaRules>>,
}

/// What META detection found in a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MetaFinding {
    /// The evidence that makes it a task prompt (`meta_match`); `None` for a normal chat.
    pub evidence: Option<String>,
    /// Why a normal chat still looks like a client's task (`meta_suspect`): a flag,
    /// never a route.
    pub suspect: Option<String>,
}

impl MetaDetector {
    /// The detector `config` describes, with the text `rules` loaded from its file.
    pub fn new(config: &Config, rules: MetaRules) -> Self {
        MetaDetector {
            headers: config.meta.headers.clone(),
            task_model: config.server.task_model.trim().to_string(),
            rules: Arc::new(ArcSwap::from_pointee(rules)),
        }
    }

    /// The text rules' handle, for the watcher that swaps in a reloaded file.
    pub fn rules(&self) -> Arc<ArcSwap<MetaRules>> {
        self.rules.clone()
    }

    /// Whether `request` is a task prompt and, if not, whether it looks like one; with
    /// one snapshot of the rules, so a reload never splits a request's two answers.
    pub fn examine(&self, request: &ChatRequest, headers: &HeaderMap) -> MetaFinding {
        let rules = self.rules.load();
        match self.detect(&rules, request, headers) {
            Some(evidence) => MetaFinding {
                evidence: Some(evidence),
                suspect: None,
            },
            None => MetaFinding {
                evidence: None,
                suspect: self.suspect(&rules, request, headers),
            },
        }
    }

    /// The name of the evidence that marks `request` as a task prompt, for `meta_match`;
    /// `None` for a normal chat. An empty task header (Open WebUI sends one on normal
    /// chats) is not evidence.
    fn detect(
        &self,
        rules: &MetaRules,
        request: &ChatRequest,
        headers: &HeaderMap,
    ) -> Option<String> {
        for name in &self.headers {
            if let Some(task) = headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
            {
                return Some(format!("header {}: {task}", name.to_lowercase()));
            }
        }
        if !self.task_model.is_empty()
            && request.body.get("model").and_then(Value::as_str) == Some(self.task_model.as_str())
        {
            return Some(format!("task model {}", self.task_model));
        }
        rules
            .detect(request.messages())
            .map(|rule| format!("rule {rule}"))
    }

    /// Why a request `detect` did not call META still looks like a client's task (a
    /// `[[suspect]]` table it fits), for `meta_suspect`: a flag, never a route. A task
    /// header that is present but empty is the client saying "a user's chat", so then
    /// nothing is suspect.
    fn suspect(
        &self,
        rules: &MetaRules,
        request: &ChatRequest,
        headers: &HeaderMap,
    ) -> Option<String> {
        if self
            .headers
            .iter()
            .any(|name| headers.contains_key(name.as_str()))
        {
            return None;
        }
        rules
            .suspect(request.messages())
            .map(|name| format!("suspect {name}"))
    }
}

/// The text rules named by `meta.rules_file`; none when it is empty.
pub fn load_rules(config: &MetaConfig) -> Result<MetaRules, MetaRulesError> {
    if config.rules_file.as_os_str().is_empty() {
        return MetaRules::parse("");
    }
    MetaRules::load(&config.rules_file)
}
