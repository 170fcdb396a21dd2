//! The rest of the OpenAI API (`[passthrough."/v1/PATH"]`): the request goes to its
//! backend as it came, but for `model` (the backend's own), then to each failover
//! backend in turn while the failure is one another may help with. The answer comes
//! back as it was, naming the model the client asked for: JSON whole, a stream relayed
//! like a chat's. The record is lean: an embeddings request's input is not kept.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderValue;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::relay::{self, RelayOptions};
use super::{FAILOVER_HEADER, Proxy, ROUTE_HEADER, execute};
use crate::config::{PassthroughConfig, WhenSpent};
use crate::names::{BackendId, Step};
use crate::record::log::StepRecord;
use crate::record::session::{Session, millis};
use crate::upstream::{Expect, Reply, call, outcome};

/// What a passed-through request carries that the record keeps whole; anything else
/// (an embeddings `input`) is summarised.
const KEPT_INPUTS: [&str; 2] = ["prompt", "messages"];

/// One passed-through request: `body` for `path` (`/v1/embeddings`), answered by
/// `pass`'s backends; `name` is the route name in the log and the header.
pub async fn run(
    proxy: &Arc<Proxy>,
    path: &str,
    name: &str,
    pass: &PassthroughConfig,
    body: Map<String, Value>,
    mut session: Session,
) -> Response {
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let asked = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&proxy.virtual_model)
        .to_string();
    // The backend's path: what follows `/v1` (its base URL ends with it).
    let backend_path = path.strip_prefix("/v1").unwrap_or(path);
    let chain: Vec<BackendId> = std::iter::once(&pass.backend)
        .chain(&pass.failover)
        .map(|b| BackendId::from(b.as_str()))
        .collect();
    let mut failed: Vec<BackendId> = Vec::new();
    for (i, id) in chain.iter().enumerate() {
        let Some(backend) = proxy.backends.get(id) else {
            continue; // validated at start-up
        };
        // A paid backend whose budget is spent is passed over like a chat's route.
        if let Some(spent) = proxy.budgets.check(id) {
            match chain.get(i + 1) {
                Some(next) if spent.when_spent == WhenSpent::Fallback => {
                    if let Some(decision) = session.decision() {
                        decision.route_fallback = Some(format!(
                            "{id}'s {} budget is spent; answered by {next}: {}",
                            spent.per, spent.why
                        ));
                    }
                    continue;
                }
                _ => {
                    let error = crate::error::Error::BudgetSpent {
                        backend: id.clone(),
                        why: spent.why,
                        retry_after_secs: spent.retry_after_secs,
                    };
                    let mut response = execute::fail(session, None, error);
                    mark(&mut response, name, &failed, id);
                    return response;
                }
            }
        }
        let mut body = body.clone();
        body.insert("model".into(), Value::from(backend.model.as_str()));
        let step = session.push_step(record_of(backend, &body, session.keeps_content()));
        let called_at = Instant::now();
        let expect = if stream {
            Expect::Stream
        } else {
            Expect::Completion
        };
        let result = tokio::select! {
            biased;
            () = proxy.drain.drained() => Err(crate::error::Error::ShuttingDown),
            result = call(backend, backend_path, &body, expect, &mut session, step) => result,
        };
        if let Some(record) = session.step(step) {
            record.duration_ms = millis(called_at.elapsed());
        }
        let result = match result {
            Err(error) if outcome::judge(&error).failover && i + 1 < chain.len() => {
                if let Some(record) = session.step(step) {
                    record.error = Some(error.to_string());
                    record.set_failed_status(&error);
                }
                if let Some(decision) = session.decision() {
                    decision.route_fallback = Some(format!(
                        "{id} failed before answering ({error}); answered by {} (failover)",
                        chain[i + 1]
                    ));
                }
                failed.push(id.clone());
                continue;
            }
            other => other,
        };
        let mut response = match result {
            Ok(Reply::Completion(body)) => {
                execute::json_answer(proxy, &backend.id, &body, &asked, session, step)
            }
            Ok(Reply::Json(answer)) => execute::value_answer(proxy, answer, &asked, session, step),
            Ok(Reply::Stream(open)) => {
                let options = RelayOptions {
                    virtual_model: Arc::from(asked.as_str()),
                    include_usage: include_usage(&body),
                    drained: Box::pin(proxy.drain.drained()),
                    max_answer_bytes: proxy.answer_cap,
                };
                let events = relay::relay(open, session, step, called_at, options);
                let keep_alive = KeepAlive::new()
                    .interval(proxy.keep_alive)
                    .text("keep-alive");
                Sse::new(events).keep_alive(keep_alive).into_response()
            }
            Err(error) => execute::fail(session, Some(step), error),
        };
        mark(&mut response, name, &failed, id);
        return response;
    }
    // Only reached with an empty chain, which validation rules out.
    let error = crate::error::Error::UpstreamProtocol {
        backend: BackendId::from(pass.backend.as_str()),
        reason: "not configured".into(),
    };
    execute::fail(session, None, error)
}

/// The step's record: what was sent, but an embeddings input only as a count.
fn record_of(
    backend: &crate::upstream::Backend,
    body: &Map<String, Value>,
    content: bool,
) -> StepRecord {
    let field = KEPT_INPUTS.iter().find(|f| body.contains_key(**f)).copied();
    let mut record = StepRecord::sending(
        Step::Answer,
        &backend.id,
        &backend.model,
        body,
        field.unwrap_or("input"),
        content,
    );
    if field.is_none() && content {
        let items = record.messages_sent.as_array().map_or(1, Vec::len);
        record.messages_sent = Value::from(format!("[{items} input(s), not logged]"));
    }
    record
}

/// The route and failover headers, as chat answers carry them.
fn mark(response: &mut Response, name: &str, failed: &[BackendId], answered: &BackendId) {
    if let Ok(value) = HeaderValue::from_str(name) {
        response.headers_mut().insert(ROUTE_HEADER, value);
    }
    if !failed.is_empty() {
        let chain: Vec<&str> = failed
            .iter()
            .chain(std::iter::once(answered))
            .map(|b| b.as_str())
            .collect();
        if let Ok(value) = HeaderValue::from_str(&chain.join("->")) {
            response.headers_mut().insert(FAILOVER_HEADER, value);
        }
    }
}

/// Whether the client asked for the usage-only chunk of a stream.
fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
