//! The router's integration tests, one binary (linking one per file cost more than
//! running them): real HTTP on 127.0.0.1 against in-process fake backends, the binary
//! as admins run it, and the layout of the source. `log_lines` has a binary of its own
//! (it installs the process-wide tracing subscriber), and so has the fault suite
//! (`make faults`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure should panic with its message"
)]

#[path = "../common/mod.rs"]
mod common;

mod admin_view;
mod architecture;
mod budget;
mod chat_json;
mod chat_stream;
mod chosen_routes;
mod cli;
mod confidence;
mod configmap_reload;
mod dashboard_access;
mod dashboard_api;
mod describe;
mod errors;
mod eval;
mod images;
mod limits;
mod meta_rules;
mod passthrough;
mod prompt_reload;
mod properties;
mod review_board;
mod routes;
mod sessions;
mod sessions_replicas;
mod sessions_tools;
mod shipped_routes;
mod sticky;
mod surface;
mod xai_key;
