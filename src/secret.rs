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

/// `text` with every one of `secrets` written as `***`.
pub fn redact_all(text: &mut String, secrets: &[Secret]) {
    for secret in secrets {
        if text.contains(secret.expose()) {
            *text = text.replace(secret.expose(), "***");
        }
    }
}

/// `url` with its password, if it has one, as `***` (the user name stays): for output
/// that shows settings. `None` when it has none.
pub fn mask_url_password(url: &str) -> Option<String> {
    let mut parsed = reqwest::Url::parse(url).ok()?;
    parsed.password()?;
    parsed.set_password(Some("***")).ok()?;
    Some(parsed.to_string())
}

/// `url` without a user name or password, for logs, metrics and health reports.
pub fn url_without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.as_str().trim_end_matches('/').to_string()
        }
        _ => url.to_string(),
    }
}

/// The password in `url`, if it has one: a secret like a key.
pub fn url_password(url: &str) -> Option<Secret> {
    let parsed = reqwest::Url::parse(url).ok()?;
    parsed.password().map(Secret::new)
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

    #[test]
    fn a_password_in_a_url_is_masked() {
        let url = "http://me:s3cr3t-pass@gpu1:8000/v1";
        assert_eq!(
            mask_url_password(url).unwrap(),
            "http://me:***@gpu1:8000/v1"
        );
        assert_eq!(url_password(url).unwrap().expose(), "s3cr3t-pass");
        assert!(mask_url_password("http://gpu1:8000/v1").is_none());
    }
}
