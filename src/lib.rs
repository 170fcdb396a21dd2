//! ai-router: an OpenAI-compatible reverse proxy that decides, for every chat request,
//! which backend answers it, relays the answer, and writes one session log per request.
//!
//! # Layout
//! Folders in the order a request meets them; each may use only those below it (a test
//! in `tests/router/architecture.rs` holds the line).
//! - `app`: builds the router from config (`App::build`) and serves it
//!   - `accept` the accept loop, `workers` the threads that serve connections, `in_flight` requests being answered, `serve` grace and farewell, `shutdown`, `telemetry`,
//!     `fd_limit`, `hot_reload` and `reloads` (prompts, META rules), `shared_spend` (replicas' budgets)
//! - `edge`: the HTTP surface and `AppState`
//!   - `http` the route table, `context` request id and log line, `client_ip`,
//!     `client_keys`, `key_limits`, `limits` (headers, body), `admit` what every answered request passes, `chat` the chat handler,
//!     `health`, `stats` (`/stats`, `/metrics`), `state`, `dashboard` (the web dashboard:
//!     `guard` loopback or `admin_key`, `assets`, `overview` and `live` its SSE feed,
//!     `sessions`, `playground`, `prompts`)
//! - `proxy`: runs a decision
//!   - `execute` the answering routes with failover, `search` a route's search hop,
//!     `shape` a body per route, `relay` the SSE relay, `drain` the end of the grace period
//! - `routing`: the decision
//!   - `meta` and `meta_rules` task prompts, `classify` and `cache` the classifier,
//!     `decide` label and fallback, `table` the route table, `answering` who really answers
//! - `upstream`: the backends
//!   - `pool` endpoints, least in flight, ejection; `call` the one call; `outcome` what a
//!     failure means for retry, failover and health; `stream` a stream's first event;
//!     `probe` background and readiness probes, `readiness` their shared rounds, `worker`
//!     which worker thread a call runs on, `clients` a backend's HTTP clients (one per worker)
//! - `record`: the session log
//!   - `decision`, `log` the record's fields, `session` its drop guard, `sink` where it
//!     goes, `writer`, `fit` the size bound (`measure` its sizes), `disk` atomic writes, `rotation`, `store`
//!     reading it back, `folders` which folders (one per replica), `summary`, `capture` (`chunk_view` a chunk read without a Value),
//!     `cost` what a step cost, `budget` the cloud budgets' ledger
//! - `observe`: `metrics` (Prometheus: its `labels`, the `spend` gauges) `live` counters and `recent` requests, fed by the records
//! - `tools`: `cli` the command line, `check`, `classify`, `eval` (the golden set), `sessions`, `replay`, `progress`
//! - leaves: `config`, `prompts`, `openai` (wire format), `error`, `names`, `secret`,
//!   `files` (reading files the router does not control)

#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod edge;
pub mod error;
pub mod files;
pub mod names;
pub mod observe;
pub mod openai;
pub mod prompts;
pub mod proxy;
pub mod record;
pub mod routing;
pub mod secret;
pub mod tools;
pub mod upstream;

pub use app::{App, serve};
pub use edge::state::AppState;

/// The HTTP application for `state`; tests drive it with `oneshot` or a listener.
pub fn app(state: std::sync::Arc<AppState>) -> axum::Router {
    edge::http::routes(state)
}
