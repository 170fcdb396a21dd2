//! Loads the prompt files under `prompts_dir` that the config names into an immutable
//! `PromptSet` and renders their `{{placeholders}}`. A shipped file that is missing falls
//! back to the copy built into the binary (logged as an error); a reload keeps the last
//! good version of a broken file.

use std::path::{Path, PathBuf};

mod template;
mod wanted;
use template::placeholders;
pub use template::{render, today};
use wanted::BUILT_IN;
pub use wanted::{Wanted, wanted};

/// `routing/system.md`: the classifier's system prompt.
pub const ROUTING_SYSTEM: &str = "routing/system.md";
/// `routing/request.md`: the classifier's user turn (`{{query}}`, `{{context}}`).
pub const ROUTING_REQUEST: &str = "routing/request.md";
/// `routing/truncation_note.md`: marks the cut in an over-long input (`{{omitted}}`).
pub const TRUNCATION_NOTE: &str = "routing/truncation_note.md";

/// Where a prompt's text came from, for `ai-router check` and the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptSource {
    /// Read from this file.
    File(PathBuf),
    /// The file was missing; the built-in copy is used.
    Fallback,
}

/// One prompt: its text and where it came from.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// Path relative to the prompts folder, e.g. `primary/system.md`.
    pub name: String,
    /// The text a model reads (trimmed), before placeholders are filled in.
    pub text: String,
    /// File or built-in fallback.
    pub source: PromptSource,
    /// When this text was read in (at start-up, or by the reload that changed it).
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// Why the last reload could not use the file, when it kept this (last good) text.
    pub reload_error: Option<String>,
    /// What is required of the file, kept for reloads.
    wanted: Wanted,
}

/// Every prompt, loaded together so a request sees one consistent set.
#[derive(Clone, Debug)]
pub struct PromptSet {
    prompts: Vec<Prompt>,
}

/// Why a prompt file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("prompt {path}: {reason}")]
pub struct PromptError {
    path: PathBuf,
    reason: String,
}

impl PromptSet {
    /// Loads every `wanted` prompt from `dir`, strictly: a file that cannot be read or
    /// lacks a required placeholder is an error (start-up and `check` fail fast). A
    /// missing shipped file uses its built-in copy, logged as an error; a missing file
    /// of the admin's own is an error naming the key that asks for it.
    pub fn load(dir: &Path, wanted: &[Wanted]) -> Result<Self, PromptError> {
        let prompts = wanted
            .iter()
            .map(|w| load_one(dir, w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PromptSet { prompts })
    }

    /// Loads `dir` again for a running router: each file that now fails keeps its
    /// version from `self` (with a warning) so a half-saved edit never breaks requests,
    /// and so does a file that changes between two reads `STABLE` apart (a save caught
    /// half-way; its end brings another reload). Returns the new set and the names of the
    /// prompts whose text changed. Blocks on the file system: call it off the runtime.
    pub fn reload(&self, dir: &Path) -> (PromptSet, Vec<String>) {
        let first: Vec<_> = self
            .prompts
            .iter()
            .map(|old| load_one(dir, &old.wanted))
            .collect();
        std::thread::sleep(STABLE);
        let mut changed = Vec::new();
        let prompts = self
            .prompts
            .iter()
            .zip(first)
            .map(|(old, first)| match (first, load_one(dir, &old.wanted)) {
                (Ok(first), Ok(again)) if first.text == again.text => {
                    if again.text != old.text || again.source != old.source {
                        changed.push(old.name.clone());
                        again
                    } else {
                        // Unchanged: it keeps the time it was read in.
                        Prompt {
                            reload_error: None,
                            ..old.clone()
                        }
                    }
                }
                (Ok(_), Ok(_)) => {
                    tracing::warn!(prompt = %old.name, "prompt still being written; keeping the last good version");
                    old.clone()
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "prompt not reloaded; keeping the last good version");
                    Prompt {
                        reload_error: Some(e.to_string()),
                        ..old.clone()
                    }
                }
            })
            .collect();
        (PromptSet { prompts }, changed)
    }

    /// The prompt `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.iter().find(|p| p.name == name)
    }

    /// The text of `name` with `values` filled in; empty for no prompt (`""`) or one the
    /// set does not have (the config is validated against the set at start-up).
    pub fn render(&self, name: &str, values: &[(&str, &str)]) -> String {
        self.get(name)
            .map_or_else(String::new, |p| render(&p.text, values))
    }

    /// Every prompt in the set, for reports.
    pub fn all(&self) -> &[Prompt] {
        &self.prompts
    }
}

fn load_one(dir: &Path, wanted: &Wanted) -> Result<Prompt, PromptError> {
    let path = dir.join(&wanted.name);
    let built_in = BUILT_IN.iter().find(|b| b.name == wanted.name);
    let (text, source) = match read_prompt(&path) {
        Ok(text) => (text, PromptSource::File(path.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match built_in {
            Some(built_in) => {
                tracing::error!(path = %path.display(), "prompt file missing, using the built-in copy");
                (built_in.text.trim().to_string(), PromptSource::Fallback)
            }
            None => {
                return Err(PromptError {
                    path,
                    reason: format!("file not found (named by {})", wanted.named_by),
                });
            }
        },
        Err(e) => {
            return Err(PromptError {
                path,
                reason: e.to_string(),
            });
        }
    };
    let required = built_in
        .map_or(&[][..], |b| b.required)
        .iter()
        .chain(&wanted.required);
    let found = placeholders(&text);
    for missing in required {
        if !found.contains(missing) {
            return Err(PromptError {
                path,
                reason: format!("the required placeholder {{{{{missing}}}}} is missing"),
            });
        }
    }
    Ok(Prompt {
        name: wanted.name.clone(),
        text,
        source,
        loaded_at: chrono::Utc::now(),
        reload_error: None,
        wanted: wanted.clone(),
    })
}

/// How long a file must stay the same to be reloaded.
const STABLE: std::time::Duration = std::time::Duration::from_millis(25);

/// Largest prompt file read: a prompt is a page or two.
const MAX_PROMPT_BYTES: u64 = 256 * 1024;

/// The text of the prompt file at `path`, trimmed. Only a regular file is read (a FIFO
/// would block until written, a link to `/dev/zero` never end), at most
/// `MAX_PROMPT_BYTES`; an empty one is an error, since it is most often a save caught
/// half-way (truncated, not yet written).
fn read_prompt(path: &Path) -> std::io::Result<String> {
    let text = crate::files::read_text(path, MAX_PROMPT_BYTES, crate::files::Links::Follow)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(std::io::Error::other(
            "the file is empty (for no prompt, set the route's prompt to \"\")",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn shipped() -> Vec<Wanted> {
        wanted(&Config::default())
    }

    #[test]
    fn the_shipped_config_wants_the_shipped_files_and_describing_the_rest() {
        let mut config = Config::default();
        config.routes.entry("MODERATE".into()).or_default().describe =
            Some(crate::config::DescribeConfig::default());
        let mut names: Vec<String> = wanted(&config).into_iter().map(|w| w.name).collect();
        names.sort();
        let mut built_in: Vec<&str> = BUILT_IN.iter().map(|b| b.name).collect();
        built_in.sort_unstable();
        assert_eq!(names, built_in);
    }

    #[test]
    fn files_win_and_missing_files_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "primary/system.md", "\nBe brief.\n\n");
        let set = PromptSet::load(dir.path(), &shipped()).unwrap();
        let primary = set.get("primary/system.md").unwrap();
        assert_eq!(primary.text, "Be brief.");
        assert!(matches!(primary.source, PromptSource::File(_)));
        let meta = set.get("meta/system.md").unwrap();
        assert_eq!(meta.source, PromptSource::Fallback);
        let built_in = BUILT_IN
            .iter()
            .find(|b| b.name == "meta/system.md")
            .unwrap();
        assert_eq!(meta.text, built_in.text.trim());
        assert_eq!(
            set.all().len(),
            8,
            "vision/ only when a route describes images"
        );
    }

    #[test]
    fn a_missing_file_of_the_admins_own_is_an_error_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.routes.insert(
            "CODE".into(),
            crate::config::RouteConfig {
                backend: "primary".into(),
                prompt: "code/system.md".into(),
                ..Default::default()
            },
        );
        let err = PromptSet::load(dir.path(), &wanted(&config))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("code/system.md") && err.contains("routes.CODE.prompt"),
            "{err}"
        );
        write(dir.path(), "code/system.md", "Write code.");
        let set = PromptSet::load(dir.path(), &wanted(&config)).unwrap();
        assert_eq!(set.render("code/system.md", &[]), "Write code.");
    }

    #[test]
    fn a_missing_required_placeholder_is_an_error_at_load() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "routing/request.md", "Classify this.");
        let err = PromptSet::load(dir.path(), &shipped())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("routing/request.md") && err.contains("{{query}}"),
            "{err}"
        );
    }

    #[test]
    fn reload_keeps_the_last_good_version_of_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "routing/request.md", "Q: {{query}}");
        let set = PromptSet::load(dir.path(), &shipped()).unwrap();
        write(dir.path(), "routing/request.md", "Q: nothing");
        write(dir.path(), "primary/system.md", "New primary.");
        let (next, changed) = set.reload(dir.path());
        assert_eq!(next.get(ROUTING_REQUEST).unwrap().text, "Q: {{query}}");
        assert_eq!(next.get("primary/system.md").unwrap().text, "New primary.");
        assert_eq!(changed, vec!["primary/system.md"]);
    }

    #[test]
    fn only_a_regular_file_of_sensible_size_with_text_is_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "primary/system.md", "  \n\n");
        let err = PromptSet::load(dir.path(), &shipped())
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
        write(dir.path(), "primary/system.md", &"x".repeat(300 * 1024));
        let err = PromptSet::load(dir.path(), &shipped())
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than"), "{err}");
        std::fs::remove_file(dir.path().join("primary/system.md")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("primary/system.md")).unwrap();
        let err = PromptSet::load(dir.path(), &shipped())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn required_placeholders_may_have_spaces() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "routing/request.md", "Q: {{ query }}");
        assert!(PromptSet::load(dir.path(), &shipped()).is_ok());
        assert_eq!(placeholders("{{a}} {{ b }} {{c"), ["a", "b"]);
    }
}
