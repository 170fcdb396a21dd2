//! The routing decision: META detection, the classifier and its cache, labels and
//! the fallback.

pub mod cache;
pub mod classify;
pub mod decision;
pub mod meta;
pub mod meta_rules;
