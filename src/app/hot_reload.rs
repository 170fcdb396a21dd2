//! Hot reload: watches folders (the prompts, the META rules file's) and, once a burst of
//! changes is over, reloads what changed, so an edit takes effect on the next request.
//! Files are read off the async runtime, within a time bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Editors save in bursts (truncate, write, rename, touch): reload once the folder has
/// been quiet this long.
const SETTLE: Duration = Duration::from_millis(150);
/// ...but no later than this after the first change, however busy the folder stays.
const MAX_WAIT: Duration = Duration::from_secs(3);
/// A reload that takes longer (a hung network file system) is abandoned; what was
/// loaded stays.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Something reloaded from files when a folder changes.
pub struct Target {
    /// What it is, for the logs.
    pub name: &'static str,
    /// The folder whose changes mean a reload.
    pub dir: PathBuf,
    /// Whether changes in its sub-folders count too.
    pub recursive: bool,
    /// Loads the files again and swaps in what is good. Blocks on the file system.
    pub reload: Box<dyn Fn() + Send + Sync>,
}

impl Target {
    /// Whether a change at `path` concerns this target.
    fn concerns(&self, path: &Path) -> bool {
        if self.recursive {
            path.starts_with(&self.dir)
        } else {
            path == self.dir || path.parent() == Some(&self.dir)
        }
    }
}

/// Keeps the watch alive; dropping it stops hot reload.
pub struct HotReload {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HotReload {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching every target's folder. Folders are watched by path, with their
/// parents: editors replace files (which shows up on the folder, not on the old file),
/// a deploy or `git checkout` replaces the folder itself, and a Kubernetes ConfigMap
/// swaps a `..data` link inside it and deletes the folder the old link pointed at.
/// After every burst each folder is watched again by path, so the watch follows what
/// the path means now, never a deleted folder.
pub fn start(targets: Vec<Target>) -> notify::Result<HotReload> {
    let targets: Arc<Vec<Target>> = Arc::new(
        targets
            .into_iter()
            .map(|t| std::path::absolute(&t.dir).map(|dir| Target { dir, ..t }))
            .collect::<std::io::Result<_>>()?,
    );
    let dirty: Arc<Vec<AtomicBool>> =
        Arc::new(targets.iter().map(|_| AtomicBool::new(false)).collect());
    // One slot is enough: a pending signal already means "reload", so extra events are
    // coalesced by dropping them, and the channel can never grow.
    let (changed, mut on_change) = mpsc::channel::<()>(1);
    let (seen, marks) = (targets.clone(), dirty.clone());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let mut any = false;
        for (target, mark) in seen.iter().zip(marks.iter()) {
            if event.paths.iter().any(|p| target.concerns(p)) {
                mark.store(true, Ordering::Relaxed);
                any = true;
            }
        }
        if any {
            let _ = changed.try_send(());
        }
    })?;
    let folders = Arc::new(folders(&targets));
    arm(&mut watcher, &folders);
    let watcher = Arc::new(std::sync::Mutex::new(watcher));
    let task = tokio::spawn(async move {
        let mut running: Option<tokio::task::JoinHandle<()>> = None;
        while on_change.recv().await.is_some() {
            settle(&mut on_change).await;
            if running.as_ref().is_some_and(|job| !job.is_finished()) {
                tracing::warn!("the last reload is still stuck reading; not starting another");
                continue;
            }
            let due: Vec<usize> = (0..targets.len())
                .filter(|&i| dirty[i].swap(false, Ordering::Relaxed))
                .collect();
            // Watching and reading can block (a FIFO, a hung network file system): both
            // off the runtime.
            let targets = targets.clone();
            let (watcher, folders) = (watcher.clone(), folders.clone());
            let mut job = tokio::task::spawn_blocking(move || {
                // A folder may be a new one by now: watch them all again by path.
                if let Ok(mut watcher) = watcher.lock() {
                    for dir in folders.keys() {
                        let _ = watcher.unwatch(dir);
                    }
                    arm(&mut watcher, &folders);
                }
                for i in due {
                    tracing::debug!(what = targets[i].name, "reloading");
                    (targets[i].reload)();
                }
            });
            if tokio::time::timeout(RELOAD_TIMEOUT, &mut job)
                .await
                .is_err()
            {
                tracing::warn!(
                    secs = RELOAD_TIMEOUT.as_secs(),
                    "reload did not finish; what was loaded stays as it is"
                );
                running = Some(job);
            }
        }
    });
    Ok(HotReload { task })
}

/// The folders to watch and how: each target's (recursively when it says so) and its
/// parent. One folder asked for twice is watched once, recursively if either asks.
fn folders(targets: &[Target]) -> BTreeMap<PathBuf, RecursiveMode> {
    let mut folders = BTreeMap::new();
    for target in targets {
        if let Some(parent) = target.dir.parent() {
            folders
                .entry(parent.to_path_buf())
                .or_insert(RecursiveMode::NonRecursive);
        }
        if target.recursive {
            folders.insert(target.dir.clone(), RecursiveMode::Recursive);
        } else {
            folders
                .entry(target.dir.clone())
                .or_insert(RecursiveMode::NonRecursive);
        }
    }
    folders
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

fn arm(watcher: &mut RecommendedWatcher, folders: &BTreeMap<PathBuf, RecursiveMode>) {
    for (dir, mode) in folders {
        if let Err(e) = watcher.watch(dir, *mode) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch this folder yet; what was loaded from it stays");
        }
    }
}
