//! The dashboard's pages, script and style, built into the binary (one file to ship, no
//! Node toolchain): plain HTML, CSS and JavaScript under `assets/`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// The files served under `/dashboard/assets/`, with their types.
const FILES: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/login.js"),
    ),
];

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
