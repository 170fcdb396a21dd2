//! Who may open the dashboard. It shows user conversations, so without an admin key only
//! a loopback socket peer may (never judged by a forwarded header, which anyone can
//! write); with a key, every request must carry it (`admin_key`), as a bearer token or
//! as the cookie the sign-in form sets.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::admin_key::{AdminKey, COOKIE, cookie};
use crate::edge::state::AppState;
use crate::error::Error;

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
    match admit(&state.dashboard.admin_key, &request) {
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
    from_this_site(request)?;
    if key.secret().is_some() {
        with_key(key, request)
    } else {
        loopback_only(request)
    }
}

/// A page on another site must not drive the dashboard, with the admin's cookie or from
/// the admin's own machine.
fn from_this_site(request: &Request) -> Result<(), Refusal> {
    // The browser says where a request comes from.
    let cross_site = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site && request.method() != Method::GET {
        return Err(forbidden(
            "the dashboard refuses requests sent from another site",
        ));
    }
    // And for browsers that do not say: a JSON body is one no other site can send
    // without the browser asking first (CORS), which the dashboard never allows.
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if request.method() == Method::POST && !json {
        return Err(Refusal::Error(Error::invalid(
            "the dashboard's POST requests carry JSON (Content-Type: application/json)",
            "content-type",
        )));
    }
    Ok(())
}

/// With an admin key: the key or its cookie, from anywhere; only the sign-in form without.
fn with_key(key: &AdminKey, request: &Request) -> Result<(), Refusal> {
    let (path, headers) = (request.uri().path(), request.headers());
    if key.admits(headers) || is_sign_in(request.method(), path) {
        return Ok(());
    }
    // A person opening a page goes to the form; a script gets the error.
    if request.method() == Method::GET && !path.starts_with("/dashboard/api/") {
        return Err(Refusal::SignIn);
    }
    Err(Refusal::Error(Error::AdminKeyRequired {
        missing: headers.get(header::AUTHORIZATION).is_none() && cookie(headers, COOKIE).is_none(),
    }))
}

/// Without a key: the socket peer must be loopback. No peer known (a test without a
/// listener) is not loopback: refusing is the safe side.
fn loopback_only(request: &Request) -> Result<(), Refusal> {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|info| info.0.ip().to_canonical().is_loopback());
    if !loopback {
        return Err(forbidden(
            "the dashboard answers only on loopback (127.0.0.1, ::1); set dashboard.admin_key_env to open it elsewhere with an admin key",
        ));
    }
    // A loopback peer that forwards for someone (nginx or a tunnel on this machine in
    // front of the router) is not the person at this machine: refused, or the dashboard
    // would be open to whoever reaches that proxy.
    if let Some(name) = FORWARDED
        .iter()
        .find(|h| request.headers().contains_key(**h))
    {
        return Err(forbidden(&format!(
            "the request came through a proxy ({name}): the dashboard answers only a browser on this machine's loopback (127.0.0.1, ::1); set dashboard.admin_key_env to open it through a proxy with an admin key"
        )));
    }
    // A loopback peer whose Host is not a loopback name is a page on another site that
    // had its name point at 127.0.0.1 (DNS rebinding): refused.
    if !loopback_host(request.headers()) {
        return Err(forbidden(
            "open the dashboard as localhost or 127.0.0.1 (the Host header names another site)",
        ));
    }
    Ok(())
}

/// Headers a proxy adds for the client it forwards; a browser never sends them itself.
const FORWARDED: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
    "cf-connecting-ip",
    "x-forwarded-host",
];

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
