//! The dashboard's pages, script and style, built into the binary (one file to ship, no
//! Node toolchain): plain HTML, CSS and JavaScript under `assets/`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// The files served under `/dashboard/assets/`, with their types: the app's modules (one
/// per view), its style sheet, and the sign-in form's script.
const FILES: [(&str, &str, &str); 8] = [
    ("app.js", JS, include_str!("assets/app.js")),
    ("dom.js", JS, include_str!("assets/dom.js")),
    ("overview.js", JS, include_str!("assets/overview.js")),
    ("sessions.js", JS, include_str!("assets/sessions.js")),
    ("playground.js", JS, include_str!("assets/playground.js")),
    ("prompts.js", JS, include_str!("assets/prompts.js")),
    ("login.js", JS, include_str!("assets/login.js")),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// `GET /dashboard`: the app's one page; its script draws each view.
pub(super) async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("assets/index.html"),
    )
        .into_response()
}

/// `GET /dashboard/login`: the form that asks for the admin key.
pub(super) async fn login() -> Response {
    (
        [(header::CONTENT_TYPE, HTML)],
        include_str!("assets/login.html"),
    )
        .into_response()
}

/// `GET /dashboard/assets/{file}`.
pub(super) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, kind, body)) => ([(header::CONTENT_TYPE, *kind)], *body).into_response(),
        None => Error::NotFound {
            method: "GET".into(),
            path: format!("/dashboard/assets/{name}"),
        }
        .into_response(),
    }
}
