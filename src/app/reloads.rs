//! What hot reload reloads: the prompt set, and the META rules file. Each keeps what it
//! had when the new files are broken or missing, so a bad edit never breaks requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::hot_reload::Target;
use crate::observe::metrics::Metrics;
use crate::prompts::PromptSet;
use crate::routing::meta_rules::MetaRules;

/// The prompts folder, watched with its sub-folders; reloads are counted in `metrics`.
pub fn prompts(prompts: Arc<ArcSwap<PromptSet>>, dir: &Path, metrics: Arc<Metrics>) -> Target {
    let folder = dir.to_path_buf();
    Target {
        name: "prompts",
        dir: dir.to_path_buf(),
        recursive: true,
        reload: Box::new(move || reload_prompts(&prompts, &folder, &metrics)),
    }
}

/// The META rules file, by its folder: an editor's save and a ConfigMap's `..data` swap
/// both show up there, not on the file.
pub fn meta_rules(rules: Arc<ArcSwap<MetaRules>>, file: &Path) -> Target {
    let path = file.to_path_buf();
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Target {
        name: "META rules",
        dir,
        recursive: false,
        reload: Box::new(move || reload_rules(&rules, &path)),
    }
}

/// Loads the folder again and swaps the set in; broken files keep their last good text,
/// and a folder that is missing for a moment keeps the whole set.
fn reload_prompts(prompts: &ArcSwap<PromptSet>, dir: &Path, metrics: &Metrics) {
    if !dir.is_dir() {
        tracing::warn!(dir = %dir.display(), "prompts folder missing; keeping the current prompts");
        return;
    }
    let current = prompts.load();
    let (next, changed) = current.reload(dir);
    metrics.prompt_reload(!changed.is_empty());
    if !changed.is_empty() {
        tracing::info!(prompts = ?changed, "prompts reloaded");
    }
    // A file that broke, or was mended, changes no text but is shown (the dashboard's
    // prompts page), so the set is swapped for that too.
    let errors_moved = (next.all().iter())
        .zip(current.all())
        .any(|(next, now)| next.reload_error != now.reload_error);
    if !changed.is_empty() || errors_moved {
        prompts.store(Arc::new(next));
    }
}

/// Loads the rules file again; a file that is missing or does not compile keeps the
/// rules there are (the error says which rule is wrong). Other files in the folder
/// (router.toml beside it) also wake this: an unchanged file changes nothing.
fn reload_rules(rules: &ArcSwap<MetaRules>, path: &Path) {
    match MetaRules::load(path) {
        Ok(next) if next == **rules.load() => {}
        Ok(next) => {
            tracing::info!(file = %path.display(), rules = next.len(), "META rules reloaded");
            rules.store(Arc::new(next));
        }
        Err(e) => tracing::warn!(error = %e, "META rules not reloaded; keeping the current rules"),
    }
}
