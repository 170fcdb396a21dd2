//! The dashboard's admin key: read once from the variable `dashboard.admin_key_env`
//! names, compared in constant time, and the cookie a browser holds after the sign-in
//! form (derived from the key, so the key itself never sits in a cookie jar).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::DashboardConfig;
use crate::edge::state::AppState;
use crate::error::Error;
use crate::secret::Secret;

/// The cookie the sign-in form sets.
pub(super) const COOKIE: &str = "ai_router_admin";

/// The admin key, when one is configured: its digest, and the cookie value it grants.
#[derive(Clone, Debug, Default)]
pub struct AdminKey {
    key: Option<Secret>,
}

impl AdminKey {
    /// Reads the key from the variable `dashboard.admin_key_env` names. Named but unset
    /// or empty is an error: the dashboard would look protected while it is not.
    pub fn load(config: &DashboardConfig) -> Result<Self, String> {
        let variable = config.admin_key_env.trim();
        if variable.is_empty() {
            return Ok(AdminKey::default());
        }
        let value = std::env::var(variable)
            .map_err(|_| format!("dashboard.admin_key_env names {variable}, which is not set"))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!(
                "dashboard.admin_key_env names {variable}, which is empty"
            ));
        }
        Ok(AdminKey {
            key: Some(Secret::new(value)),
        })
    }

    /// The key itself, for the check that no client key equals it.
    pub fn secret(&self) -> Option<&Secret> {
        self.key.as_ref()
    }

    /// Whether `presented` is the key.
    pub(super) fn matches(&self, presented: &str) -> bool {
        self.key
            .as_ref()
            .is_some_and(|key| digest(key.expose()).ct_eq(&digest(presented)).into())
    }

    /// The cookie value a signed-in browser holds: derived from the key, so the key
    /// itself never sits in a cookie jar, and a new key signs everyone out.
    fn cookie_value(&self) -> Option<String> {
        let key = self.key.as_ref()?;
        let mut hash = Sha256::new();
        hash.update(b"ai-router dashboard cookie v1\0");
        hash.update(key.expose().as_bytes());
        Some(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `headers` carry the key (bearer) or the signed-in cookie.
    pub(super) fn admits(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if bearer.is_some_and(|token| self.matches(token)) {
            return true;
        }
        let (Some(expected), Some(cookie)) = (self.cookie_value(), cookie(headers, COOKIE)) else {
            return false;
        };
        expected.as_bytes().ct_eq(cookie.as_bytes()).into()
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// `POST /dashboard/api/login` with `{"key": "…"}`: the right key sets the cookie.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let key = &state.dashboard.admin_key;
    let presented = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string))
        .unwrap_or_default();
    let (true, Some(value)) = (key.matches(presented.trim()), key.cookie_value()) else {
        return Error::AdminKeyRequired { missing: false }.into_response();
    };
    // `Secure` when the browser reached us over TLS (Traefik says so); it only narrows
    // where the cookie goes, so believing the header opens nothing.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=43200{}",
        if secure { "; Secure" } else { "" }
    );
    (
        [(header::SET_COOKIE, cookie)],
        axum::Json(serde_json::json!({"ok": true})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_key_or_its_cookie_admits_and_nothing_else() {
        let key = AdminKey {
            key: Some(Secret::new("admin-123")),
        };
        assert!(key.admits(&headers(&[("authorization", "Bearer admin-123")])));
        assert!(!key.admits(&headers(&[("authorization", "Bearer admin-12")])));
        let cookie = format!("a=b; {COOKIE}={}", key.cookie_value().unwrap());
        assert!(key.admits(&headers(&[("cookie", &cookie)])));
        assert!(!key.admits(&headers(&[("cookie", "ai_router_admin=admin-123")])));
        assert!(!key.cookie_value().unwrap().contains("admin-123"));
        assert!(!AdminKey::default().admits(&headers(&[("authorization", "Bearer ")])));
    }
}
