//! Hot reload: watches the prompts folder and swaps in a freshly loaded `PromptSet`
//! once a burst of changes is over, so an edit takes effect on the next request. Files
//! are read off the async runtime, within a time bound.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::observe::metrics::Metrics;
use crate::prompts::PromptSet;

/// Editors save in bursts (truncate, write, rename, touch): reload once the folder has
/// been quiet this long.
const SETTLE: Duration = Duration::from_millis(150);
/// ...but no later than this after the first change, however busy the folder stays.
const MAX_WAIT: Duration = Duration::from_secs(3);
/// A reload that takes longer (a hung network file system) is abandoned; the prompts stay.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps the watch alive; dropping it stops hot reload.
pub struct PromptWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PromptWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `dir` for `prompts`. The folder is watched by path: recursively
/// (editors replace files, which shows up on the folder, not on the old file), and its
/// parent too, so a folder that is replaced or deleted and recreated (a `git checkout`,
/// a deploy) is picked up and watched again. Reloads are counted in `metrics`.
pub fn start(
    prompts: Arc<ArcSwap<PromptSet>>,
    dir: &Path,
    metrics: Arc<Metrics>,
) -> notify::Result<PromptWatcher> {
    let dir = std::path::absolute(dir)?;
    // One slot is enough: a pending signal already means "reload", so extra events are
    // coalesced by dropping them, and the channel can never grow.
    let (changed, mut on_change) = mpsc::channel::<()>(1);
    let ours = dir.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event
            .is_ok_and(|e| !e.kind.is_access() && e.paths.iter().any(|p| p.starts_with(&ours)));
        if relevant {
            let _ = changed.try_send(());
        }
    })?;
    if let Some(parent) = dir.parent() {
        watcher.watch(parent, RecursiveMode::NonRecursive)?;
    }
    arm(&mut watcher, &dir);
    let task = tokio::spawn(async move {
        let mut running: Option<tokio::task::JoinHandle<()>> = None;
        while on_change.recv().await.is_some() {
            settle(&mut on_change).await;
            // The folder may be a new one by now: watch it again by path.
            let _ = watcher.unwatch(&dir);
            arm(&mut watcher, &dir);
            if running.as_ref().is_some_and(|job| !job.is_finished()) {
                tracing::warn!(
                    "the last prompt reload is still stuck reading; not starting another"
                );
                continue;
            }
            // Reading files can block (a FIFO, a hung network file system): off the runtime.
            let (prompts, dir, metrics) = (prompts.clone(), dir.clone(), metrics.clone());
            let mut job = tokio::task::spawn_blocking(move || reload(&prompts, &dir, &metrics));
            if tokio::time::timeout(RELOAD_TIMEOUT, &mut job)
                .await
                .is_err()
            {
                tracing::warn!(
                    secs = RELOAD_TIMEOUT.as_secs(),
                    "prompt reload did not finish; prompts stay as they are"
                );
                running = Some(job);
            }
        }
    });
    Ok(PromptWatcher { task })
}

/// Waits until no change has come for `SETTLE`, or `MAX_WAIT` has passed.
async fn settle(on_change: &mut mpsc::Receiver<()>) {
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    loop {
        tokio::time::sleep(SETTLE).await;
        let mut more = false;
        while on_change.try_recv().is_ok() {
            more = true;
        }
        if !more || tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

fn arm(watcher: &mut RecommendedWatcher, dir: &Path) {
    if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the prompts folder yet; prompts stay as they are");
    }
}

/// Loads the folder again and swaps the set in; broken files keep their last good text,
/// and a folder that is missing for a moment keeps the whole set.
fn reload(prompts: &ArcSwap<PromptSet>, dir: &Path, metrics: &Metrics) {
    if !dir.is_dir() {
        tracing::warn!(dir = %dir.display(), "prompts folder missing; keeping the current prompts");
        return;
    }
    let current = prompts.load();
    let (next, changed) = current.reload(dir);
    metrics.prompt_reload(!changed.is_empty());
    if !changed.is_empty() {
        tracing::info!(prompts = ?changed, "prompts reloaded");
        prompts.store(Arc::new(next));
    }
}
