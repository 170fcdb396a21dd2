//! The HTTP edge: the route table and thin handlers, the request context, limits,
//! client keys, the web dashboard, and the state the handlers share.

mod admit;
pub mod chat;
pub mod client_ip;
pub mod client_keys;
pub mod context;
pub mod dashboard;
pub mod health;
pub mod http;
pub mod key_limits;
pub mod limits;
pub mod passthrough;
pub mod state;
pub mod stats;
