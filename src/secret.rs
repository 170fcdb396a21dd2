//! A string that never prints: API keys live in this type from the moment they are read.

use std::fmt;

/// A secret value (an API key). `Debug`, `Display` and `Serialize` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value: call this only on the line that sets a header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let key = Secret::new("xai-abcdef");
        assert_eq!(format!("{key} {key:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"***\"");
        assert_eq!(key.expose(), "xai-abcdef");
    }
}
