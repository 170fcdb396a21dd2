//! `ai-router sessions replay`: re-classifies logged user conversations with the prompts
//! as they are now, through the classifier, and reports agreement with the logged
//! decisions and every changed one. How a routing-prompt edit is judged before it is
//! trusted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::Serialize;

use super::progress::Progress;
use super::sessions;
use super::{Setup, classifier_name, scratch_session};
use crate::record::session::cut;
use crate::record::store::{Detail, LoggedSession};

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// How far back, e.g. `7d`.
    pub since: String,
    /// At most this many sessions (the most recent).
    pub limit: Option<usize>,
    /// Only sessions logged on this route.
    pub route: Option<String>,
    /// Classifier calls in flight at once.
    pub concurrency: usize,
    /// Where the JSON report goes (default `<sessions dir>/../replays/replay-<time>.json`).
    pub out: Option<PathBuf>,
}

/// The replay's result, also written as JSON for agents.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub generated_at: String,
    pub since: String,
    pub classifier: String,
    pub replayed: usize,
    pub agreed: usize,
    /// `agreed / (replayed - failed)`, 0 when nothing could be compared.
    pub agreement: f64,
    pub changed: Vec<Change>,
    pub failed: Vec<Failure>,
}

/// A session whose label would change.
#[derive(Debug, Serialize)]
pub struct Change {
    pub id: String,
    pub query: String,
    pub before: String,
    /// Whether the logged label came from a fallback, not the classifier.
    pub before_was_fallback: bool,
    pub after: String,
    /// How sure the classifier was of `after`, with `routing.logprobs`.
    pub after_p: Option<f64>,
    pub raw: String,
}

/// A session the classifier could not label now.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub id: String,
    pub query: String,
    pub reason: String,
}

/// Replays the sessions in `dirs` chosen by `options`; progress goes to stderr.
pub async fn replay(
    setup: &Setup,
    dirs: &[PathBuf],
    options: &ReplayOptions,
) -> Result<ReplayReport, String> {
    let scan = sessions::load(dirs, Some(&options.since), Detail::Full)?;
    let mut chosen: Vec<LoggedSession> = scan
        .sessions
        .into_iter()
        .filter(|s| s.was_classified() && s.decision.classification.is_some())
        .filter(|s| {
            options
                .route
                .as_ref()
                .is_none_or(|r| s.decision.route.as_deref() == Some(r.as_str()))
        })
        .collect();
    if let Some(limit) = options.limit {
        chosen.drain(..chosen.len().saturating_sub(limit));
    }
    let total = chosen.len();
    let concurrency = options.concurrency.max(1);
    // One set of prompts for the whole replay: every session is judged by the same ones.
    let prompts = &setup.prompts;
    let routing = &setup.routing;
    let mut results = futures_util::stream::iter(chosen)
        .map(|session| async move {
            let messages = session
                .client_messages
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut scratch = scratch_session();
            let now = routing.classify(prompts, &messages, &mut scratch).await;
            (session, now)
        })
        .buffered(concurrency);
    let mut report = ReplayReport {
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        since: options.since.clone(),
        classifier: classifier_name(routing),
        replayed: 0,
        agreed: 0,
        agreement: 0.0,
        changed: Vec::new(),
        failed: Vec::new(),
    };
    let mut progress = Progress::new("replayed", total);
    while let Some((session, now)) = results.next().await {
        report.replayed += 1;
        progress.step();
        let query = cut(&session.user_query.replace('\n', " "), 120);
        let before = session
            .decision
            .classification
            .as_ref()
            .map_or_else(String::new, |l| l.to_string());
        match now.label {
            Some(label) if label.as_str() == before => report.agreed += 1,
            Some(label) => report.changed.push(Change {
                id: session.id.clone(),
                query,
                before,
                before_was_fallback: session.decision.classification_fallback.is_some(),
                after: label.to_string(),
                after_p: now.confidence.as_ref().map(|c| c.p),
                raw: cut(&now.raw, 200),
            }),
            None => report.failed.push(Failure {
                id: session.id.clone(),
                query,
                reason: now.failure.unwrap_or_default(),
            }),
        }
    }
    let compared = report.replayed - report.failed.len();
    if compared > 0 {
        report.agreement = report.agreed as f64 / compared as f64;
    }
    Ok(report)
}

/// Writes the report as JSON and returns where.
pub fn write_report(
    report: &ReplayReport,
    dir: &Path,
    out: Option<&Path>,
) -> Result<PathBuf, String> {
    let path = match out {
        Some(path) => path.to_path_buf(),
        None => {
            let folder = dir.parent().unwrap_or(Path::new(".")).join("replays");
            std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            folder.join(format!("replay-{stamp}.json"))
        }
    };
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The report for people.
pub fn render(report: &ReplayReport, path: &Path) -> String {
    let mut out = String::new();
    let compared = report.replayed - report.failed.len();
    let _ = writeln!(
        out,
        "replayed {} sessions since {} through {}",
        report.replayed, report.since, report.classifier
    );
    let _ = writeln!(
        out,
        "agreement {}/{compared} = {:.1}%   changed {}   failed {}",
        report.agreed,
        report.agreement * 100.0,
        report.changed.len(),
        report.failed.len()
    );
    for change in &report.changed {
        let mark = if change.before_was_fallback {
            " (was a fallback)"
        } else {
            ""
        };
        let sure = change
            .after_p
            .map_or_else(String::new, |p| format!(" ({p})"));
        let _ = writeln!(
            out,
            "  {}  {} → {}{sure}{mark}  {}",
            change.id, change.before, change.after, change.query
        );
    }
    for failure in &report.failed {
        let _ = writeln!(
            out,
            "  {}  failed: {}  {}",
            failure.id, failure.reason, failure.query
        );
    }
    let _ = writeln!(out, "report: {}", path.display());
    out
}
