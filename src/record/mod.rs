//! The session record: the decision, the log's fields, the drop guard that finishes every
//! request's record exactly once, where records go (the writer, the observers), rotation,
//! and reading the folder back (the store, summaries).

pub mod budget;
pub mod capture;
mod chunk_view;
pub mod cost;
pub mod decision;
pub mod disk;
pub mod fit;
pub mod folders;
pub mod log;
mod measure;
pub mod rotation;
pub mod segment;
pub mod session;
pub mod sink;
pub mod store;
pub mod summary;
pub mod writer;
