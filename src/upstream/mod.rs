//! The backends: their clients, the one call, and their health.

pub mod backend;
pub mod health;
