//! `[routing]`, `[meta]` and `[prices]`: how requests are classified, how client task
//! prompts are recognised, and what models cost.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[routing]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// The backend that labels each request.
    pub backend: String,
    /// The label used when the classifier fails, is slow, or answers without a label.
    pub fallback: String,
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
    /// A route whose backend (or search backend) has no API key: `fallback` answers it
    /// another way (its failover routes, else the fallback label's; ENRICH without its
    /// search) and the session log says why; `error` refuses it with a 503.
    pub missing_key: MissingKey,
    /// How the classifier's answer is held to the route table's labels: `none` (free
    /// text, read leniently: for reasoning classifiers), `structured_outputs` (vLLM
    /// 0.12 and later), `guided_choice` (older vLLM) or `grammar` (llama-server). The
    /// constrained modes also turn the classifier's thinking off.
    pub constrain: Constrain,
    /// Ask the classifier for log-probabilities and record the label's probability and
    /// the runner-up's (`classification_confidence`).
    pub logprobs: bool,
    /// A label less probable than this is "unsure" (0 turns the check off): the decision
    /// takes `unsure_label`, or the fallback rules when it is empty, and says so.
    pub min_confidence: f64,
    /// The label an unsure decision takes; empty for the fallback rules.
    pub unsure_label: String,
    /// Within this many seconds of its last turn, a follow-up is never routed lower (in
    /// `sticky_order`) than the highest route its conversation took; 0 turns it off.
    pub sticky_secs: u64,
    /// The labels from lowest to highest for `sticky_secs`; others are never raised.
    pub sticky_order: Vec<String>,
    /// Where a chat carrying images goes when its label's route cannot see them: the
    /// first of these labels whose route can (`images = true`) and has its backend's key.
    pub image_routes: Vec<String>,
}

/// How the classifier's output is held to the labels.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Constrain {
    /// Free generation, the first label in the reply.
    None,
    /// vLLM ≥ 0.12: `structured_outputs: {choice: [...]}`.
    StructuredOutputs,
    /// vLLM before 0.12: `guided_choice: [...]`.
    GuidedChoice,
    /// llama.cpp's llama-server: a GBNF `grammar` that allows only the labels.
    Grammar,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        let mut classifier_params = serde_json::Map::new();
        classifier_params.insert("temperature".into(), serde_json::Value::from(0.0));
        RoutingConfig {
            backend: "classifier".into(),
            fallback: "MODERATE".into(),
            fallback_rules: Vec::new(),
            context_messages: 4,
            context_chars: 1500,
            max_input_chars: 4000,
            classifier_params,
            cache_entries: 1024,
            cache_ttl_secs: 600,
            missing_key: MissingKey::Fallback,
            constrain: Constrain::None,
            logprobs: false,
            min_confidence: 0.0,
            unsure_label: String::new(),
            sticky_secs: 0,
            sticky_order: ["SIMPLE", "MODERATE", "COMPLEX"].map(String::from).to_vec(),
            image_routes: vec!["COMPLEX".into()],
        }
    }
}

/// What a route does when a backend it needs has no API key.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MissingKey {
    /// Answer another way and say so in the session log.
    Fallback,
    /// Answer 503 naming the missing variable.
    Error,
}

/// One `[[routing.fallback_rules]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    /// The label this rule gives.
    pub label: String,
    /// Words or phrases; any one of them is enough.
    pub keywords: Vec<String>,
}

/// `[meta]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    /// Request headers whose non-empty value marks a task prompt (Open WebUI's
    /// `X-OpenWebUI-Task`, set up as a connection header).
    pub headers: Vec<String>,
    /// The TOML file of text rules that recognise task prompts; empty for none.
    pub rules_file: PathBuf,
    /// The older name of `routes.META.thinking`: `false` lets the client decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_thinking: Option<bool>,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            headers: vec!["x-openwebui-task".into()],
            rules_file: "config/meta_rules.toml".into(),
            disable_thinking: None,
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
