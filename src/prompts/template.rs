//! The `{{name}}` placeholders of a prompt: finding them, filling them in, and the
//! date that `{{date}}` stands for.

/// Today's UTC date, for `{{date}}`.
pub fn today() -> String {
    use chrono::Datelike;
    // Written directly: chrono's `format` reads its pattern anew on every call, and this
    // runs for every answer.
    let day = chrono::Utc::now().date_naive();
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

/// The names of the `{{name}}` placeholders in `template` (spaces inside allowed).
pub(super) fn placeholders(template: &str) -> Vec<&str> {
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

    #[test]
    fn today_is_the_utc_date_as_chrono_writes_it() {
        let (before, today, after) = (
            chrono::Utc::now().format("%Y-%m-%d").to_string(),
            today(),
            chrono::Utc::now().format("%Y-%m-%d").to_string(),
        );
        assert!(today == before || today == after, "{today}");
        assert_eq!(today.len(), 10);
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
