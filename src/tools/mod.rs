//! The command-line tools: the command line itself, `check`, `classify` and
//! `sessions …` (list, show, stats, export, replay).

pub mod check;
pub mod classify;
pub mod cli;
pub mod replay;
pub mod sessions;
