//! A streamed chunk, or a whole completion, read without building a `serde_json::Value`:
//! what the proxy needs to pass it on as the backend wrote it, and `capture` to record it.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde_json::Value;

/// A `chat.completion.chunk` read without building a `serde_json::Value`: its text
/// borrowed from the event where it has no escapes. What the relay needs to pass a chunk
/// on as it came, with only `model` replaced. Unknown fields are skipped; anything
/// unexpected (a `content` that is not a string) fails the parse, and the relay reads
/// the chunk the general way instead.
#[derive(Debug, serde::Deserialize)]
pub struct ChunkView<'a> {
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub choices: Option<Vec<ChoiceView<'a>>>,
    /// Present and not null: the usage object.
    #[serde(default)]
    pub usage: Option<Value>,
    /// Present and not null: the backend reports an error in-band.
    #[serde(default)]
    pub error: Option<IgnoredAny>,
}

/// A JSON string, borrowed from the event when it has no escapes (`Option<Cow<str>>`
/// would always copy: serde borrows a `Cow` only as a field of its own).
#[derive(Debug)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

impl Text<'_> {
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// One choice of a [`ChunkView`]: a chunk's `delta`, or a whole completion's `message`.
#[derive(Debug, serde::Deserialize)]
pub struct ChoiceView<'a> {
    #[serde(borrow, default)]
    pub(super) delta: Option<DeltaView<'a>>,
    #[serde(borrow, default)]
    pub(super) message: Option<DeltaView<'a>>,
    /// A (legacy) completion's text.
    #[serde(borrow, default)]
    pub(super) text: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Text<'a>>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct DeltaView<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) reasoning_content: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) reasoning: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<Text<'a>>,
    #[serde(default)]
    pub(super) tool_calls: Option<IgnoredAny>,
}

impl<'a> ChunkView<'a> {
    /// The chunk in `data`, or `None` when it does not read as one.
    pub fn parse(data: &'a str) -> Option<Self> {
        serde_json::from_str(data).ok()
    }

    /// A whole completion (`chat.completion`, `text_completion`) in `body`, or `None`
    /// when it does not read as one.
    pub fn parse_bytes(body: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// Where the `model` string lies in `data`, the text it was read from, when it was
    /// borrowed from there (it has no escapes): the bytes to replace to rename it.
    pub fn model_span(&self, data: &[u8]) -> Option<std::ops::Range<usize>> {
        let Some(Text(Cow::Borrowed(model))) = &self.model else {
            return None;
        };
        let start = (model.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        let span = start..start + model.len();
        (data.get(span.clone()) == Some(model.as_bytes())).then_some(span)
    }

    /// Whether it is the usage-only chunk (`choices: []` and a usage object).
    pub fn is_usage_only(&self) -> bool {
        self.choices.as_ref().is_some_and(Vec::is_empty) && self.usage.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_borrows_text_without_escapes_and_copies_only_text_with_them() {
        let data = r#"{"model":"m","choices":[{"delta":{"content":"plain"}}]}"#;
        let view = ChunkView::parse(data).unwrap();
        assert!(matches!(view.model, Some(Text(Cow::Borrowed("m")))));
        let delta = view.choices.as_ref().unwrap()[0].delta.as_ref().unwrap();
        assert!(matches!(delta.content, Some(Text(Cow::Borrowed("plain")))));
        let data = r#"{"model":"m","choices":[{"delta":{"content":"two\nlines"}}]}"#;
        let view = ChunkView::parse(data).unwrap();
        let delta = view.choices.as_ref().unwrap()[0].delta.as_ref().unwrap();
        assert!(matches!(&delta.content, Some(Text(Cow::Owned(text))) if text == "two\nlines"));
    }

    #[test]
    fn a_whole_completion_reads_with_its_model_where_it_lies() {
        let body = br#"{"id":"x","model":"m-1","choices":[{"message":{"content":"hi"}}]}"#;
        let view = ChunkView::parse_bytes(body).unwrap();
        let span = view.model_span(body).unwrap();
        assert_eq!(&body[span], b"m-1");
        let message = view.choices.as_ref().unwrap()[0].message.as_ref().unwrap();
        assert!(matches!(message.content, Some(Text(Cow::Borrowed("hi")))));
        // A model with an escape is a copy: nothing in `body` to replace.
        let body = br#"{"model":"m\u002d1","choices":[]}"#;
        let view = ChunkView::parse_bytes(body).unwrap();
        assert_eq!(view.model_span(body), None);
        assert_eq!(view.model_span(b"elsewhere"), None);
    }

    #[test]
    fn a_chunk_the_view_cannot_read_is_left_to_the_general_path() {
        for data in [
            r#"{"model":"m","choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}]}"#,
            r#"{"model":"m","model":"n","choices":[]}"#,
            r#"[1,2]"#,
            "not json",
        ] {
            assert!(ChunkView::parse(data).is_none(), "{data}");
        }
    }
}
