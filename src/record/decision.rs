//! The routing decision and the evidence for it — defined once: routing makes it, the
//! proxy amends it (a failover, a missing key), the session log writes it, and the
//! tools read it back.

use serde::{Deserialize, Serialize};

use crate::names::{Label, RouteName};

/// A route and the evidence for it, as the session log holds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    /// The route that answered (or was to answer).
    pub route: Option<RouteName>,
    /// The label (SIMPLE … META, or an admin's own) from the classifier, a META rule or
    /// the fallback.
    pub classification: Option<Label>,
    /// The classifier's raw reply.
    pub classification_raw: Option<String>,
    /// Time spent classifying.
    pub classification_ms: u64,
    /// Why the fallback label was used instead of the classifier's, if it was.
    pub classification_fallback: Option<String>,
    /// Whether the label came from the classification cache (no classifier call).
    pub classification_cached: bool,
    /// Which META rule matched, if any.
    pub meta_match: Option<String>,
    /// Why a request that no META evidence marked still looks like a client's task (a
    /// `[[suspect]]` table in the META rules file): only a flag, so a new template is
    /// noticed the day it appears; the route came from the classifier as usual.
    pub meta_suspect: Option<String>,
    /// Why the route that answered is not the one the label asked for (a missing key, a
    /// failover), or why a search hop found nothing.
    pub route_fallback: Option<String>,
    /// The probability the classifier gave its label, from its log-probabilities
    /// (`routing.logprobs`), and the most probable other label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification_confidence: Option<Confidence>,
    /// Why the label was raised to its conversation's highest (`routing.sticky_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
    /// The model id of the route the client chose (an exposed route picked in the
    /// model menu): the label is that route's, and the classifier was not asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_choice: Option<String>,
}

/// How sure the classifier was: its label's probability and the runner-up's, among the
/// labels it could give.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Confidence {
    /// The chosen label's probability, 0 to 1.
    pub p: f64,
    /// The most probable other label, if any had a probability.
    pub runner_up: Option<Label>,
    /// Its probability.
    pub runner_up_p: Option<f64>,
}
