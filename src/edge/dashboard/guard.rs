//! Who may open the dashboard. It shows user conversations, so without an admin key only
//! a loopback socket peer may (never judged by a forwarded header, which anyone can
//! write); with a key, every request must carry it, as a bearer token or as the cookie
//! the sign-in form sets. Keys and cookies are compared in constant time.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
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
    fn matches(&self, presented: &str) -> bool {
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
    fn admits(&self, headers: &HeaderMap) -> bool {
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
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// Paths a browser needs to sign in (the form, its script and style), open to anyone
/// when a key is configured: they hold nothing but the form.
fn is_sign_in(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("GET", "/dashboard/login")
            | ("GET", "/dashboard/assets/login.js")
            | ("GET", "/dashboard/assets/app.css")
            | ("POST", "/dashboard/api/login")
    )
}

/// The middleware in front of every dashboard path.
pub(super) async fn require(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match admit(&state.admin_key, &request) {
        Ok(()) => next.run(request).await,
        Err(Refusal::SignIn) => Redirect::to("/dashboard/login").into_response(),
        Err(Refusal::Error(error)) => error.into_response(),
    }
}

/// Why a request is turned away.
enum Refusal {
    /// A person opening a page without the key: to the sign-in form.
    SignIn,
    /// Anything else: an error in OpenAI's envelope.
    Error(Error),
}

fn forbidden(reason: &str) -> Refusal {
    Refusal::Error(Error::Forbidden {
        reason: reason.into(),
    })
}

fn admit(key: &AdminKey, request: &Request) -> Result<(), Refusal> {
    let path = request.uri().path();
    let headers = request.headers();
    // A cross-site page must not drive the dashboard with the admin's cookie or from
    // the admin's own machine (the browser says where a request comes from).
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site && request.method() != Method::GET {
        return Err(forbidden(
            "the dashboard refuses requests sent from another site",
        ));
    }
    // And for browsers that do not say: a JSON body is one no other site can send
    // without the browser asking first (CORS), which the dashboard never allows.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if request.method() == Method::POST && !json {
        return Err(Refusal::Error(Error::invalid(
            "the dashboard's POST requests carry JSON (Content-Type: application/json)",
            "content-type",
        )));
    }
    if key.secret().is_some() {
        if key.admits(headers) || is_sign_in(request.method(), path) {
            return Ok(());
        }
        // A person opening a page goes to the form; a script gets the error.
        let wants_page = request.method() == Method::GET && !path.starts_with("/dashboard/api/");
        if wants_page {
            return Err(Refusal::SignIn);
        }
        return Err(Refusal::Error(Error::AdminKeyRequired {
            missing: headers.get(header::AUTHORIZATION).is_none()
                && cookie(headers, COOKIE).is_none(),
        }));
    }
    // No key: the socket peer must be loopback. No peer known (a test without a
    // listener) is not loopback: refusing is the safe side.
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|info| info.0.ip().to_canonical().is_loopback());
    if !loopback {
        return Err(forbidden(
            "the dashboard answers only on loopback (127.0.0.1, ::1); set dashboard.admin_key_env to open it elsewhere with an admin key",
        ));
    }
    // A loopback peer whose Host is not a loopback name is a page on another site that
    // had its name point at 127.0.0.1 (DNS rebinding): refused.
    if !loopback_host(headers) {
        return Err(forbidden(
            "open the dashboard as localhost or 127.0.0.1 (the Host header names another site)",
        ));
    }
    Ok(())
}

/// Whether the `Host` header names this machine's loopback (any port).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true; // HTTP/1.0 without Host: no site can be named
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// `POST /dashboard/api/login` with `{"key": "…"}`: the right key sets the cookie.
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let key = &state.admin_key;
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

    #[test]
    fn only_loopback_names_pass_as_host() {
        for host in [
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "127.0.0.1",
            "LOCALHOST",
        ] {
            assert!(loopback_host(&headers(&[("host", host)])), "{host}");
        }
        for host in ["evil.example:8080", "192.0.2.2:8080", "[2001:db8::1]:80"] {
            assert!(!loopback_host(&headers(&[("host", host)])), "{host}");
        }
    }
}
