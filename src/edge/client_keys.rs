//! Optional client keys (off unless configured): `Authorization: Bearer <key>` is
//! required on the API, compared in constant time; a bad or missing key is a 401 in
//! OpenAI's envelope. Only a key's fingerprint is ever logged, never the key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ServerConfig;
use crate::edge::state::AppState;
use crate::error::Error;

/// The keys clients may use, kept only as SHA-256 digests.
#[derive(Clone, Debug, Default)]
pub struct ClientKeys {
    digests: Vec<[u8; 32]>,
}

/// The fingerprint of the key a request used (first 12 hex chars of its SHA-256), for
/// the session log.
#[derive(Clone, Debug)]
pub struct KeyId(pub String);

impl ClientKeys {
    /// Reads the keys from the variable named by `server.api_keys_env` (separated by
    /// commas or newlines) and the file `server.api_keys_file` (one per line, `#`
    /// comments). Configured but empty is an error: that would lock everyone out, or,
    /// worse, look protected while it is not.
    pub fn load(config: &ServerConfig) -> Result<Self, String> {
        let mut keys: Vec<String> = Vec::new();
        let variable = config.api_keys_env.trim();
        if !variable.is_empty() {
            let value = std::env::var(variable)
                .map_err(|_| format!("server.api_keys_env names {variable}, which is not set"))?;
            keys.extend(value.split([',', '\n']).map(str::to_string));
        }
        let file = &config.api_keys_file;
        if !file.as_os_str().is_empty() {
            // Keys are a line each: a megabyte is tens of thousands of them.
            const MAX_BYTES: u64 = 1024 * 1024;
            let text = crate::files::read_text(file, MAX_BYTES, crate::files::Links::Follow)
                .map_err(|e| format!("server.api_keys_file {}: {e}", file.display()))?;
            keys.extend(
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .map(str::to_string),
            );
        }
        let digests: Vec<[u8; 32]> = keys
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .map(digest)
            .collect();
        if (!variable.is_empty() || !file.as_os_str().is_empty()) && digests.is_empty() {
            return Err("client keys are configured (server.api_keys_env / api_keys_file) but none were found".into());
        }
        Ok(ClientKeys { digests })
    }

    /// Whether keys are required at all.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `key` is one of the client keys.
    pub fn is_key(&self, key: &str) -> bool {
        let presented = digest(key.trim());
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |any, k| any | k.ct_eq(&presented));
        bool::from(matched)
    }

    /// The key id of a request carrying a valid key, or the 401 to answer.
    pub fn check(&self, headers: &HeaderMap) -> Result<KeyId, Error> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(Error::Unauthorized { missing: true })?;
        let presented = digest(presented);
        // Compare with every key, always: the time taken says nothing about which matched.
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |any, key| {
                any | key.ct_eq(&presented)
            });
        if bool::from(matched) {
            Ok(KeyId(
                presented[..6].iter().map(|b| format!("{b:02x}")).collect(),
            ))
        } else {
            Err(Error::Unauthorized { missing: false })
        }
    }
}

/// The token of a `Bearer` credential. The scheme is case-insensitive (RFC 9110
/// §11.1): SDKs and scripts send `bearer` and `BEARER` too, and refusing them would
/// lock out a client holding a valid key. One or more spaces separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The middleware for the protected routes.
pub async fn require(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.client_keys.enabled() {
        return next.run(request).await;
    }
    match state.client_keys.check(request.headers()) {
        Ok(id) => {
            request.extensions_mut().insert(id);
            next.run(request).await
        }
        Err(error) => {
            if request.uri().path().ends_with("/chat/completions") {
                state.metrics.unauthorized();
            }
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> ClientKeys {
        ClientKeys {
            digests: list.iter().map(|k| digest(k)).collect(),
        }
    }

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_a_listed_bearer_key_passes_and_its_id_is_a_fingerprint() {
        let keys = keys(&["alpha-key", "beta-key"]);
        let id = keys.check(&bearer("Bearer beta-key")).unwrap();
        assert_eq!(id.0.len(), 12);
        assert!(!id.0.contains("beta"));
        assert!(matches!(
            keys.check(&bearer("Bearer gamma")),
            Err(Error::Unauthorized { missing: false })
        ));
        assert!(matches!(
            keys.check(&bearer("Basic YWxwaGE=")),
            Err(Error::Unauthorized { missing: true })
        ));
        assert!(matches!(
            keys.check(&HeaderMap::new()),
            Err(Error::Unauthorized { missing: true })
        ));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("bearer k1"), Some("k1"));
        assert_eq!(bearer_token("BEARER   k1 "), Some("k1"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerk1"), None);
        assert_eq!(bearer_token("Basic k1"), None);
    }
}
