//! Recognises Open WebUI's task requests (titles, tags, follow-ups, …) by their text, with
//! declarative rules an admin keeps in a TOML file (`config/meta_rules.toml`, which
//! documents the rule language), and the looser `[[suspect]]` shapes that only flag a
//! request. Runs on every request, so matching is plain prefix, substring and whole-line
//! tests on at most the last user message and the system messages.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::meta_match::{MIN_ANCHOR_CHARS, Matcher, role, text_of};

/// Where `parse` says the text came from in its errors (`load` names the file instead).
const INLINE_ORIGIN: &str = "META rules";

/// The text rules, loaded from a TOML file (config/meta_rules.toml).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaRules {
    rules: Vec<Rule>,
    /// `[[suspect]]` tables: shapes that look like a client's task but route nothing; a
    /// request no rule matched that fits one is flagged, so a new template is noticed.
    suspects: Vec<Rule>,
}

/// Why a META rules file could not be used; every variant names the file (or text) it read.
#[derive(Debug, thiserror::Error)]
pub enum MetaRulesError {
    /// The file could not be read.
    #[error("cannot read META rules file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{origin}: not valid TOML: {source}")]
    Syntax {
        /// The file (or `META rules` for inline text).
        origin: String,
        /// The parser's message, with line and column.
        source: toml::de::Error,
    },
    /// The top level holds something other than `[[rule]]` tables.
    #[error("{origin}: {reason}")]
    Layout {
        /// The file (or `META rules` for inline text).
        origin: String,
        /// What is wrong, in the admin's terms.
        reason: String,
    },
    /// One rule is malformed, duplicated or too loose to be safe.
    #[error("{origin}: rule {rule}: {reason}")]
    Rule {
        /// The file (or `META rules` for inline text).
        origin: String,
        /// The rule's position and name, e.g. `#3 "title_generation"`.
        rule: String,
        /// What is wrong, in the admin's terms.
        reason: String,
    },
}

impl MetaRules {
    /// Reads and compiles the rules in `path`; errors name the file and the bad rule.
    pub fn load(path: &Path) -> Result<Self, MetaRulesError> {
        // A rules file is a few pages; a bound keeps a link to `/dev/zero` harmless.
        const MAX_BYTES: u64 = 1024 * 1024;
        let text = crate::files::read_text(path, MAX_BYTES, crate::files::Links::Follow).map_err(
            |source| MetaRulesError::Read {
                path: path.to_path_buf(),
                source,
            },
        )?;
        parse_from(&text, &path.display().to_string())
    }

    /// Compiles rules from TOML text (the contents of a rules file).
    pub fn parse(toml_text: &str) -> Result<Self, MetaRulesError> {
        parse_from(toml_text, INLINE_ORIGIN)
    }

    /// The name of the first rule that matches this conversation (OpenAI `messages` array), or None.
    pub fn detect(&self, messages: &[Value]) -> Option<&str> {
        first_match(&self.rules, messages)
    }

    /// The name of the first `[[suspect]]` table this conversation fits, or None. Only a
    /// flag for the session log and metrics: it never routes, whatever `detect` said.
    pub fn suspect(&self, messages: &[Value]) -> Option<&str> {
        first_match(&self.suspects, messages)
    }

    /// The rules' names, in the order they are tried.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.name.as_str())
    }

    /// The `[[suspect]]` tables' names, in the order they are tried.
    pub fn suspect_names(&self) -> impl Iterator<Item = &str> {
        self.suspects.iter().map(|rule| rule.name.as_str())
    }

    /// How many rules are loaded (suspect tables not counted: they never route).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rules are loaded (text detection then never fires).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The name of the first of `rules` that matches `messages`.
fn first_match<'a>(rules: &'a [Rule], messages: &[Value]) -> Option<&'a str> {
    if rules.is_empty() {
        return None;
    }
    // Found once: every rule but the system-only ones looks at it.
    let last_user = messages
        .iter()
        .rev()
        .find(|message| role(message) == Some("user"))
        .and_then(text_of);
    rules
        .iter()
        .find(|rule| rule.matches(messages, last_user.as_deref()))
        .map(|rule| rule.name.as_str())
}

/// One `[[rule]]` (or `[[suspect]]`) table as written; unknown keys are errors so a typo cannot silently widen a rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    max_messages: Option<usize>,
    last_user: Option<Matcher>,
    system: Option<Matcher>,
}

/// A validated rule, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    name: String,
    max_messages: usize,
    last_user: Option<Matcher>,
    system: Option<Matcher>,
}

fn parse_from(text: &str, origin: &str) -> Result<MetaRules, MetaRulesError> {
    let table: toml::Table = toml::from_str(text).map_err(|source| MetaRulesError::Syntax {
        origin: origin.to_owned(),
        source,
    })?;
    let layout = |reason: String| MetaRulesError::Layout {
        origin: origin.to_owned(),
        reason,
    };
    let mut parsed = MetaRules::default();
    for (key, value) in table {
        // Suspects only flag, so they need no anchor: they are meant to be looser.
        let (list, anchor) = match key.as_str() {
            "rule" => (&mut parsed.rules, true),
            "suspect" => (&mut parsed.suspects, false),
            _ => {
                return Err(layout(format!(
                    "unknown top-level key `{key}`: rules are written as [[rule]] tables \
                     (and [[suspect]] tables)"
                )));
            }
        };
        let toml::Value::Array(items) = value else {
            return Err(layout(format!(
                "`{key}` must be written as [[{key}]] tables"
            )));
        };
        let mut names = HashSet::new();
        for (index, item) in items.into_iter().enumerate() {
            let label = rule_label(&key, index, &item);
            let bad = |reason: String| MetaRulesError::Rule {
                origin: origin.to_owned(),
                rule: label.clone(),
                reason,
            };
            let spec: RuleSpec = item.try_into().map_err(|e| bad(e.message().to_owned()))?;
            let rule = compile(spec, anchor).map_err(&bad)?;
            if !names.insert(rule.name.clone()) {
                return Err(bad(format!("another [[{key}]] already has this name")));
            }
            list.push(rule);
        }
    }
    Ok(parsed)
}

/// `#3 "title_generation"`: position first, because a broken rule may have no usable name;
/// a `[[suspect]]` table says so after it.
fn rule_label(key: &str, index: usize, item: &toml::Value) -> String {
    let table = if key == "rule" {
        String::new()
    } else {
        format!(" in [[{key}]]")
    };
    match item.get("name").and_then(toml::Value::as_str) {
        Some(name) => format!("#{} \"{name}\"{table}", index + 1),
        None => format!("#{}{table}", index + 1),
    }
}

fn compile(spec: RuleSpec, must_anchor: bool) -> Result<Rule, String> {
    if spec.name.trim().is_empty() {
        return Err("`name` is empty".to_owned());
    }
    if spec.max_messages == Some(0) {
        return Err("`max_messages` must be at least 1".to_owned());
    }
    if spec.last_user.is_none() && spec.system.is_none() {
        return Err("needs a [rule.last_user] or [rule.system] block".to_owned());
    }
    for (block, matcher) in [("last_user", &spec.last_user), ("system", &spec.system)] {
        if let Some(matcher) = matcher {
            matcher
                .validate()
                .map_err(|e| format!("[rule.{block}]: {e}"))?;
        }
    }
    let anchored = [&spec.last_user, &spec.system]
        .into_iter()
        .flatten()
        .any(Matcher::is_anchored);
    if must_anchor && !anchored {
        return Err(format!(
            "not anchored: give `starts_with` alternatives, a `contains_all` entry or \
             `contains_any` alternatives of at least {MIN_ANCHOR_CHARS} characters, or \
             `lines_in_order` of that much text between `starts_with` and `ends_with` \
             (short text such as \"### Task:\" also starts real questions)"
        ));
    }
    Ok(Rule {
        name: spec.name,
        max_messages: spec.max_messages.unwrap_or(usize::MAX),
        last_user: spec.last_user,
        system: spec.system,
    })
}

impl Rule {
    fn matches(&self, messages: &[Value], last_user: Option<&str>) -> bool {
        if messages.len() > self.max_messages {
            return false;
        }
        let last_user_ok = self
            .last_user
            .as_ref()
            .is_none_or(|matcher| last_user.is_some_and(|text| matcher.matches(text)));
        if !last_user_ok {
            return false;
        }
        // Any system message will do: Open WebUI may prepend the task model's own prompt.
        self.system.as_ref().is_none_or(|matcher| {
            messages
                .iter()
                .filter(|message| matches!(role(message), Some("system" | "developer")))
                .filter_map(text_of)
                .any(|text| matcher.matches(&text))
        })
    }
}
