//! `ai-router sessions list|show|stats|export`: the session logs for people (text) and
//! agents (`--json`). Skipped files are reported on stderr, never fatal.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::Config;
use crate::record::budget::Budgets;
use crate::record::session::cut;
use crate::record::store::{self, Detail, LoggedSession, Scan, Skipped};
use crate::record::summary;

/// Filters for `sessions list`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ListFilter {
    /// Only sessions this recent: 30m, 24h, 7d, 2w.
    #[arg(long)]
    pub since: Option<String>,
    /// Only this route: primary, xai, enrich, meta.
    #[arg(long)]
    pub route: Option<String>,
    /// Only this label: SIMPLE, MODERATE, COMPLEX, ENRICH, META.
    #[arg(long)]
    pub class: Option<String>,
    /// Only sessions that did not end ok.
    #[arg(long)]
    pub errors: bool,
    /// Only sessions where a fallback decided (classifier or route).
    #[arg(long)]
    pub fallbacks: bool,
    /// Only sessions that took at least this many milliseconds.
    #[arg(long)]
    pub slow_ms: Option<u64>,
    /// At most this many (the most recent).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// Reads `dirs`, keeping sessions since `since` (e.g. `24h`) in `detail`, and reports
/// skipped files.
pub fn load(dirs: &[PathBuf], since: Option<&str>, detail: Detail) -> Result<Scan, String> {
    let since = since.map(store::since).transpose()?;
    let scan = store::scan(dirs, since, detail).map_err(|e| e.to_string())?;
    report_skipped(&scan.skipped);
    Ok(scan)
}

/// Says on stderr which files were not readable sessions (the first few).
fn report_skipped(skipped: &[Skipped]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!(
        "skipped {} file(s) that are not readable sessions:",
        skipped.len()
    );
    for file in skipped.iter().take(5) {
        eprintln!("  {}: {}", file.path.display(), file.reason);
    }
}

/// `sessions list`: one line per matching session, newest last.
pub fn list(dirs: &[PathBuf], filter: &ListFilter, as_json: bool) -> Result<String, String> {
    let scan = load(dirs, filter.since.as_deref(), Detail::Brief)?;
    let matching: Vec<&LoggedSession> = scan.sessions.iter().filter(|s| keep(s, filter)).collect();
    let shown = &matching[matching.len().saturating_sub(filter.limit)..];
    if as_json {
        let rows: Vec<Value> = shown.iter().map(|s| row(s)).collect();
        return Ok(format!("{}\n", Value::Array(rows)));
    }
    let mut out = String::new();
    for s in shown {
        let _ = writeln!(
            out,
            "{}  {}  {:<7} {:<8} cls {:>5} ms  total {:>6} ms  {:<19} {}",
            s.timestamp
                .get(..19)
                .unwrap_or(&s.timestamp)
                .replace('T', " "),
            s.id,
            s.decision.route.as_deref().unwrap_or("-"),
            s.decision.classification.as_deref().unwrap_or("-"),
            s.decision.classification_ms,
            s.total_ms,
            s.outcome,
            cut(&s.user_query.replace('\n', " "), 60),
        );
    }
    let _ = writeln!(out, "{} of {} sessions", shown.len(), scan.sessions.len());
    Ok(out)
}

fn keep(s: &LoggedSession, f: &ListFilter) -> bool {
    f.route
        .as_ref()
        .is_none_or(|r| s.decision.route.as_deref() == Some(r.as_str()))
        && f.class.as_ref().is_none_or(|c| {
            s.decision
                .classification
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(c))
        })
        && (!f.errors || s.outcome != "ok")
        && (!f.fallbacks || s.used_fallback())
        && f.slow_ms.is_none_or(|ms| s.total_ms >= ms)
}

fn row(s: &LoggedSession) -> Value {
    let d = &s.decision;
    json!({
        "timestamp": s.timestamp, "id": s.id, "route": d.route,
        "classification": d.classification, "classification_ms": d.classification_ms,
        "classification_fallback": d.classification_fallback, "route_fallback": d.route_fallback,
        "meta_match": d.meta_match, "meta_suspect": d.meta_suspect, "client_choice": d.client_choice,
        "classification_confidence": d.classification_confidence, "sticky": d.sticky,
        "total_ms": s.total_ms, "outcome": s.outcome,
        "error": s.error, "query": cut(&s.user_query, 200),
    })
}

/// `sessions show ID`: one session, readable; `--json` gives the record as written.
pub fn show(dirs: &[PathBuf], id: &str, as_json: bool) -> Result<String, String> {
    let s = store::find(dirs, id)?;
    if as_json {
        return serde_json::to_string_pretty(&s)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "session {}  {}  from {}",
        s.id, s.timestamp, s.client_ip
    );
    let _ = writeln!(out, "query     {}", cut(&s.user_query, 500));
    let _ = writeln!(
        out,
        "decision  {} → {}{}",
        s.decision.classification.as_deref().unwrap_or("-"),
        s.decision.route.as_deref().unwrap_or("-"),
        if s.stream { " (stream)" } else { "" }
    );
    let d = &s.decision;
    let why = [
        ("meta rule", &d.meta_match),
        ("META suspect", &d.meta_suspect),
        ("client chose", &d.client_choice),
        ("sticky", &d.sticky),
        ("classifier said", &d.classification_raw),
        ("fallback", &d.classification_fallback),
        ("route fallback", &d.route_fallback),
    ];
    if let Some(c) = &d.classification_confidence {
        let runner_up = match (&c.runner_up, c.runner_up_p) {
            (Some(label), Some(p)) => format!(", then {label} {p}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  confidence: {}{runner_up}", c.p);
    }
    for (label, value) in why {
        if let Some(value) = value {
            let _ = writeln!(out, "  {label}: {}", cut(value.trim(), 300));
        }
    }
    for (i, step) in s.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "step {} {} via {} ({})  {} ms{}  status {}  finish {}",
            i + 1,
            step.step,
            step.provider,
            step.model,
            step.duration_ms,
            step.ttft_ms
                .map_or(String::new(), |t| format!(" (first token {t} ms)")),
            step.status.map_or("-".into(), |c| c.to_string()),
            step.finish_reason.as_deref().unwrap_or("-"),
        );
        if let Some(url) = step.other.get("url").and_then(Value::as_str)
            && !url.is_empty()
        {
            let _ = writeln!(out, "  endpoint:  {url}");
        }
        if !step.reasoning_content.is_empty() {
            let _ = writeln!(
                out,
                "  reasoning: {}",
                cut(step.reasoning_content.trim(), 300)
            );
        }
        let _ = writeln!(
            out,
            "  answer:    {}",
            cut(step.response_content.trim(), 800)
        );
        if let Some(error) = &step.error {
            let _ = writeln!(out, "  error:     {error}");
        }
    }
    let _ = writeln!(
        out,
        "outcome   {} (HTTP {}) in {} ms",
        s.outcome, s.http_status, s.total_ms
    );
    if let Some(error) = &s.error {
        let _ = writeln!(out, "error     {error}");
    }
    Ok(out)
}

/// `sessions stats`: the summary over the sessions since `since`.
pub fn stats(
    config: &Config,
    dirs: &[PathBuf],
    since: Option<&str>,
    as_json: bool,
) -> Result<String, String> {
    let scan = load(dirs, since, Detail::Brief)?;
    let summary = summary::summarise(&scan.sessions, &summary::Cloud::of(config));
    // This UTC day's and month's spend against the budgets, whatever `--since` says.
    let budgets = Budgets::new(config);
    budgets.read_month(dirs)?;
    if as_json {
        let mut value = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
        value["cloud_spend"] = budgets.snapshot();
        return serde_json::to_string_pretty(&value)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string());
    }
    let mut out = format!("since           {}\n", since.unwrap_or("the beginning"));
    out.push_str(&summary::render(&summary));
    out.push_str("cloud spend this UTC day and month:\n");
    for line in budgets.render().lines() {
        let _ = writeln!(out, "  {line}");
    }
    Ok(out)
}

/// `sessions export`: JSON Lines, one whole session record per line, oldest first.
pub fn export(
    dirs: &[PathBuf],
    since: Option<&str>,
    out: &mut dyn std::io::Write,
) -> Result<usize, String> {
    let since = since.map(store::since).transpose()?;
    // One session in memory at a time: an export of a week can be gigabytes.
    let (mut written, mut skipped, mut failed) = (0, Vec::new(), None);
    store::visit(dirs, since, |found| match found {
        Ok(_) if failed.is_some() => {}
        Ok(session) => {
            let line = serde_json::to_string(&session).map_err(|e| e.to_string());
            match line.and_then(|l| writeln!(out, "{l}").map_err(|e| e.to_string())) {
                Ok(()) => written += 1,
                Err(e) => failed = Some(e),
            }
        }
        Err(file) => skipped.push(file),
    })
    .map_err(|e| e.to_string())?;
    report_skipped(&skipped);
    failed.map_or(Ok(written), Err)
}
