//! The routing decision: META detection first (no classifier call), then the
//! classifier's label, or the configured fallback when it has none. `pipeline` runs it.

use axum::http::HeaderMap;

pub use crate::config::Label;
use crate::config::RoutingConfig;
use crate::edge::state::AppState;
use crate::openai::chat::ChatRequest;
use crate::prompts::PromptSet;
use crate::record::session::Session;
use crate::routing::classify;
use crate::routing::meta;

/// Where a request is answered: the `route` of the session log and the
/// `x-ai-router-route` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The local primary model (SIMPLE, MODERATE).
    Primary,
    /// xAI's Grok (COMPLEX).
    Xai,
    /// xAI gathers real-time context, then the primary answers (ENRICH).
    Enrich,
    /// A client task prompt: the primary with the META prompt, no thinking.
    Meta,
}

impl Route {
    /// The route's name on the wire and in the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Primary => "primary",
            Route::Xai => "xai",
            Route::Enrich => "enrich",
            Route::Meta => "meta",
        }
    }
}

impl Label {
    /// Every label, in the order the classifier prompt lists them.
    pub const ALL: [Label; 5] = [
        Label::Simple,
        Label::Moderate,
        Label::Complex,
        Label::Enrich,
        Label::Meta,
    ];

    /// The label as the classifier writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Simple => "SIMPLE",
            Label::Moderate => "MODERATE",
            Label::Complex => "COMPLEX",
            Label::Enrich => "ENRICH",
            Label::Meta => "META",
        }
    }

    /// The route that answers this label.
    pub fn route(self) -> Route {
        match self {
            Label::Simple | Label::Moderate => Route::Primary,
            Label::Complex => Route::Xai,
            Label::Enrich => Route::Enrich,
            Label::Meta => Route::Meta,
        }
    }
}

/// A route and the evidence for it, copied into the session log.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The chosen route.
    pub route: Route,
    /// The label (SIMPLE … META) from the classifier, a META rule or the fallback.
    pub classification: Option<Label>,
    /// The classifier's raw reply.
    pub classification_raw: Option<String>,
    /// Time spent classifying.
    pub classification_ms: u64,
    /// Why the fallback label was used instead of the classifier's, if it was.
    pub classification_fallback: Option<String>,
    /// Which META rule matched, if any.
    pub meta_match: Option<String>,
    /// Whether the label came from the classification cache.
    pub classification_cached: bool,
}

impl Decision {
    /// A decision for `label` with no classification evidence.
    pub fn labelled(label: Label) -> Self {
        Decision {
            route: label.route(),
            classification: Some(label),
            classification_raw: None,
            classification_ms: 0,
            classification_fallback: None,
            meta_match: None,
            classification_cached: false,
        }
    }
}

/// Decides how to answer `request`, with the request's one snapshot of the prompts. The classifier's call is added to `session` as a
/// step; META requests never reach it.
pub async fn decide(
    state: &AppState,
    prompts: &PromptSet,
    request: &ChatRequest,
    headers: &HeaderMap,
    session: &mut Session,
) -> Decision {
    if let Some(rule) = meta::detect(state, request, headers) {
        return Decision {
            meta_match: Some(rule),
            ..Decision::labelled(Label::Meta)
        };
    }
    let outcome = classify::classify(state, prompts, request.messages(), Some(session)).await;
    let failure = match (outcome.label, outcome.failure) {
        (Some(Label::Meta), _) => Some(
            "the classifier said META, which only task headers, the task model or META rules decide"
                .to_string(),
        ),
        (Some(_), _) => None,
        (None, failure) => Some(failure.unwrap_or_else(|| "the classifier gave no label".into())),
    };
    let (label, fallback) = match (outcome.label, failure) {
        (Some(label), None) => (label, None),
        (_, why) => {
            // Keywords are looked for in what the classifier saw, not in attachments.
            let query = classify::cut_middle(
                &request.last_user_text(),
                state.config.routing.max_input_chars,
                |_| String::new(),
            );
            let (label, rule) = fallback_label(&state.config.routing, &query);
            let why = why.unwrap_or_default();
            (label, Some(format!("{why}; used {}{rule}", label.as_str())))
        }
    };
    Decision {
        route: label.route(),
        classification: Some(label),
        classification_raw: Some(outcome.raw),
        classification_ms: outcome.ms,
        classification_fallback: fallback,
        meta_match: None,
        classification_cached: outcome.cached,
    }
}

/// The fallback label for `query`: the first keyword rule with a keyword in it as a
/// whole word or phrase (case-insensitive: "score" is not in "underscore"), else the
/// configured default. The second value says which rule fired, for the log.
pub fn fallback_label(config: &RoutingConfig, query: &str) -> (Label, String) {
    let query = query.to_lowercase();
    for rule in &config.fallback_rules {
        if let Some(word) = rule
            .keywords
            .iter()
            .find(|k| contains_phrase(&query, &k.trim().to_lowercase()))
        {
            return (rule.label, format!(" (keyword {word:?})"));
        }
    }
    (config.fallback, " (the default)".into())
}

/// Whether `phrase` occurs in `text` with no letter or digit right before or after it.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeywordRule;

    #[test]
    fn labels_map_to_routes() {
        let routes: Vec<&str> = Label::ALL.iter().map(|l| l.route().as_str()).collect();
        assert_eq!(routes, ["primary", "primary", "xai", "enrich", "meta"]);
    }

    #[test]
    fn keyword_rules_refine_the_fallback() {
        let config = RoutingConfig {
            fallback: Label::Moderate,
            fallback_rules: vec![KeywordRule {
                label: Label::Enrich,
                keywords: vec!["Weather".into(), "latest news".into()],
            }],
            ..RoutingConfig::default()
        };
        assert_eq!(
            fallback_label(&config, "what's the WEATHER in Oslo").0,
            Label::Enrich
        );
        assert_eq!(
            fallback_label(&config, "the latest news on Mars").0,
            Label::Enrich
        );
        let (label, why) = fallback_label(&config, "explain monads");
        assert_eq!(label, Label::Moderate);
        assert_eq!(why, " (the default)");
    }
}
