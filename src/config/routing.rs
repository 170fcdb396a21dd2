//! `[routing]`, `[meta]` and `[prices]`: how requests are classified, how client task
//! prompts are recognised, and what models cost.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A classification label, as the classifier writes it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Label {
    /// Greetings, small talk, trivial questions: the primary.
    Simple,
    /// Coding, analysis, explanations: the primary.
    Moderate,
    /// Research-level, novel problems: xAI.
    Complex,
    /// Needs real-time data: xAI gathers, the primary answers.
    Enrich,
    /// The client's own task prompts: the primary, without thinking.
    Meta,
}

/// `[routing]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The label used when the classifier fails, is slow, or answers without a label.
    pub fallback: Label,
    /// Keyword rules that refine the fallback: the first rule with a keyword in the last
    /// user message (case-insensitive) gives the label instead.
    pub fallback_rules: Vec<KeywordRule>,
    /// How many earlier messages the classifier sees besides the last user message.
    pub context_messages: usize,
    /// At most this many characters of earlier messages (the most recent are kept).
    pub context_chars: usize,
    /// A last user message longer than this is cut to head + tail for classification.
    pub max_input_chars: usize,
    /// Extra fields for the classification request (e.g. `temperature`).
    pub classifier_params: serde_json::Map<String, serde_json::Value>,
    /// Decisions remembered for an identical classifier input (regenerate, retries);
    /// 0 turns the cache off.
    pub cache_entries: usize,
    /// How long a remembered decision is used.
    pub cache_ttl_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        let mut classifier_params = serde_json::Map::new();
        classifier_params.insert("temperature".into(), serde_json::Value::from(0.0));
        RoutingConfig {
            fallback: Label::Moderate,
            fallback_rules: Vec::new(),
            context_messages: 4,
            context_chars: 1500,
            max_input_chars: 4000,
            classifier_params,
            cache_entries: 1024,
            cache_ttl_secs: 600,
        }
    }
}

/// One `[[routing.fallback_rules]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    /// The label this rule gives.
    pub label: Label,
    /// Words or phrases; any one of them is enough.
    pub keywords: Vec<String>,
}

/// `[meta]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// Request headers whose non-empty value marks a task prompt (Open WebUI's
    /// `X-OpenWebUI-Task`, set up as a connection header).
    pub headers: Vec<String>,
    /// The TOML file of text rules that recognise task prompts; empty for none.
    pub rules_file: PathBuf,
    /// Send `chat_template_kwargs.enable_thinking = false` with META requests, so a
    /// reasoning model does not spend a title's budget on thinking.
    pub disable_thinking: bool,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            headers: vec!["x-openwebui-task".into()],
            rules_file: "config/meta_rules.toml".into(),
            disable_thinking: true,
        }
    }
}

/// What a model costs, in USD per million tokens.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input (prompt) tokens.
    pub input_per_million: f64,
    /// Per million output (completion) tokens.
    pub output_per_million: f64,
}

/// xAI's prices as of 2026-05: the retired grok-4-1-fast slugs are served by grok-4.3.
pub(crate) fn default_prices() -> std::collections::BTreeMap<String, Price> {
    let grok = Price {
        input_per_million: 1.25,
        output_per_million: 2.50,
    };
    [
        "grok-4-1-fast-reasoning",
        "grok-4-1-fast-non-reasoning",
        "grok-4.3",
    ]
    .into_iter()
    .map(|model| (model.to_string(), grok))
    .collect()
}

/// `[failover]`: answering from the other backend when the chosen one fails before
/// anything reached the client.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// Primary unreachable or failing → xAI answers. Off by default: it costs money.
    pub primary_to_xai: bool,
    /// xAI unreachable or failing on COMPLEX → the primary answers.
    pub xai_to_primary: bool,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            primary_to_xai: false,
            xai_to_primary: true,
        }
    }
}
