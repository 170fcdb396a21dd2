//! With `sessions.shared_dir`, replicas share their cloud budgets through the session
//! logs: every 30 s each one reads the files the others wrote in the last hour (the
//! ledger skips those it counted already). A replica learns another's spend within half
//! a minute of its request ending, so the fleet may pass a ceiling by what it spends in
//! that time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::record::budget::Budgets;

/// How often the shared folder is read.
const EVERY: Duration = Duration::from_secs(30);
/// How far back each read looks, by request start: a request that ran longer than this
/// is counted by the other replicas at their next start-up.
const LOOK_BACK: Duration = Duration::from_secs(3600);
/// Longest a read may take before the next is skipped (a hung network filesystem).
const READ_FOR_AT_MOST: Duration = Duration::from_secs(20);

/// Reads `dirs` into `budgets` every 30 s until the task is aborted.
pub fn spawn(budgets: Arc<Budgets>, dirs: Vec<PathBuf>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await; // start-up has just read them
        // Set while a read runs: one stuck on a hung disk is never joined by another.
        let reading = Arc::new(AtomicBool::new(false));
        loop {
            tick.tick().await;
            if reading.swap(true, Ordering::AcqRel) {
                continue;
            }
            let (budgets, dirs, done) = (budgets.clone(), dirs.clone(), reading.clone());
            let since = chrono::Utc::now()
                - chrono::Duration::from_std(LOOK_BACK).unwrap_or(chrono::Duration::hours(1));
            let read = tokio::task::spawn_blocking(move || {
                let result = budgets.read_logs(&dirs, since);
                done.store(false, Ordering::Release);
                result
            });
            match tokio::time::timeout(READ_FOR_AT_MOST, read).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err(error))) => {
                    tracing::warn!(error = %error, "could not read the shared session folder for the cloud budgets");
                }
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "reading the shared session folder failed")
                }
                Err(_) => tracing::warn!(
                    secs = READ_FOR_AT_MOST.as_secs(),
                    "reading the shared session folder is slow; the next reads wait for it"
                ),
            }
        }
    })
}
