//! The routing decision: META detection, the classifier and its cache, the route table
//! and its labels, the fallback, and which route really answers given the keys there are.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::names::Label;
use crate::upstream::{Backend, Backends};

pub mod answering;
pub mod cache;
pub mod classify;
pub mod constrain;
pub mod decide;
pub mod meta;
mod meta_match;
pub mod meta_rules;
pub mod sticky;
pub mod table;

pub use classify::InputLimits;
pub use table::{Route, RouteTable};

/// Everything a decision needs, built once at start-up.
#[derive(Debug)]
pub struct Routing {
    /// The route table.
    pub table: Arc<RouteTable>,
    /// The backend that labels requests (`routing.backend`).
    pub classifier: Arc<Backend>,
    /// How much of the conversation the classifier sees.
    pub limits: InputLimits,
    /// Extra fields of the classification request.
    pub classifier_params: Map<String, Value>,
    /// Keyword rules that refine the fallback.
    pub fallback_rules: Vec<(Label, Vec<String>)>,
    /// Recent classifier decisions by input.
    pub cache: cache::ClassifyCache,
    /// What marks a client task prompt.
    pub meta: meta::MetaDetector,
    /// Most bytes of the classifier's reply kept in the record (`sessions.max_answer_bytes`).
    pub answer_cap: usize,
    /// The labels the classifier may give (its constraint, and what confidence is over).
    pub choosable: Vec<Label>,
    /// A label less probable than this is unsure (`routing.min_confidence`; 0: never).
    pub min_confidence: f64,
    /// What an unsure decision takes (`routing.unsure_label`); `None`: the fallback rules.
    pub unsure_label: Option<Label>,
    /// Each conversation's highest route, for follow-ups (`routing.sticky_secs`).
    pub sticky: sticky::Sticky,
}

/// Why routing could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// `routing.backend` names no backend (the config is validated, so only in tests).
    #[error("routing.backend names no backend: {0}")]
    NoClassifier(String),
    /// The META rules file could not be loaded.
    #[error(transparent)]
    Rules(#[from] meta_rules::MetaRulesError),
}

impl Routing {
    /// Routing as `config` describes it, classifying with its backend from `backends`.
    pub fn build(config: &Config, backends: &Backends) -> Result<Self, RoutingError> {
        let classifier = backends
            .get(&config.routing.backend)
            .cloned()
            .ok_or_else(|| RoutingError::NoClassifier(config.routing.backend.clone()))?;
        let rules = meta::load_rules(&config.meta)?;
        let table = RouteTable::new(config);
        let routing = &config.routing;
        let choosable = constrain::choosable(&table);
        let classifier_params = constrain::shape(
            &routing.classifier_params,
            routing.constrain,
            routing.logprobs,
            &choosable,
        );
        Ok(Routing {
            table: Arc::new(table),
            classifier,
            limits: InputLimits::of(&config.routing),
            classifier_params,
            fallback_rules: decide::keyword_rules(&config.routing.fallback_rules),
            cache: cache::ClassifyCache::new(
                config.routing.cache_entries,
                std::time::Duration::from_secs(config.routing.cache_ttl_secs),
            ),
            meta: meta::MetaDetector::new(config, rules),
            answer_cap: config.sessions.max_answer_bytes,
            choosable,
            min_confidence: routing.min_confidence,
            unsure_label: (!routing.unsure_label.is_empty())
                .then(|| Label::from(routing.unsure_label.as_str())),
            sticky: sticky::Sticky::new(routing),
        })
    }
}
