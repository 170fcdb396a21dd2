//! The routing decision: which route answers a request, and why. The classifier and
//! META detection plug in here; until then every chat is answered by the primary.

use axum::http::HeaderMap;

use crate::openai::ChatRequest;
use crate::state::AppState;

/// Where a request is answered (the `route` of the session log and the
/// `x-ai-router-route` header). The xAI, ENRICH and META routes join this list with
/// the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The local primary model.
    Primary,
}

impl Route {
    /// The route's name on the wire and in the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Primary => "primary",
        }
    }
}

/// A route and the evidence for it, copied into the session log.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The chosen route.
    pub route: Route,
    /// The label (SIMPLE … META), when a classifier or rule gave one.
    pub classification: Option<String>,
    /// The classifier's raw reply.
    pub classification_raw: Option<String>,
    /// Time spent classifying.
    pub classification_ms: u64,
    /// Why the fallback route was used instead of a label, if it was.
    pub classification_fallback: Option<String>,
    /// Which META rule matched, if any.
    pub meta_match: Option<String>,
}

impl Decision {
    /// A decision made without classification.
    pub fn unclassified(route: Route) -> Self {
        Decision {
            route,
            classification: None,
            classification_raw: None,
            classification_ms: 0,
            classification_fallback: None,
            meta_match: None,
        }
    }
}

/// Decides how to answer `request`. Async because classification will call a backend.
pub async fn decide(_state: &AppState, _request: &ChatRequest, _headers: &HeaderMap) -> Decision {
    Decision::unclassified(Route::Primary)
}
