//! Recognises Open WebUI's task requests (titles, tags, follow-ups, …) by their text, with
//! declarative rules an admin keeps in a TOML file (`config/meta_rules.toml`, which
//! documents the rule language). Runs on every request, so matching is plain prefix and
//! substring tests on at most the last user message and the system messages.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The shortest text a rule may anchor on. `### Task:` alone is 9 characters and also starts
/// the RAG wrapper around real questions; every real template sentence is far longer.
const MIN_ANCHOR_CHARS: usize = 20;

/// Where `parse` says the text came from in its errors (`load` names the file instead).
const INLINE_ORIGIN: &str = "META rules";

/// The text rules, loaded from a TOML file (config/meta_rules.toml).
#[derive(Debug, Clone, Default)]
pub struct MetaRules {
    rules: Vec<Rule>,
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
        if self.rules.is_empty() {
            return None;
        }
        // Found once: every rule but the system-only ones looks at it.
        let last_user = messages
            .iter()
            .rev()
            .find(|message| role(message) == Some("user"))
            .and_then(text_of);
        self.rules
            .iter()
            .find(|rule| rule.matches(messages, last_user.as_deref()))
            .map(|rule| rule.name.as_str())
    }

    /// How many rules are loaded.
    /// The rules' names, in the order they are tried.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rules are loaded (text detection then never fires).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// One `[[rule]]` table as written; unknown keys are errors so a typo cannot silently widen a rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    max_messages: Option<usize>,
    last_user: Option<Matcher>,
    system: Option<Matcher>,
}

/// Conditions on one message's text; all given conditions must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matcher {
    #[serde(default)]
    starts_with: Vec<String>,
    /// The text (trailing whitespace ignored) ends with one of these: a template's
    /// closing frame, so a template pasted at the start of a real question misses.
    #[serde(default)]
    ends_with: Vec<String>,
    #[serde(default)]
    contains_all: Vec<String>,
    #[serde(default)]
    contains_any: Vec<String>,
    #[serde(default)]
    not_contains: Vec<String>,
}

/// A validated rule, ready to match.
#[derive(Debug, Clone)]
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
    let mut rules: Vec<Rule> = Vec::new();
    let mut names = HashSet::new();
    for (key, value) in table {
        if key != "rule" {
            return Err(layout(format!(
                "unknown top-level key `{key}`: rules are written as [[rule]] tables"
            )));
        }
        let toml::Value::Array(items) = value else {
            return Err(layout(
                "`rule` must be written as [[rule]] tables".to_owned(),
            ));
        };
        for (index, item) in items.into_iter().enumerate() {
            let label = rule_label(index, &item);
            let bad = |reason: String| MetaRulesError::Rule {
                origin: origin.to_owned(),
                rule: label.clone(),
                reason,
            };
            let spec: RuleSpec = item.try_into().map_err(|e| bad(e.message().to_owned()))?;
            let rule = compile(spec).map_err(&bad)?;
            if !names.insert(rule.name.clone()) {
                return Err(bad("another rule already has this name".to_owned()));
            }
            rules.push(rule);
        }
    }
    Ok(MetaRules { rules })
}

/// `#3 "title_generation"`: position first, because a broken rule may have no usable name.
fn rule_label(index: usize, item: &toml::Value) -> String {
    match item.get("name").and_then(toml::Value::as_str) {
        Some(name) => format!("#{} \"{name}\"", index + 1),
        None => format!("#{}", index + 1),
    }
}

fn compile(spec: RuleSpec) -> Result<Rule, String> {
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
    if !anchored {
        return Err(format!(
            "not anchored: give `starts_with` alternatives, a `contains_all` entry or \
             `contains_any` alternatives of at least {MIN_ANCHOR_CHARS} characters \
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

impl Matcher {
    fn validate(&self) -> Result<(), String> {
        let lists = [
            ("starts_with", &self.starts_with),
            ("ends_with", &self.ends_with),
            ("contains_all", &self.contains_all),
            ("contains_any", &self.contains_any),
            ("not_contains", &self.not_contains),
        ];
        if lists.iter().all(|(_, list)| list.is_empty()) {
            return Err("has no conditions".to_owned());
        }
        for (key, list) in lists {
            if list.iter().any(String::is_empty) {
                return Err(format!(
                    "`{key}` holds an empty string, which matches any text"
                ));
            }
        }
        Ok(())
    }

    /// Whether passing this block requires long, specific text (see `MIN_ANCHOR_CHARS`).
    fn is_anchored(&self) -> bool {
        let long = |s: &String| s.chars().count() >= MIN_ANCHOR_CHARS;
        let all_long = |list: &[String]| !list.is_empty() && list.iter().all(long);
        all_long(&self.starts_with)
            || self.contains_all.iter().any(long)
            || all_long(&self.contains_any)
    }

    /// Cheapest test first: real chats fail the prefix test after a few bytes.
    fn matches(&self, text: &str) -> bool {
        let head = text.trim_start();
        (self.starts_with.is_empty()
            || self
                .starts_with
                .iter()
                .any(|p| head.starts_with(p.as_str())))
            && (self.ends_with.is_empty()
                || self
                    .ends_with
                    .iter()
                    .any(|p| text.trim_end().ends_with(p.as_str())))
            && self.contains_all.iter().all(|n| text.contains(n.as_str()))
            && (self.contains_any.is_empty()
                || self.contains_any.iter().any(|n| text.contains(n.as_str())))
            && !self.not_contains.iter().any(|n| text.contains(n.as_str()))
    }
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

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// A message's text: the string content, or its `text` parts joined by newlines (images and
/// other parts ignored). Borrowed in the common cases, so matching allocates nothing.
fn text_of(message: &Value) -> Option<Cow<'_, str>> {
    match message.get("content")? {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Array(parts) => {
            let mut texts = parts
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|part| part.get("text").and_then(Value::as_str));
            let first = texts.next()?;
            match texts.next() {
                None => Some(Cow::Borrowed(first)),
                Some(second) => {
                    let mut joined = format!("{first}\n{second}");
                    for more in texts {
                        joined.push('\n');
                        joined.push_str(more);
                    }
                    Some(Cow::Owned(joined))
                }
            }
        }
        _ => None,
    }
}
