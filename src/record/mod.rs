//! The session record and its drop guard, the writer, rotation, the store and summaries.

pub mod capture;
pub mod rotation;
pub mod session;
pub mod sink;
pub mod store;
pub mod summary;
pub mod writer;
