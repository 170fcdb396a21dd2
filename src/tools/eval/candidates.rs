//! `ai-router sessions export --as-cases`: logged conversations as golden-set lines
//! (`label` is the logged decision, `"needs_review": true`), for a person to check,
//! correct and move into the set. `eval` leaves such lines out until then.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::record::store::{self, LoggedSession};

/// Which logged sessions become candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Every classified session.
    #[default]
    All,
    /// Only those the fallback decided (the classifier gave no usable label).
    Fallbacks,
    /// Only those the fallback decided, or whose label the classifier gave with a
    /// probability under one half (`routing.logprobs`): the cases it finds hard.
    Unsure,
}

/// Below this probability a logged label is a candidate under `--only unsure`.
const UNSURE_BELOW: f64 = 0.5;

/// Writes one case line per classified session in `dirs` since `since`, oldest first;
/// returns how many.
pub fn export(
    dirs: &[PathBuf],
    since: Option<&str>,
    only: Only,
    out: &mut dyn std::io::Write,
) -> Result<usize, String> {
    let since = since.map(store::since).transpose()?;
    let (mut written, mut failed) = (0, None);
    store::visit(dirs, since, |found| {
        let Ok(session) = found else {
            return;
        };
        if failed.is_some() {
            return;
        }
        let Some(case) = candidate(&session, only) else {
            return;
        };
        match writeln!(out, "{case}") {
            Ok(()) => written += 1,
            Err(e) => failed = Some(e.to_string()),
        }
    })
    .map_err(|e| e.to_string())?;
    failed.map_or(Ok(written), Err)
}

/// The case for `session`, if it was classified, `only` keeps it, and its conversation
/// ends with the user message that was classified.
pub fn candidate(session: &LoggedSession, only: Only) -> Option<Value> {
    let decision = &session.decision;
    let label = decision.classification.as_ref()?;
    if !session.was_classified() {
        return None;
    }
    let fell_back = decision.classification_fallback.is_some();
    let unsure = decision
        .classification_confidence
        .as_ref()
        .is_some_and(|c| c.p < UNSURE_BELOW);
    match only {
        Only::All => {}
        Only::Fallbacks if !fell_back => return None,
        Only::Unsure if !fell_back && !unsure => return None,
        Only::Fallbacks | Only::Unsure => {}
    }
    let messages = session.client_messages.as_array()?;
    let last_role = messages.last()?.get("role").and_then(Value::as_str);
    if last_role != Some("user") {
        return None;
    }
    let how = match &decision.classification_fallback {
        Some(why) => format!("fallback: {why}"),
        None => format!("the classifier said {label}"),
    };
    Some(json!({
        "id": format!("session-{}", session.id),
        "label": label,
        "group": "from-sessions",
        "messages": messages,
        "reason": "",
        "source": format!("session {} at {} ({how})", session.id, session.timestamp),
        "needs_review": true,
    }))
}
