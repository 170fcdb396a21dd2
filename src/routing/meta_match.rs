//! The text conditions of one META rule block (`[rule.last_user]`, `[rule.system]`): plain
//! prefix, suffix, substring and whole-line tests, so matching stays cheap on every request.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

/// The shortest text a rule may anchor on. `### Task:` alone is 9 characters and also starts
/// the RAG wrapper around real questions; every real template sentence is far longer.
pub(crate) const MIN_ANCHOR_CHARS: usize = 20;

/// Conditions on one message's text; all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Matcher {
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
    /// Blocks of whole lines that appear in this order: the section layout a template
    /// keeps when its sentences are rewritten (`### Output:` before `### Chat History:`).
    #[serde(default)]
    lines_in_order: Vec<String>,
}

impl Matcher {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let lists = [
            ("starts_with", &self.starts_with),
            ("ends_with", &self.ends_with),
            ("contains_all", &self.contains_all),
            ("contains_any", &self.contains_any),
            ("not_contains", &self.not_contains),
            ("lines_in_order", &self.lines_in_order),
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

    /// Whether passing this block requires long, specific text (see `MIN_ANCHOR_CHARS`):
    /// a long sentence, or a structure fixed at both ends — `starts_with` and `ends_with`
    /// around `lines_in_order` whose lines hold at least that much text together.
    pub(crate) fn is_anchored(&self) -> bool {
        let long = |s: &String| s.chars().count() >= MIN_ANCHOR_CHARS;
        let all_long = |list: &[String]| !list.is_empty() && list.iter().all(long);
        let framed = !self.starts_with.is_empty()
            && !self.ends_with.is_empty()
            && self
                .lines_in_order
                .iter()
                .map(|s| s.chars().count())
                .sum::<usize>()
                >= MIN_ANCHOR_CHARS;
        all_long(&self.starts_with)
            || self.contains_all.iter().any(long)
            || all_long(&self.contains_any)
            || framed
    }

    /// Cheapest test first: real chats fail the prefix test after a few bytes.
    pub(crate) fn matches(&self, text: &str) -> bool {
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
            && lines_in_order(text, &self.lines_in_order)
    }
}

/// Whether each block occurs as whole lines (it starts a line and ends one), each after the
/// previous block. A heading inside a sentence ("see ### Output: below") does not count.
fn lines_in_order(text: &str, blocks: &[String]) -> bool {
    let mut from = 0;
    for block in blocks {
        let Some(end) = find_lines(text, from, block) else {
            return false;
        };
        from = end;
    }
    true
}

/// Where the first whole-line occurrence of `block` at or after `from` ends.
fn find_lines(text: &str, from: usize, block: &str) -> Option<usize> {
    let mut at = from;
    while let Some(found) = text.get(at..)?.find(block) {
        let start = at + found;
        let end = start + block.len();
        let line_start = start == 0 || text[..start].ends_with('\n');
        let rest = &text[end..];
        let line_end = rest.is_empty() || rest.starts_with('\n') || rest.starts_with("\r\n");
        if line_start && line_end {
            return Some(end);
        }
        // Step past this occurrence's first character; `find` only returns char boundaries.
        at = start + block.chars().next().map_or(1, char::len_utf8);
    }
    None
}

pub(crate) fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// A message's text: the string content, or its `text` parts joined by newlines (images and
/// other parts ignored). Borrowed in the common cases, so matching allocates nothing.
pub(crate) fn text_of(message: &Value) -> Option<Cow<'_, str>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn meta_lines_in_order_need_whole_lines_in_order() {
        let text = "### Task:\nDo it.\n### Output:\nJSON\n### Chat History:\n<chat_history>\nUSER: hi\n</chat_history>";
        let frame = blocks(&["### Output:", "### Chat History:\n<chat_history>"]);
        assert!(lines_in_order(text, &frame));
        // A line may end in CRLF; a block's own "\n" is matched as written.
        assert!(lines_in_order(&text.replace('\n', "\r\n"), &frame[..1]));
        // Out of order, inside a sentence, or only part of a line: no.
        let reversed = blocks(&["### Chat History:", "### Output:"]);
        assert!(!lines_in_order(text, &reversed));
        assert!(!lines_in_order(
            "see ### Output: below\n### Chat History:\n<chat_history>",
            &frame
        ));
        assert!(!lines_in_order(
            "### Output: JSON\n### Chat History:\n<chat_history>",
            &frame
        ));
        assert!(!lines_in_order(
            "### Output:\n### Chat History:\n\n<chat_history>",
            &frame
        ));
        // A later whole-line occurrence is found after a partial one; no blocks always pass.
        assert!(lines_in_order("x ### Output:\n### Output:\n", &frame[..1]));
        assert!(lines_in_order("anything", &[]));
        assert!(!lines_in_order("é### Output:é", &frame[..1]));
    }

    #[test]
    fn meta_structure_fixed_at_both_ends_is_an_anchor() {
        let matcher = |toml_text: &str| -> Matcher { toml::from_str(toml_text).unwrap() };
        let framed = matcher(
            "starts_with = [\"### Task:\\n\"]\nends_with = [\"</chat_history>\"]\nlines_in_order = [\"### Output:\", \"### Chat History:\"]",
        );
        assert!(framed.is_anchored());
        // Without either end, or with too little structure, it is as loose as `### Task:`.
        let open_end = matcher(
            "starts_with = [\"### Task:\\n\"]\nlines_in_order = [\"### Output:\", \"### Chat History:\"]",
        );
        assert!(!open_end.is_anchored());
        let thin = matcher(
            "starts_with = [\"### Task:\\n\"]\nends_with = [\"</chat_history>\"]\nlines_in_order = [\"### Output:\"]",
        );
        assert!(!thin.is_anchored());
        assert!(
            matcher("lines_in_order = [\"\"]")
                .validate()
                .unwrap_err()
                .contains("lines_in_order")
        );
    }
}
