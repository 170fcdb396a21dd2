//! Builds the router from its config and serves it: the accept loop, shutdown, tracing,
//! the open-file limit and prompt hot reload.

pub mod accept;
pub mod fd_limit;
pub mod prompt_watch;
pub mod shutdown;
pub mod telemetry;
