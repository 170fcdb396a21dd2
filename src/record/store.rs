//! Reads session-log folders back (one, or one per replica, merged oldest first): every
//! `*.json` file the router wrote, parsed leniently. Broken and foreign files (links, FIFOs, oversized files) are reported and
//! skipped, never fatal; a `--since` bound is applied to file names before anything is
//! parsed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decision::Decision;
use super::segment;
use crate::files::{self, Links};

/// One session as read back from its file (fields the tools use; unknown ones ignored).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LoggedSession {
    pub schema_version: u32,
    pub id: String,
    pub timestamp: String,
    pub client_ip: String,
    pub user_query: String,
    pub client_messages: Value,
    pub stream: bool,
    /// The route, the label and why: the same type the router wrote.
    #[serde(flatten)]
    pub decision: Decision,
    pub steps: Vec<LoggedStep>,
    pub total_ms: u64,
    pub http_status: u16,
    pub outcome: String,
    pub error: Option<String>,
    /// Every other field, kept so an export is the whole record.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One backend call of a logged session.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LoggedStep {
    pub step: String,
    pub provider: String,
    pub model: String,
    pub response_content: String,
    pub reasoning_content: String,
    pub duration_ms: u64,
    pub ttft_ms: Option<u64>,
    pub status: Option<u16>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub error: Option<String>,
    /// Every other field (`url`, `messages_sent`, `params`…), kept for exports.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

impl LoggedSession {
    /// The step named `name` (`classify`, `enrich`, `answer`), if the session has one.
    pub fn step(&self, name: &str) -> Option<&LoggedStep> {
        self.steps.iter().find(|s| s.step == name)
    }

    /// Whether the classifier was asked (META and rejected requests never are).
    pub fn was_classified(&self) -> bool {
        self.step("classify").is_some()
    }

    /// Whether a fallback decided anything: the classifier's, or the route's.
    pub fn used_fallback(&self) -> bool {
        self.decision.classification_fallback.is_some() || self.decision.route_fallback.is_some()
    }
}

/// A file in the folder that is not a readable session, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// What a scan of the folder found, oldest first.
#[derive(Debug, Default)]
pub struct Scan {
    pub sessions: Vec<LoggedSession>,
    pub skipped: Vec<Skipped>,
}

/// How much of each session a scan keeps in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Everything (export, replay).
    Full,
    /// What lists and summaries use: no messages, answers or other fields, so a day of
    /// large sessions does not have to fit in memory at once.
    Brief,
}

/// Largest session file read back: the router writes at most `sessions.max_file_bytes`
/// (64 MiB at most); anything larger is not one of ours.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024 + 64 * 1024;

/// Reads every session in `dirs` that started at or after `since` (all when `None`).
/// Only regular files are read: a link, a FIFO or a device named like a session is
/// skipped and reported, never followed, waited on or read without end.
pub fn scan(
    dirs: &[PathBuf],
    since: Option<DateTime<Utc>>,
    detail: Detail,
) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    visit(dirs, since, |found| match found {
        Ok(session) if detail == Detail::Brief => scan.sessions.push(brief(session)),
        Ok(session) => scan.sessions.push(session),
        Err(skipped) => scan.skipped.push(skipped),
    })?;
    Ok(scan)
}

/// Hands each session in `dirs` since `since` to `found`, oldest first across all the
/// folders (a file's name starts with its UTC start time; a day's segment comes before
/// that day's files, its lines in the order written), one session in memory at a time;
/// files and lines that are not readable sessions come as `Err`. Sub-folders are not
/// read: `folders::expand` decides which folders are.
pub fn visit(
    dirs: &[PathBuf],
    since: Option<DateTime<Utc>>,
    mut found: impl FnMut(Result<LoggedSession, Skipped>),
) -> std::io::Result<()> {
    // (sort key, path, whether it is a segment)
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // The entry's own type: a link is not followed to learn what it points at.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if name.starts_with('.') || is_dir {
                continue; // temp files being written, and sub-folders
            }
            if let Some(day) = segment::day_of(&name) {
                if since.is_none_or(|s| day >= s.date_naive()) {
                    files.push((format!("{}T000000.000Z", day.format("%Y%m%d")), path, true));
                }
                continue;
            }
            match stamp_of(&name) {
                None => found(Err(Skipped {
                    path,
                    reason: "not a session file (name)".into(),
                })),
                Some(stamp) if since.is_some_and(|s| stamp < s.naive_utc()) => {}
                Some(_) => files.push((name, path, false)),
            }
        }
    }
    // By name, then folder: two replicas' sessions interleave by their start times.
    files.sort();
    for (_, path, is_segment) in files {
        if is_segment {
            visit_segment(&path, since, &mut found);
        } else {
            found(read(&path).map_err(|reason| Skipped { path, reason }));
        }
    }
    Ok(())
}

/// Hands each session of the segment at `path` that started since `since` to `found`.
fn visit_segment(
    path: &Path,
    since: Option<DateTime<Utc>>,
    found: &mut impl FnMut(Result<LoggedSession, Skipped>),
) {
    let skipped = |reason: String| Skipped {
        path: path.to_path_buf(),
        reason,
    };
    let read = segment::read_lines(path, MAX_FILE_BYTES, |line| match line.and_then(parse) {
        Ok(session) if since.is_some_and(|s| started(&session) < s) => {}
        Ok(session) => found(Ok(session)),
        Err(reason) => found(Err(skipped(reason))),
    });
    if let Err(e) = read {
        found(Err(skipped(e.to_string())));
    }
}

/// When a session started, from its timestamp (the epoch when unreadable: it is old).
fn started(session: &LoggedSession) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&session.timestamp)
        .map_or(DateTime::UNIX_EPOCH, |t| t.with_timezone(&Utc))
}

/// `session` without what lists and summaries never read.
fn brief(mut session: LoggedSession) -> LoggedSession {
    session.client_messages = Value::Null;
    session.other = serde_json::Map::new();
    for step in &mut session.steps {
        step.response_content = String::new();
        step.reasoning_content = String::new();
        step.other = serde_json::Map::new();
    }
    session
}

/// The session with this id (the 8 hex chars, or a unique prefix of them) in any of
/// `dirs`. Ids are random, so two replicas may have given the same one: then this says
/// where both are, rather than pick one.
pub fn find(dirs: &[PathBuf], id: &str) -> Result<LoggedSession, String> {
    let id = id.trim().to_lowercase();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{id:?} is not a session id (8 hex characters)"));
    }
    // (where, its full id, the session when already read from a segment)
    let mut matches: Vec<(PathBuf, String, Option<LoggedSession>)> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if segment::day_of(name).is_some() {
                // A compact line names its id early: only likely lines are parsed.
                let needle = format!("\"id\":\"{id}");
                let _ = segment::read_lines(&path, MAX_FILE_BYTES, |line| {
                    if let Ok(session) = line
                        .ok()
                        .filter(|text| text.contains(&needle))
                        .map_or(Err(String::new()), parse)
                        && session.id.starts_with(&id)
                    {
                        matches.push((path.clone(), session.id.clone(), Some(session)));
                    }
                });
            } else if path.extension().is_some_and(|e| e == "json")
                && let Some(file_id) = id_of(&path).filter(|f| f.starts_with(&id))
            {
                let file_id = file_id.to_string();
                matches.push((path, file_id, None));
            }
        }
    }
    matches.sort_by(|a, b| a.0.cmp(&b.0));
    let paths: Vec<PathBuf> = matches.iter().map(|m| m.0.clone()).collect();
    match matches.as_slice() {
        [(_, _, Some(session))] => Ok(session.clone()),
        [(path, _, None)] => read(path).map_err(|e| format!("{}: {e}", path.display())),
        [] => Err(format!("no session {id} in {}", shown(dirs))),
        many if many.iter().all(|m| m.1 == many[0].1) => Err(format!(
            "session {} is in {} folders (replicas gave the same id): {}; show one with --dir FOLDER",
            many[0].1,
            many.len(),
            shown(&paths)
        )),
        many => Err(format!(
            "{id} matches {} sessions; give more characters",
            many.len()
        )),
    }
}

/// The id part of a session file's name (`…_3fa2c1d9.json`).
fn id_of(path: &Path) -> Option<&str> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('_').next())
}

/// Paths for a message, comma-separated.
fn shown(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn read(path: &Path) -> Result<LoggedSession, String> {
    let text = files::read_text(path, MAX_FILE_BYTES, Links::Refuse).map_err(|e| e.to_string())?;
    parse(&text)
}

/// One session from its JSON text (a file's, or a segment's line).
fn parse(text: &str) -> Result<LoggedSession, String> {
    let session: LoggedSession =
        serde_json::from_str(text).map_err(|e| format!("not valid session JSON: {e}"))?;
    if session.schema_version == 0 || session.id.is_empty() {
        return Err("not a session (no schema_version or id)".into());
    }
    Ok(session)
}

/// Whether `name` is a session file's (`<UTC time>_<id>.json`).
pub fn is_session_name(name: &str) -> bool {
    stamp_of(name).is_some()
}

/// The UTC start time a session file's name encodes (`20261121T130543.068Z_id.json`).
fn stamp_of(name: &str) -> Option<NaiveDateTime> {
    let stem = name.strip_suffix(".json")?;
    let (stamp, _id) = stem.split_once('_')?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ").ok()
}

/// Parses `30m`, `24h`, `7d`, `2w` into the time that long ago.
pub fn since(ago: &str) -> Result<DateTime<Utc>, String> {
    let ago = ago.trim();
    let split = ago.find(|c: char| !c.is_ascii_digit()).unwrap_or(ago.len());
    let (number, unit) = ago.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{ago:?}: expected a number and a unit, like 24h or 7d"))?;
    let span = match unit {
        "m" => chrono::Duration::try_minutes(number),
        "h" => chrono::Duration::try_hours(number),
        "d" => chrono::Duration::try_days(number),
        "w" => chrono::Duration::try_weeks(number),
        _ => return Err(format!("{ago:?}: the unit must be m, h, d or w")),
    };
    span.and_then(|span| Utc::now().checked_sub_signed(span))
        .ok_or_else(|| format!("{ago:?}: too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let now = Utc::now();
        let day = since("24h").unwrap();
        assert!(
            (now - day - chrono::Duration::hours(24))
                .num_seconds()
                .abs()
                < 2
        );
        assert!(since("7d").unwrap() < day);
        assert!(since("24").is_err() && since("h").is_err() && since("3y").is_err());
        assert!(since("99999999999999w").is_err(), "no panic on a huge span");
    }

    #[test]
    fn names() {
        assert!(stamp_of("20261121T130543.068Z_0badf00d.json").is_some());
        assert!(stamp_of("notes.json").is_none());
        assert!(stamp_of("20261121T130543.068Z_0badf00d.txt").is_none());
    }
}
