//! The sessions the router logged: a filtered list (newest first, read with
//! `store::scan`'s brief records, bounded in time) and one session's whole story, with
//! what it cost read the way `/stats` reads it (`summary::summarise`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::redacted_json;
use crate::edge::state::AppState;
use crate::error::Error;
use crate::record::store::{self, Detail, LoggedSession};
use crate::record::{folders, summary};

/// Longest a list or a story may take to read the session logs.
const READ_FOR_AT_MOST: Duration = Duration::from_secs(10);
/// Most sessions one list returns.
const MAX_LIMIT: usize = 1000;
/// Characters of a query shown in the list.
const QUERY_CHARS: usize = 160;

/// The list's filters, all optional, as query parameters.
#[derive(Debug, Default)]
struct Filter {
    /// `30m`, `24h`, `7d` (default `24h`).
    since: Option<String>,
    route: Option<String>,
    label: Option<String>,
    /// `true`: only sessions where a fallback decided something.
    fallback: Option<bool>,
    /// `true`: only sessions that ended in an error.
    error: Option<bool>,
    /// Part of the client's address.
    client: Option<String>,
    /// Part of the query text (any case).
    q: Option<String>,
    limit: Option<usize>,
}

impl Filter {
    /// The filters in `uri`'s query; unknown names are ignored, a flag is `true` or
    /// `false` (anything else: no filter).
    fn of(uri: &Uri) -> Self {
        let mut filter = Filter::default();
        let query = format!("http://dashboard/?{}", uri.query().unwrap_or_default());
        let Ok(url) = reqwest::Url::parse(&query) else {
            return filter;
        };
        for (name, value) in url.query_pairs() {
            let value = value.trim().to_string();
            let text = (!value.is_empty()).then(|| value.clone());
            match name.as_ref() {
                "since" => filter.since = text,
                "route" => filter.route = text,
                "label" => filter.label = text,
                "client" => filter.client = text,
                "q" => filter.q = text,
                "fallback" => filter.fallback = value.parse().ok(),
                "error" => filter.error = value.parse().ok(),
                "limit" => filter.limit = value.parse().ok(),
                _ => {}
            }
        }
        filter
    }

    fn keeps(&self, session: &LoggedSession) -> bool {
        let decision = &session.decision;
        let same = |want: &Option<String>, have: Option<String>| {
            want.as_deref()
                .filter(|w| !w.is_empty())
                .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        let route = decision.route.as_ref().map(ToString::to_string);
        let label = decision.classification.as_ref().map(ToString::to_string);
        let contains = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| have.to_lowercase().contains(&w.to_lowercase()))
        };
        same(&self.route, route.or_else(|| Some("rejected".into())))
            && same(&self.label, label)
            && self.fallback.is_none_or(|f| f == session.used_fallback())
            && self.error.is_none_or(|e| e == (session.outcome == "error"))
            && contains(&self.client, &session.client_ip)
            && contains(&self.q, &session.user_query)
    }
}

/// Why there are no session logs to read, when logging is off.
fn disabled(state: &AppState) -> Option<Response> {
    (!state.config.sessions.enabled)
        .then(|| unreadable("session logs are disabled (sessions.enabled = false)".into()))
}

/// The folders that hold this router's sessions (its own, and replicas' beside it).
fn dirs(state: &AppState) -> Vec<PathBuf> {
    let own = std::slice::from_ref(&state.config.sessions.dir);
    folders::expand(own).unwrap_or_else(|_| own.to_vec())
}

/// `GET /dashboard/api/sessions?route=&label=&fallback=&error=&client=&q=&since=&limit=`.
pub(super) async fn list(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let filter = Filter::of(&uri);
    if let Some(refusal) = disabled(&state) {
        return refusal;
    }
    let since = match store::since(filter.since.as_deref().unwrap_or("24h")) {
        Ok(since) => since,
        Err(e) => return Error::invalid(e, "since").into_response(),
    };
    let limit = filter.limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let dirs = dirs(&state);
    let read = blocking(&state, move || {
        let scan = store::scan(&dirs, Some(since), Detail::Brief).map_err(|e| e.to_string())?;
        let rows: Vec<Value> = scan
            .sessions
            .iter()
            .rev()
            .filter(|s| filter.keeps(s))
            .take(limit)
            .map(row)
            .collect();
        Ok(json!({"sessions": rows, "skipped_files": scan.skipped.len()}))
    })
    .await;
    match read {
        Ok(value) => redacted_json(&state, value),
        Err(error) => unreadable(error),
    }
}

/// One line of the list.
fn row(session: &LoggedSession) -> Value {
    let d = &session.decision;
    let query: String = session.user_query.chars().take(QUERY_CHARS).collect();
    json!({
        "id": session.id,
        "timestamp": session.timestamp,
        "client_ip": session.client_ip,
        "route": d.route,
        "label": d.classification,
        "fallback": d.classification_fallback.as_ref().or(d.route_fallback.as_ref()),
        "meta_match": d.meta_match,
        "client_choice": d.client_choice,
        "outcome": session.outcome,
        "http_status": session.http_status,
        "error": session.error,
        "total_ms": session.total_ms,
        "user_query": query,
    })
}

/// `GET /dashboard/api/sessions/{id}`: the whole record, and what its steps cost.
pub(super) async fn story(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if id.len() > 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Error::invalid("a session id is 8 hex characters", "id").into_response();
    }
    if let Some(refusal) = disabled(&state) {
        return refusal;
    }
    let dirs = dirs(&state);
    let cloud = state.cloud.clone();
    let read = blocking(&state, move || {
        let session = store::find(&dirs, &id).map_err(|e| e.to_string())?;
        let cost = summary::summarise(std::slice::from_ref(&session), &cloud);
        let mut value = serde_json::to_value(&session).map_err(|e| e.to_string())?;
        value["cost"] = json!({"cloud": cost.xai, "all_cloud": cost.all_cloud});
        Ok(value)
    })
    .await;
    match read {
        Ok(value) => redacted_json(&state, value),
        Err(error) if error.starts_with("no session") => Error::NotFound {
            method: "GET".into(),
            path: "/dashboard/api/sessions/{id}".into(),
        }
        .into_response(),
        Err(error) => unreadable(error),
    }
}

/// Runs `read` on a blocking thread, giving up after `READ_FOR_AT_MOST` (a hung disk
/// holds its thread, not the answer); busy when the dashboard's reads are all taken.
async fn blocking(
    state: &AppState,
    read: impl FnOnce() -> Result<Value, String> + Send + 'static,
) -> Result<Value, String> {
    let Ok(permit) = state.dashboard.reads.clone().try_acquire_owned() else {
        return Err("earlier reads have not finished (a slow or hung disk?)".into());
    };
    // The permit goes with the thread: it is given back when the read really ends.
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read()
    });
    match tokio::time::timeout(READ_FOR_AT_MOST, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("the read failed: {e}")),
        Err(_) => Err(format!(
            "reading the session logs took longer than {} s",
            READ_FOR_AT_MOST.as_secs()
        )),
    }
}

fn unreadable(reason: String) -> Response {
    Error::SessionsUnreadable { reason }.into_response()
}
