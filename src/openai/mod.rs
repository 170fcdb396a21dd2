//! The OpenAI wire format the router reads: chat requests, and backends' error bodies
//! normalised to OpenAI's envelope.

pub mod chat;
pub mod error_body;
