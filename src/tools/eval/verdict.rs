//! Runs the router's decision over every case of a set, with bounded concurrency and a
//! progress line: META rules, the classifier, and the fallback it takes when the
//! classifier gives no label it may use, exactly as `serve` decides a chat.

use axum::http::HeaderMap;
use futures_util::StreamExt;
use serde::Serialize;

use super::set::Case;
use crate::names::Step;
use crate::openai::ChatRequest;
use crate::prompts::PromptSet;
use crate::record::decision::Confidence;
use crate::tools::progress::Progress;
use crate::tools::{Setup, scratch_session};

/// How the router decided one case.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub id: String,
    /// The right label.
    pub label: String,
    /// The label the router decided on its classifier's word (or a META rule's); `None`
    /// when it fell back.
    pub predicted: Option<String>,
    /// The label whose route would answer: `predicted`, or the fallback's.
    pub routed: String,
    /// Why the router fell back, if it did.
    pub fallback: Option<String>,
    /// The label the classifier's reply names, even one the router did not take (a label
    /// it may not give, an unsure one): what its confidence is about.
    pub said: Option<String>,
    /// The classifier's label probability, when the decision recorded one.
    pub confidence: Option<Confidence>,
    /// Time the classifier took; `None` when it was not asked (a META rule decided).
    pub ms: Option<u64>,
    /// Whether the classifier could not be asked at all (refused, timed out, an error
    /// status), as opposed to answering without a label.
    pub unreachable: bool,
}

impl Verdict {
    /// The verdict as the reports write it: the label, or `fallback`.
    pub fn shown(&self) -> &str {
        self.predicted.as_deref().unwrap_or(super::report::FALLBACK)
    }
}

/// Decides every case with `prompts`, `concurrency` at a time, in the set's order;
/// progress goes to stderr as `verb n/total`.
pub async fn decide_all(
    setup: &Setup,
    prompts: &PromptSet,
    cases: &[Case],
    concurrency: usize,
    verb: &'static str,
) -> Vec<Verdict> {
    let routing = &setup.routing;
    let mut decisions = futures_util::stream::iter(cases)
        .map(|case| async move {
            // With stickiness on, the earlier turns come first, as the router saw them:
            // they leave the conversation's highest route behind for the last one.
            if routing.sticky.enabled() {
                for turn in earlier_turns(&case.request) {
                    let mut scratch = scratch_session();
                    routing
                        .decide(prompts, &turn, &HeaderMap::new(), &mut scratch)
                        .await;
                }
            }
            let mut scratch = scratch_session();
            let decision = routing
                .decide(prompts, &case.request, &HeaderMap::new(), &mut scratch)
                .await;
            // The classify step says whether the classifier was asked and answered (a
            // reply without a label is an answer; a failed call has no 2xx).
            let step = scratch
                .record()
                .and_then(|r| r.steps.iter().find(|s| s.step == Step::Classify))
                .map(|s| s.status.is_some_and(|code| (200..300).contains(&code)));
            (case, decision, step)
        })
        .buffered(concurrency.max(1));
    let mut progress = Progress::new(verb, cases.len());
    let mut verdicts = Vec::with_capacity(cases.len());
    while let Some((case, decision, answered)) = decisions.next().await {
        progress.step();
        let routed = decision
            .classification
            .as_ref()
            .map_or_else(|| routing.table.fallback.to_string(), |l| l.to_string());
        let fallback = decision.classification_fallback.clone();
        let predicted = fallback.is_none().then(|| routed.clone());
        let said = match &predicted {
            Some(label) => Some(label.clone()),
            None => decision
                .classification_raw
                .as_deref()
                .and_then(|raw| routing.table.parse_label(raw))
                .map(|l| l.to_string()),
        };
        verdicts.push(Verdict {
            id: case.id.clone(),
            label: case.label.clone(),
            predicted,
            routed,
            fallback,
            said,
            confidence: decision.classification_confidence.clone(),
            ms: answered.map(|_| decision.classification_ms),
            unreachable: answered == Some(false),
        });
    }
    verdicts
}

/// The conversation of `request` as it stood at each earlier user message, oldest first.
fn earlier_turns(request: &ChatRequest) -> Vec<ChatRequest> {
    let messages = request.messages();
    let last = messages.len().saturating_sub(1);
    (0..last)
        .filter(|&i| messages[i].get("role").and_then(serde_json::Value::as_str) == Some("user"))
        .filter_map(|i| {
            let mut body = request.body.clone();
            body.insert(
                "messages".into(),
                serde_json::Value::from(messages[..=i].to_vec()),
            );
            ChatRequest::parse(serde_json::Value::Object(body).to_string().as_bytes()).ok()
        })
        .collect()
}
