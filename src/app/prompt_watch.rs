//! Hot reload: watches the prompts folder and swaps in a freshly loaded `PromptSet`
//! shortly after files change, so an edit takes effect on the next request.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::observe::metrics::Metrics;
use crate::prompts::PromptSet;

/// Editors save in bursts (write temp, rename, touch): wait this long after the first
/// change, then reload once.
const SETTLE: Duration = Duration::from_millis(150);

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
        while on_change.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while on_change.try_recv().is_ok() {}
            // The folder may be a new one by now: watch it again by path.
            let _ = watcher.unwatch(&dir);
            arm(&mut watcher, &dir);
            reload(&prompts, &dir, &metrics);
        }
    });
    Ok(PromptWatcher { task })
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
