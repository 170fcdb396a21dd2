//! Loads the prompt files under `prompts_dir` into an immutable `PromptSet` and renders
//! their `{{placeholders}}`. A missing file falls back to the copy built into the binary
//! (logged as an error); a reload keeps the last good version of a broken file.

use std::path::{Path, PathBuf};

/// Every prompt the router sends, by its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptId {
    /// `primary/system.md`: the local model's base system prompt.
    PrimarySystem,
    /// `routing/system.md`: the classifier's system prompt.
    RoutingSystem,
    /// `routing/request.md`: the classifier's user turn (`{{query}}`, `{{context}}`).
    RoutingRequest,
    /// `routing/truncation_note.md`: marks the cut in an over-long input (`{{omitted}}`).
    TruncationNote,
    /// `xai/system.md`: Grok's system prompt for COMPLEX.
    XaiSystem,
    /// `enrichment/system.md`: Grok's instructions for the ENRICH search hop.
    EnrichmentSystem,
    /// `enrichment/injection.md`: how gathered context reaches the primary (`{{context}}`).
    EnrichmentInjection,
    /// `meta/system.md`: the system prompt for client task prompts.
    MetaSystem,
}

/// What the router knows about one prompt file: where it lives, its built-in copy, and
/// the placeholders it cannot do without.
struct Spec {
    id: PromptId,
    name: &'static str,
    fallback: &'static str,
    required: &'static [&'static str],
}

/// The shipped prompts, compiled in as fallbacks for missing files.
const SPECS: [Spec; 8] = [
    spec(
        PromptId::PrimarySystem,
        "primary/system.md",
        include_str!("../prompts/primary/system.md"),
        &[],
    ),
    spec(
        PromptId::RoutingSystem,
        "routing/system.md",
        include_str!("../prompts/routing/system.md"),
        &[],
    ),
    spec(
        PromptId::RoutingRequest,
        "routing/request.md",
        include_str!("../prompts/routing/request.md"),
        &["query"],
    ),
    spec(
        PromptId::TruncationNote,
        "routing/truncation_note.md",
        include_str!("../prompts/routing/truncation_note.md"),
        &[],
    ),
    spec(
        PromptId::XaiSystem,
        "xai/system.md",
        include_str!("../prompts/xai/system.md"),
        &[],
    ),
    spec(
        PromptId::EnrichmentSystem,
        "enrichment/system.md",
        include_str!("../prompts/enrichment/system.md"),
        &[],
    ),
    spec(
        PromptId::EnrichmentInjection,
        "enrichment/injection.md",
        include_str!("../prompts/enrichment/injection.md"),
        &["context"],
    ),
    spec(
        PromptId::MetaSystem,
        "meta/system.md",
        include_str!("../prompts/meta/system.md"),
        &[],
    ),
];

const fn spec(
    id: PromptId,
    name: &'static str,
    fallback: &'static str,
    required: &'static [&'static str],
) -> Spec {
    Spec {
        id,
        name,
        fallback,
        required,
    }
}

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
    /// Which prompt this is.
    pub id: PromptId,
    /// Path relative to the prompts folder, e.g. `primary/system.md`.
    pub name: &'static str,
    /// The text a model reads (trimmed), before placeholders are filled in.
    pub text: String,
    /// File or built-in fallback.
    pub source: PromptSource,
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
    /// Loads every prompt from `dir`, strictly: a file that cannot be read or lacks a
    /// required placeholder is an error (start-up and `check` fail fast). A missing file
    /// uses its built-in copy, logged as an error.
    pub fn load(dir: &Path) -> Result<Self, PromptError> {
        let prompts = SPECS
            .iter()
            .map(|spec| load_one(dir, spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PromptSet { prompts })
    }

    /// Loads `dir` again for a running router: each file that now fails keeps its
    /// version from `self` (with a warning) so a half-saved edit never breaks requests.
    /// Returns the new set and the names of the prompts whose text changed.
    pub fn reload(&self, dir: &Path) -> (PromptSet, Vec<&'static str>) {
        let mut changed = Vec::new();
        let prompts = SPECS
            .iter()
            .zip(&self.prompts)
            .map(|(spec, old)| match load_one(dir, spec) {
                Ok(new) => {
                    if new.text != old.text || new.source != old.source {
                        changed.push(spec.name);
                    }
                    new
                }
                Err(e) => {
                    tracing::warn!(error = %e, "prompt not reloaded; keeping the last good version");
                    old.clone()
                }
            })
            .collect();
        (PromptSet { prompts }, changed)
    }

    /// The prompt `id`.
    pub fn get(&self, id: PromptId) -> &Prompt {
        // `load` builds one prompt per spec, in `SPECS` order.
        let index = SPECS.iter().position(|s| s.id == id).unwrap_or(0);
        &self.prompts[index]
    }

    /// The text of `id` with `values` filled in.
    pub fn render(&self, id: PromptId, values: &[(&str, &str)]) -> String {
        render(&self.get(id).text, values)
    }

    /// Every prompt in the set, for reports.
    pub fn all(&self) -> &[Prompt] {
        &self.prompts
    }
}

fn load_one(dir: &Path, spec: &Spec) -> Result<Prompt, PromptError> {
    let path = dir.join(spec.name);
    let (text, source) = match std::fs::read_to_string(&path) {
        Ok(text) => (text.trim().to_string(), PromptSource::File(path.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(path = %path.display(), "prompt file missing, using the built-in copy");
            (spec.fallback.trim().to_string(), PromptSource::Fallback)
        }
        Err(e) => {
            return Err(PromptError {
                path,
                reason: e.to_string(),
            });
        }
    };
    if let Some(missing) = spec
        .required
        .iter()
        .find(|name| !placeholders(&text).contains(name))
    {
        return Err(PromptError {
            path,
            reason: format!("the required placeholder {{{{{missing}}}}} is missing"),
        });
    }
    Ok(Prompt {
        id: spec.id,
        name: spec.name,
        text,
        source,
    })
}

/// The names of the `{{name}}` placeholders in `template` (spaces inside allowed).
fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

/// Fills `{{name}}` placeholders in one pass: inserted values are never scanned again,
/// so a user who types `{{context}}` cannot pull other text into a prompt. Unknown
/// placeholders are left as written.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            let name = after[..end].trim();
            values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value, end))
        });
        match value {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn files_win_and_missing_files_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "primary/system.md", "\nBe brief.\n\n");
        let set = PromptSet::load(dir.path()).unwrap();
        let primary = set.get(PromptId::PrimarySystem);
        assert_eq!(primary.text, "Be brief.");
        assert!(matches!(primary.source, PromptSource::File(_)));
        let meta = set.get(PromptId::MetaSystem);
        assert_eq!(meta.source, PromptSource::Fallback);
        assert_eq!(meta.text, SPECS[7].fallback.trim());
        assert_eq!(set.all().len(), 8);
    }

    #[test]
    fn a_missing_required_placeholder_is_an_error_at_load() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "routing/request.md", "Classify this.");
        let err = PromptSet::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("routing/request.md") && err.contains("{{query}}"),
            "{err}"
        );
    }

    #[test]
    fn reload_keeps_the_last_good_version_of_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "routing/request.md", "Q: {{query}}");
        let set = PromptSet::load(dir.path()).unwrap();
        write(dir.path(), "routing/request.md", "Q: nothing");
        write(dir.path(), "primary/system.md", "New primary.");
        let (next, changed) = set.reload(dir.path());
        assert_eq!(next.get(PromptId::RoutingRequest).text, "Q: {{query}}");
        assert_eq!(next.get(PromptId::PrimarySystem).text, "New primary.");
        assert_eq!(changed, vec!["primary/system.md"]);
    }

    #[test]
    fn required_placeholders_may_have_spaces() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "routing/request.md", "Q: {{ query }}");
        assert!(PromptSet::load(dir.path()).is_ok());
        assert_eq!(placeholders("{{a}} {{ b }} {{c"), ["a", "b"]);
    }

    #[test]
    fn render_fills_known_placeholders_once() {
        let text = render(
            "Q: {{query}}\nC: {{ context }}\nKeep {{unknown}} and {{ open",
            &[("query", "what is {{context}}?"), ("context", "none")],
        );
        assert_eq!(
            text,
            "Q: what is {{context}}?\nC: none\nKeep {{unknown}} and {{ open"
        );
    }
}
