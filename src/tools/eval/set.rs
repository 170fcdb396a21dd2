//! The golden set: JSON Lines of labelled conversations (`id`, `label`, `messages`, and
//! `group`, `reason`, `source` for people), read and checked against the route table
//! before the classifier is asked anything.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::config::META_LABEL;
use crate::openai::ChatRequest;
use crate::routing::RouteTable;

/// At most this many problems are listed: a wrong file has hundreds of the same one.
const MAX_PROBLEMS: usize = 10;

/// One labelled conversation.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    /// The right label for the last user message.
    pub label: String,
    /// The conversation as a client would send it.
    pub request: ChatRequest,
}

/// A line as written; the fields only people read (`reason`, `source`) are not kept.
#[derive(Deserialize)]
struct Line {
    id: String,
    label: String,
    messages: Value,
    #[serde(default)]
    needs_review: bool,
}

/// The cases of a set, and how many were left out because nobody has checked them yet.
#[derive(Debug)]
pub struct GoldenSet {
    pub cases: Vec<Case>,
    pub unreviewed: usize,
}

/// Reads the set at `path`. Every problem (a line that is not a case, a duplicate id, a
/// label the table has not or the classifier may not give, a conversation that does not
/// end with a user message) is an error naming its line; cases marked
/// `"needs_review": true` are left out, since their label is the router's own guess.
pub fn load(path: &Path, table: &RouteTable) -> Result<GoldenSet, String> {
    // A set is a few megabytes; the bound keeps a wrong path (a device, a FIFO) harmless.
    const MAX_BYTES: u64 = 256 * 1024 * 1024;
    let text = read(path, MAX_BYTES).map_err(|e| {
        format!(
            "the golden set {}: {e} (pass --set FILE, JSON Lines)",
            path.display()
        )
    })?;
    let mut set = GoldenSet {
        cases: Vec::new(),
        unreviewed: 0,
    };
    let mut problems = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match read_case(line, table) {
            Ok(None) => set.unreviewed += 1,
            Ok(Some(case)) if !ids.insert(case.id.clone()) => {
                problems.push((index, format!("the id {:?} is used twice", case.id)));
            }
            Ok(Some(case)) => set.cases.push(case),
            Err(problem) => problems.push((index, problem)),
        }
    }
    if !problems.is_empty() {
        let mut message = format!("the golden set {} has problems:", path.display());
        for (index, problem) in problems.iter().take(MAX_PROBLEMS) {
            message.push_str(&format!("\n  line {}: {problem}", index + 1));
        }
        if problems.len() > MAX_PROBLEMS {
            message.push_str(&format!("\n  … and {} more", problems.len() - MAX_PROBLEMS));
        }
        return Err(message);
    }
    if set.cases.is_empty() {
        return Err(format!("the golden set {} has no cases", path.display()));
    }
    Ok(set)
}

/// One line as a case, `None` when it still needs review.
fn read_case(line: &str, table: &RouteTable) -> Result<Option<Case>, String> {
    let line: Line = serde_json::from_str(line).map_err(|e| format!("not a case: {e}"))?;
    if line.id.trim().is_empty() {
        return Err("the id is empty".into());
    }
    if line.needs_review {
        return Ok(None);
    }
    match table.get(&line.label) {
        None => {
            let labels: Vec<&str> = table.iter().map(|r| r.label.as_str()).collect();
            return Err(format!(
                "{}: the label {:?} is not in the route table ({})",
                line.id,
                line.label,
                labels.join(", ")
            ));
        }
        Some(_) if line.label == META_LABEL => {
            return Err(format!(
                "{}: META is never the classifier's: task prompts are recognised by rules",
                line.id
            ));
        }
        Some(route) if !route.classifier_may_choose => {
            return Err(format!(
                "{}: routes.{}.classifier_may_choose is false: the classifier never gives it",
                line.id, line.label
            ));
        }
        Some(_) => {}
    }
    let last_role = line
        .messages
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    if last_role != Some("user") {
        return Err(format!(
            "{}: `messages` must end with the user message that is classified",
            line.id
        ));
    }
    let body = serde_json::json!({"messages": line.messages});
    let request =
        ChatRequest::parse(body.to_string().as_bytes()).map_err(|e| format!("{}: {e}", line.id))?;
    Ok(Some(Case {
        id: line.id,
        label: line.label,
        request,
    }))
}

/// The set's text: from standard input for `/dev/stdin` or `-` (the Compose recipe pipes
/// the set in), else from the regular file at `path`; at most `max` bytes either way.
fn read(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    if path == Path::new("/dev/stdin") || path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().take(max + 1).read_to_string(&mut text)?;
        if text.len() as u64 > max {
            return Err(std::io::Error::other(format!("larger than {max} bytes")));
        }
        return Ok(text);
    }
    crate::files::read_text(path, max, crate::files::Links::Follow)
}
