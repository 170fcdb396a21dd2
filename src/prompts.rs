//! Loads the prompt files under `prompts_dir` into an immutable `PromptSet`; a missing
//! file falls back to the copy built into the binary, with a logged error.

use std::path::{Path, PathBuf};

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
    pub name: &'static str,
    /// The text a model reads.
    pub text: String,
    /// File or built-in fallback.
    pub source: PromptSource,
}

/// Every prompt the router sends, loaded together so a request sees one consistent set.
#[derive(Clone, Debug)]
pub struct PromptSet {
    /// `primary/system.md`: the base system prompt for the local model.
    pub primary_system: Prompt,
}

/// Why a prompt file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("prompt {path}: {reason}")]
pub struct PromptError {
    path: PathBuf,
    reason: String,
}

/// The shipped prompts, compiled in as the fallback for a missing file.
const PRIMARY_SYSTEM: (&str, &str) = (
    "primary/system.md",
    include_str!("../prompts/primary/system.md"),
);

impl PromptSet {
    /// Loads every prompt from `dir`. A missing file uses its fallback (logged as an
    /// error); a file that exists but cannot be read is an error.
    pub fn load(dir: &Path) -> Result<Self, PromptError> {
        Ok(PromptSet {
            primary_system: load_one(dir, PRIMARY_SYSTEM)?,
        })
    }

    /// Every prompt in the set, for reports.
    pub fn all(&self) -> Vec<&Prompt> {
        vec![&self.primary_system]
    }
}

fn load_one(dir: &Path, (name, fallback): (&'static str, &str)) -> Result<Prompt, PromptError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Prompt {
            name,
            text: text.trim().to_string(),
            source: PromptSource::File(path),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(path = %path.display(), "prompt file missing, using the built-in copy");
            Ok(Prompt {
                name,
                text: fallback.trim().to_string(),
                source: PromptSource::Fallback,
            })
        }
        Err(e) => Err(PromptError {
            path,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("primary")).unwrap();
        std::fs::write(dir.path().join("primary/system.md"), "\nBe brief.\n\n").unwrap();
        let set = PromptSet::load(dir.path()).unwrap();
        assert_eq!(set.primary_system.text, "Be brief.");
        assert!(matches!(set.primary_system.source, PromptSource::File(_)));
    }

    #[test]
    fn missing_file_uses_the_built_in_copy() {
        let dir = tempfile::tempdir().unwrap();
        let set = PromptSet::load(dir.path()).unwrap();
        assert_eq!(set.primary_system.source, PromptSource::Fallback);
        assert_eq!(set.primary_system.text, PRIMARY_SYSTEM.1.trim());
        assert!(!set.primary_system.text.is_empty());
    }
}
