//! Hot reload: watches the prompts folder and swaps in a freshly loaded `PromptSet`
//! shortly after files change, so an edit takes effect on the next request.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::state::AppState;

/// Editors save in bursts (write temp, rename, touch): wait this long after the first
/// change, then reload once.
const SETTLE: Duration = Duration::from_millis(150);

/// Keeps the watch alive; dropping it stops hot reload.
pub struct PromptWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PromptWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `state.config.server.prompts_dir` (recursively: editors replace
/// files, which shows up as events on the folder, not on the old file).
pub fn start(state: Arc<AppState>) -> notify::Result<PromptWatcher> {
    // One slot is enough: a pending signal already means "reload", so extra events are
    // coalesced by dropping them, and the channel can never grow.
    let (changed, mut on_change) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = changed.try_send(());
        }
    })?;
    let dir = state.config.server.prompts_dir.clone();
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    let task = tokio::spawn(async move {
        while on_change.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while on_change.try_recv().is_ok() {}
            reload(&state);
        }
    });
    Ok(PromptWatcher {
        _watcher: watcher,
        task,
    })
}

/// Loads the folder again and swaps the set in; broken files keep their last good text.
fn reload(state: &AppState) {
    let dir = &state.config.server.prompts_dir;
    let current = state.prompts.load();
    let (next, changed) = current.reload(dir);
    if !changed.is_empty() {
        tracing::info!(prompts = ?changed, "prompts reloaded");
        state.prompts.store(Arc::new(next));
    }
}
