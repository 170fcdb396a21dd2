//! Who may open the dashboard: a loopback socket peer, or anyone with the admin key —
//! never a forwarded header; another site may not drive it; and the browser safety
//! headers on every answer, a refusal too.

use std::net::SocketAddr;

use ai_router::App;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::fake::Fake;
use crate::common::{TestRouter, client, config_for, test_dirs};

/// A router app (no listener) whose requests come from `peer`, after `adjust`.
async fn app_with(
    upstream: &str,
    adjust: impl FnOnce(&mut ai_router::config::Config),
) -> (axum::Router, tempfile::TempDir) {
    let dirs = test_dirs();
    let mut config = config_for(upstream, dirs.path());
    adjust(&mut config);
    let App { state, .. } = App::build(config).unwrap();
    (ai_router::app(state), dirs)
}

fn request(peer: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(path).header("host", "127.0.0.1:8080");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    request
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_refused(status: StatusCode, body: &Value, code: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{body}"
    );
}

/// `GET path`'s body as text.
async fn text(router: &TestRouter, path: &str) -> String {
    let response = client()
        .get(format!("{}{path}", router.url))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

#[tokio::test]
async fn only_a_loopback_peer_may_open_it_whatever_the_headers_say() {
    let fake = Fake::start().await;
    let (app, _dirs) = app_with(&fake.url, |_| {}).await;
    let (status, _, _) = send(
        &app,
        request(Some("127.0.0.1:50000"), "/dashboard/api/overview", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        &app,
        request(Some("[::1]:50000"), "/dashboard/api/overview", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A LAN peer, with every header that could claim loopback: still refused.
    let spoofed = [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
        ("cf-connecting-ip", "127.0.0.1"),
        ("forwarded", "for=127.0.0.1"),
    ];
    for path in [
        "/dashboard",
        "/dashboard/api/overview",
        "/dashboard/api/sessions",
        "/dashboard/assets/app.js",
    ] {
        let (status, headers, body) =
            send(&app, request(Some("192.168.1.50:40000"), path, &spoofed)).await;
        assert_refused(status, &body, "dashboard_forbidden");
        // A refusal carries the safety headers too.
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    // No peer known at all: refused, not assumed local.
    let (status, _, body) = send(&app, request(None, "/dashboard/api/overview", &[])).await;
    assert_refused(status, &body, "dashboard_forbidden");
    // The router keeps serving everyone else.
    let (status, _, _) = send(&app, request(Some("192.168.1.50:40000"), "/health", &[])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_loopback_peer_naming_another_site_is_refused() {
    // DNS rebinding: a page on evil.example whose name now points at 127.0.0.1.
    let fake = Fake::start().await;
    let (app, _dirs) = app_with(&fake.url, |_| {}).await;
    let mut req = request(Some("127.0.0.1:50000"), "/dashboard/api/overview", &[]);
    req.headers_mut()
        .insert("host", "evil.example:8080".parse().unwrap());
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "dashboard_forbidden");
}

#[tokio::test]
async fn a_proxy_on_this_machine_does_not_make_its_clients_local() {
    // nginx or a tunnel on 127.0.0.1 in front of the router: the socket peer is loopback,
    // but the person is whoever reached the proxy.
    let fake = Fake::start().await;
    let (app, _dirs) = app_with(&fake.url, |_| {}).await;
    for forwarded in [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
        ("cf-connecting-ip", "203.0.113.9"),
        ("x-forwarded-for", "127.0.0.1"),
    ] {
        let (status, _, body) = send(
            &app,
            request(
                Some("127.0.0.1:50000"),
                "/dashboard/api/overview",
                &[forwarded],
            ),
        )
        .await;
        assert_refused(status, &body, "dashboard_forbidden");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("came through a proxy"), "{message}");
    }
}

#[tokio::test]
async fn with_an_admin_key_every_request_needs_it_and_the_form_sets_a_cookie() {
    // PATH is always set: its value serves as the key without touching the environment.
    let key = std::env::var("PATH").expect("PATH is set");
    let fake = Fake::start().await;
    let (app, _dirs) = app_with(&fake.url, |c| c.dashboard.admin_key_env = "PATH".into()).await;
    let lan = Some("192.168.1.50:40000");
    // Without it: an API answers 401 in OpenAI's envelope, a page sends to the form.
    for peer in [lan, Some("127.0.0.1:5000")] {
        let (status, _, body) = send(&app, request(peer, "/dashboard/api/overview", &[])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_admin_key");
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    let (status, headers, _) = send(&app, request(lan, "/dashboard", &[])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/dashboard/login");
    let (status, _, _) = send(&app, request(lan, "/dashboard/login", &[])).await;
    assert_eq!(status, StatusCode::OK);
    // A wrong key, and a client-style key in the wrong place, are refused.
    let (status, _, body) = send(
        &app,
        request(
            lan,
            "/dashboard/api/overview",
            &[("authorization", "Bearer nope")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "the admin key is not valid");
    let (status, _, _) = send(
        &app,
        request(
            lan,
            "/dashboard/api/overview",
            &[("cookie", &format!("ai_router_admin={key}"))],
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the key itself is not the cookie"
    );
    // The key as a bearer token opens it from anywhere.
    let bearer = format!("Bearer {key}");
    let (status, _, body) = send(
        &app,
        request(
            lan,
            "/dashboard/api/overview",
            &[("authorization", &bearer)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.to_string().contains(&key), "the key is never shown");
    // The form: a wrong key sets nothing; the right one sets an HttpOnly cookie that opens it.
    let login = |body: &str| {
        let mut req = Request::post("/dashboard/api/login")
            .header("host", "router.example")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(
            "192.168.1.50:40000".parse().unwrap(),
        ));
        req
    };
    let (status, headers, _) = send(&app, login(r#"{"key":"wrong"}"#)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("set-cookie").is_none());
    let (status, headers, _) = send(&app, login(&json!({"key": key}).to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let set = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(&key), "the cookie is not the key");
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, _, _) = send(
        &app,
        request(lan, "/dashboard/api/sessions", &[("cookie", &cookie)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_key_may_not_be_a_client_key() {
    let fake = Fake::start().await;
    let dirs = test_dirs();
    let mut config = config_for(&fake.url, dirs.path());
    config.server.api_keys_env = "PATH".into();
    config.dashboard.admin_key_env = "PATH".into();
    let error = App::build(config).unwrap_err().to_string();
    assert!(error.contains("also a client key"), "{error}");
}

#[tokio::test]
async fn a_disabled_dashboard_is_not_there() {
    let fake = Fake::start().await;
    let (app, _dirs) = app_with(&fake.url, |c| c.dashboard.enabled = false).await;
    let (status, _, body) = send(&app, request(Some("127.0.0.1:1"), "/dashboard", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn pages_and_assets_carry_a_strict_policy_and_no_inline_script() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/assets/app.js", "text/javascript"),
        ("/dashboard/assets/app.css", "text/css"),
        ("/dashboard/api/overview", "application/json"),
    ] {
        let response = client()
            .get(format!("{}{path}", router.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        for rule in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "default-src 'none'",
        ] {
            assert!(csp.contains(rule), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
    let page = text(&router, "/dashboard").await;
    // Every script is a file of its own: no inline code for the policy to have to allow.
    assert!(!page.contains("<script>") && page.contains(r#"src="/dashboard/assets/app.js""#));
    // And none writes outside text as HTML.
    for file in [
        "app",
        "dom",
        "overview",
        "sessions",
        "playground",
        "prompts",
        "login",
    ] {
        let script = text(&router, &format!("/dashboard/assets/{file}.js")).await;
        assert!(script.len() > 100, "{file}.js is served");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "{file}.js uses {sink}");
        }
    }
}

#[tokio::test]
async fn another_site_cannot_post_to_the_dashboard() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let chat = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let post = |content_type: &'static str, site: &'static str| {
        client()
            .post(format!("{}/dashboard/api/chat", router.url))
            .header("content-type", content_type)
            .header("sec-fetch-site", site)
            .body(chat)
            .send()
    };
    // A form or a text/plain fetch from another page: no preflight, so refused here.
    let response = post("text/plain", "same-origin").await.unwrap();
    assert_eq!(response.status(), 400);
    let response = post("application/json", "cross-site").await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "dashboard_forbidden");
    let response = post("application/json", "same-origin").await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
}
