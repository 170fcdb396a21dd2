//! `ai-router classify "text"`: shows how the router would route one message (META
//! rules, then the classifier with the prompts as they are now, then the route that
//! would really answer), for admins tuning `prompts/routing/`.

use std::fmt::Write as _;
use std::path::Path;

use axum::http::HeaderMap;

use crate::names::Step;
use crate::openai::ChatRequest;
use crate::record::budget::Budgets;
use crate::routing::answering;

use super::{Setup, scratch_session};

/// Classifies `text` as a one-message chat and describes the decision.
pub async fn report(path: &Path, text: &str) -> Result<String, String> {
    let setup = Setup::load(path)?;
    let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
    let request = ChatRequest::parse(body.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let mut session = scratch_session();
    let routing = &setup.routing;
    let decision = routing
        .decide(&setup.prompts, &request, &HeaderMap::new(), &mut session)
        .await;
    let label = decision.classification.as_deref().unwrap_or("-");
    let mut out = String::new();
    // As the router would answer: a route whose backend has no key changes.
    // Spend is not known here: budgets are left out.
    let gate = answering::Gate {
        backends: &setup.backends,
        missing_key: setup.config.routing.missing_key,
        budgets: &Budgets::default(),
    };
    let answered = match answering::resolve(&routing.table, &gate, label) {
        Ok(answering) => match answering.note {
            None => answering.route.name.to_string(),
            Some(note) => format!("{} ({note})", answering.route.name),
        },
        Err(error) => format!("refused: {error}"),
    };
    let _ = writeln!(out, "decision:    {label} → {answered}");
    let _ = writeln!(out, "classifier:  {}", super::classifier_name(routing));
    let raw = decision
        .classification_raw
        .as_deref()
        .unwrap_or("(not called)");
    let _ = writeln!(out, "raw reply:   {raw:?}");
    if let Some(c) = &decision.classification_confidence {
        let runner_up = match (&c.runner_up, c.runner_up_p) {
            (Some(label), Some(p)) => format!(" (then {label} {p})"),
            _ => String::new(),
        };
        let _ = writeln!(out, "confidence:  {}{runner_up}", c.p);
    }
    let _ = writeln!(out, "time:        {} ms", decision.classification_ms);
    let fallback = decision
        .classification_fallback
        .as_deref()
        .unwrap_or("none");
    let _ = writeln!(out, "fallback:    {fallback}");
    let meta = decision.meta_match.as_deref().unwrap_or("none");
    let _ = writeln!(out, "meta match:  {meta}");
    // A classifier that could not be asked is a failure of this command, not a
    // decision: a script (or an admin reading `$?`) must not take the fallback for it.
    // (A reply without a label is an answer, shown above; a failed call has no 2xx.)
    let failed = session
        .record()
        .and_then(|r| r.steps.iter().find(|s| s.step == Step::Classify))
        .filter(|s| !s.status.is_some_and(|code| (200..300).contains(&code)))
        .and_then(|s| s.error.clone());
    match failed {
        Some(error) => Err(format!(
            "{out}the classifier could not be asked: {error}\n\
             (the config's backend URLs must be reachable from here: in the GPU stack, run \
             this inside the router's container; during `make demo`, use config/demo.toml)"
        )),
        None => Ok(out),
    }
}
