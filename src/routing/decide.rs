//! The routing decision: META detection first (no classifier call), then a route the
//! client chose by model id, then the classifier's label, or the fallback label when it
//! has none or one it may not give.

use axum::http::HeaderMap;

use crate::config::KeywordRule;
use crate::names::Label;
use crate::openai::ChatRequest;
use crate::prompts::PromptSet;
use crate::record::decision::{Confidence, Decision};
use crate::record::session::Session;

use super::classify::cut_middle;
use super::table::META_LABEL;
use super::{Routing, sticky};

impl Routing {
    /// Decides how to answer `request`, with the request's one snapshot of the prompts.
    /// The classifier's call is added to `session` as a step; META requests never reach
    /// it. The decision's `route` is the label's route as the table names it.
    pub async fn decide(
        &self,
        prompts: &PromptSet,
        request: &ChatRequest,
        headers: &HeaderMap,
        session: &mut Session,
    ) -> Decision {
        let meta = self.meta.examine(request, headers);
        if let Some(evidence) = meta.evidence {
            return Decision {
                meta_match: Some(evidence),
                ..self.labelled(Label::from(META_LABEL))
            };
        }
        let meta_suspect = meta.suspect;
        // Task prompts above: Open WebUI sends them with the chat's own model, so a chat
        // on `ai-router/cloud` still has its titles answered as META.
        let model = request
            .body
            .get("model")
            .and_then(serde_json::Value::as_str);
        if let Some(route) = model.and_then(|m| self.table.exposed(m)) {
            return Decision {
                client_choice: route.exposed_as.clone(),
                meta_suspect,
                ..self.labelled(route.label.clone())
            };
        }
        let outcome = self.classify(prompts, request.messages(), session).await;
        let chosen = outcome.label.as_ref().and_then(|l| self.table.get(l));
        let failure = match (chosen, outcome.failure) {
            (Some(route), _) if route.label == META_LABEL => Some(
                "the classifier said META, which only task headers, the task model or META rules decide"
                    .to_string(),
            ),
            (Some(route), _) if !route.classifier_may_choose => Some(format!(
                "the classifier said {label}, which routes.{label}.classifier_may_choose forbids",
                label = route.label
            )),
            (Some(route), _) if self.unsure(outcome.confidence.as_ref()) => {
                let p = outcome.confidence.as_ref().map_or(0.0, |c| c.p);
                Some(format!(
                    "unsure: {label} at {p} is below routing.min_confidence {min}",
                    label = route.label,
                    min = self.min_confidence
                ))
            }
            (Some(_), _) => None,
            (None, failure) => {
                Some(failure.unwrap_or_else(|| "the classifier gave no label".into()))
            }
        };
        // Only a label the classifier may give can be unsure (the others fell back above);
        // an unsure one goes where the admin said, else the way a missing one goes.
        let may_give = chosen.is_some_and(|r| r.label != META_LABEL && r.classifier_may_choose);
        let unsure = may_give && self.unsure(outcome.confidence.as_ref());
        let unsure_to = self.unsure_label.clone().filter(|_| unsure);
        let (label, fallback) = match (outcome.label, failure, unsure_to) {
            (Some(label), None, _) => (label, None),
            (_, Some(why), Some(label)) => {
                let note = format!("{why}; used {label} (routing.unsure_label)");
                (label, Some(note))
            }
            (_, why, _) => {
                // Keywords are looked for in what the classifier saw, not in attachments.
                let query = cut_middle(
                    &request.last_user_text(),
                    self.limits.max_input_chars,
                    |_| String::new(),
                );
                let (label, rule) =
                    fallback_label(&self.fallback_rules, &self.table.fallback, &query);
                let why = why.unwrap_or_default();
                (label.clone(), Some(format!("{why}; used {label}{rule}")))
            }
        };
        // A follow-up keeps its conversation's highest route (off unless configured).
        let who = session.record().map_or_else(String::new, |r| {
            r.client_key.clone().unwrap_or_else(|| r.client_ip.clone())
        });
        let messages = request.messages();
        let (label, sticky) = match self.sticky.conversation(&who, messages) {
            Some(conversation) => {
                self.sticky
                    .apply(conversation, label, sticky::is_follow_up(messages))
            }
            None => (label, None),
        };
        Decision {
            sticky,
            classification_raw: Some(outcome.raw),
            classification_ms: outcome.ms,
            classification_fallback: fallback,
            classification_cached: outcome.cached,
            classification_confidence: outcome.confidence,
            meta_suspect,
            ..self.labelled(label)
        }
    }

    /// Whether a label this sure counts as unsure (`routing.min_confidence`). Without
    /// log-probabilities there is nothing to judge by: not unsure.
    fn unsure(&self, confidence: Option<&Confidence>) -> bool {
        confidence.is_some_and(|c| c.p < self.min_confidence)
    }

    /// A decision for `label` with no classification evidence.
    pub fn labelled(&self, label: Label) -> Decision {
        Decision {
            route: self.table.get(&label).map(|r| r.name.clone()),
            classification: Some(label),
            ..Decision::default()
        }
    }
}

/// The fallback label for `query`: the first keyword rule with a keyword in it as a
/// whole word or phrase (case-insensitive: "score" is not in "underscore"), else
/// `default`. The second value says which rule fired, for the log.
pub fn fallback_label<'a>(
    rules: &'a [(Label, Vec<String>)],
    default: &'a Label,
    query: &str,
) -> (&'a Label, String) {
    let query = query.to_lowercase();
    for (label, keywords) in rules {
        if let Some(word) = keywords
            .iter()
            .find(|k| contains_phrase(&query, &k.trim().to_lowercase()))
        {
            return (label, format!(" (keyword {word:?})"));
        }
    }
    (default, " (the default)".into())
}

/// `[[routing.fallback_rules]]` with their labels typed.
pub fn keyword_rules(rules: &[KeywordRule]) -> Vec<(Label, Vec<String>)> {
    rules
        .iter()
        .map(|rule| (Label::from(rule.label.as_str()), rule.keywords.clone()))
        .collect()
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

    #[test]
    fn keyword_rules_refine_the_fallback() {
        let rules = keyword_rules(&[KeywordRule {
            label: "ENRICH".into(),
            keywords: vec!["Weather".into(), "latest news".into()],
        }]);
        let default = Label::from("MODERATE");
        let enrich = |q: &str| fallback_label(&rules, &default, q).0.to_string();
        assert_eq!(enrich("what's the WEATHER in Oslo"), "ENRICH");
        assert_eq!(enrich("the latest news on Mars"), "ENRICH");
        assert_eq!(enrich("underscore the weathered"), "MODERATE");
        let (label, why) = fallback_label(&rules, &default, "explain monads");
        assert_eq!(label.as_str(), "MODERATE");
        assert_eq!(why, " (the default)");
    }
}
