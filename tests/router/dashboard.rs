//! The dashboard: who may open it (a loopback socket peer, or the admin key — never a
//! forwarded header), the browser safety headers on every answer, and its JSON APIs
//! (overview, sessions, a session's story, the playground's chat, the prompts), with no
//! secret in any of them.

use std::net::SocketAddr;

use ai_router::App;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::fake::Fake;
use crate::common::{ConfigExt, TestRouter, client, config_for, test_dirs, user};

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

/// `GET path`'s body as text.
async fn text(router: &TestRouter, path: &str) -> String {
    let response = client()
        .get(format!("{}{path}", router.url))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

/// The playground's chat: "hi there", on `route` or the classifier's choice.
async fn play(router: &TestRouter, route: Option<&str>) -> reqwest::Response {
    let ask = json!({"messages": [{"role": "user", "content": "hi there"}], "route": route});
    client()
        .post(format!("{}/dashboard/api/chat", router.url))
        .json(&ask)
        .send()
        .await
        .unwrap()
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
    assert!(
        !page.contains("<script>") && page.contains(r#"<script src="/dashboard/assets/app.js""#)
    );
    let script = text(&router, "/dashboard/assets/app.js").await;
    assert!(
        !script.contains("innerHTML")
            && !script.contains("insertAdjacentHTML")
            && !script.contains("document.write")
    );
}

#[tokio::test]
async fn sessions_list_filter_and_tell_their_story_with_no_secret() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| {
        // A key the backend would need, and a password in a URL: neither may show.
        c.backend("primary").base_url = fake
            .url
            .replace("http://", "http://me:pa55-w0rd-secret@")
            .as_str()
            .into();
    })
    .await;
    assert_eq!(
        router
            .chat(&user("hello <script>alert(1)</script>"))
            .await
            .status(),
        200
    );
    assert_eq!(router.post_raw("{not json").await.status(), 400);
    router.flush().await;
    let (status, _, list) = router.get("/dashboard/api/sessions").await;
    assert_eq!(status, 200, "{list}");
    let rows = list["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    // Newest first: the refused one.
    assert_eq!(rows[0]["outcome"], "error");
    assert_eq!(rows[1]["user_query"], "hello <script>alert(1)</script>");
    let (_, _, errors) = router.get("/dashboard/api/sessions?error=true").await;
    assert_eq!(errors["sessions"].as_array().unwrap().len(), 1);
    let (_, _, primary) = router
        .get("/dashboard/api/sessions?route=primary&q=SCRIPT")
        .await;
    assert_eq!(
        primary["sessions"].as_array().unwrap().len(),
        1,
        "{primary}"
    );
    let (_, _, none) = router.get("/dashboard/api/sessions?label=COMPLEX").await;
    assert_eq!(none["sessions"].as_array().unwrap().len(), 0);
    let id = rows[1]["id"].as_str().unwrap();
    let (status, _, story) = router.get(&format!("/dashboard/api/sessions/{id}")).await;
    assert_eq!(status, 200, "{story}");
    assert_eq!(
        story["client_messages"][0]["content"],
        "hello <script>alert(1)</script>"
    );
    assert_eq!(story["classification"], "MODERATE");
    assert!(
        story["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "answer")
    );
    assert!(story["cost"]["cloud"]["cost_usd"].is_number(), "{story}");
    let (status, _, missing) = router.get("/dashboard/api/sessions/0badf00d").await;
    assert_eq!(status, 404, "{missing}");
    let (status, _, bad) = router.get("/dashboard/api/sessions/..%2f..%2fetc").await;
    assert_eq!(status, 400, "{bad}");
    // No secret in any answer.
    let (_, _, overview) = router.get("/dashboard/api/overview").await;
    for body in [&list, &story, &overview] {
        assert!(!body.to_string().contains("pa55-w0rd-secret"), "{body}");
    }
}

#[tokio::test]
async fn the_playground_streams_through_the_real_pipeline_and_can_choose_a_route() {
    let (router, _primary, xai) = TestRouter::with_primary_and_xai(|c| {
        c.server.api_keys_env = "PATH".into(); // client keys on: the playground needs none
    })
    .await;
    let response = play(&router, None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(response.headers()["x-ai-router-route"], "primary");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    assert!(text.contains("data: [DONE]"), "{text}");
    // A chosen route: no classifier call, the route the label names.
    let calls_before = router.classifier.received().len();
    let response = play(&router, Some("complex")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ai-router-route"], "xai");
    response.text().await.unwrap();
    assert_eq!(router.classifier.received().len(), calls_before);
    assert!(!xai.received().is_empty());
    // A label that cannot be chosen: a clear 400.
    let response = play(&router, Some("NOPE")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "route");
    router.flush().await;
    let (status, _, story) = router.get(&format!("/dashboard/api/sessions/{id}")).await;
    assert_eq!(status, 200, "{story}");
    assert_eq!(story["user_agent"], "ai-router dashboard playground");
}

#[tokio::test]
async fn the_live_feed_pushes_overviews_and_is_bounded() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.dashboard.max_live_feeds = 1).await;
    let mut feed = client()
        .get(format!("{}/dashboard/api/live", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let first = feed.chunk().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("event: overview\ndata: {"), "{text}");
    // A second feed while the first is open: 503 in OpenAI's envelope.
    let (status, headers, body) = router.get("/dashboard/api/live").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_live_feeds");
    assert!(headers.contains_key("retry-after"));
    // A request flows; a later event counts it.
    assert_eq!(router.chat(&user("hi")).await.status(), 200);
    let counted = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let chunk = feed.chunk().await.unwrap().unwrap();
            let text = String::from_utf8_lossy(&chunk).to_string();
            if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                let overview: Value = serde_json::from_str(data).unwrap();
                if overview["since_start"]["requests"] == 1 {
                    return overview;
                }
            }
        }
    })
    .await
    .expect("an event counted the request within 5 s");
    assert_eq!(counted["recent"]["requests"], 1);
    drop(feed);
    // The permit comes back when the feed closes.
    let reopened = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let (status, _, _) = router.get("/dashboard/api/overview").await;
            assert_eq!(status, 200);
            let r = client()
                .get(format!("{}/dashboard/api/live", router.url))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a closed feed gives its place back");
}

#[tokio::test]
async fn the_prompts_page_lists_the_files_in_use() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let (status, _, body) = router.get("/dashboard/api/prompts").await;
    assert_eq!(status, 200, "{body}");
    let prompts = body["prompts"].as_array().unwrap();
    let system = prompts
        .iter()
        .find(|p| p["name"] == "primary/system.md")
        .expect("primary/system.md");
    assert_eq!(system["text"], crate::common::SYSTEM_PROMPT);
    assert_eq!(system["fallback"], false);
    assert!(system["file_modified"].is_string());
}

#[tokio::test]
async fn the_prompts_page_shows_a_reload_and_a_reload_error() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |_| {}).await;
    let prompt = |body: &Value, name: &str| {
        body["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    let (_, _, before) = router.get("/dashboard/api/prompts").await;
    let loaded_before = prompt(&before, "primary/system.md")["loaded_at"].clone();
    std::fs::write(
        router.prompts_dir.join("primary/system.md"),
        "EDITED <b>PROMPT</b>.",
    )
    .unwrap();
    // A broken file (its required placeholder gone) saved with it.
    std::fs::write(
        router.prompts_dir.join("routing/request.md"),
        "no placeholder",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let (_, _, body) = router.get("/dashboard/api/prompts").await;
        let edited = prompt(&body, "primary/system.md")["text"] == "EDITED <b>PROMPT</b>.";
        if edited && prompt(&body, "routing/request.md")["reload_error"].is_string() {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload seen: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let system = prompt(&after, "primary/system.md");
    assert_ne!(system["loaded_at"], loaded_before, "the reload time moved");
    assert_eq!(system["reload_error"], Value::Null);
    let broken = prompt(&after, "routing/request.md");
    assert!(
        broken["reload_error"]
            .as_str()
            .unwrap()
            .contains("placeholder"),
        "{broken}"
    );
    assert_eq!(
        broken["text"], "CONTEXT: {{context}}\nCLASSIFY: {{query}}",
        "the last good text stays"
    );
    // Mended: the error goes.
    std::fs::write(
        router.prompts_dir.join("routing/request.md"),
        "MENDED {{query}} {{context}}",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, body) = router.get("/dashboard/api/prompts").await;
        let mended = prompt(&body, "routing/request.md");
        if mended["reload_error"].is_null() && mended["text"] == "MENDED {{query}} {{context}}" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mended file was not reloaded: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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

#[tokio::test]
async fn without_session_logs_the_sessions_say_why() {
    let fake = Fake::start().await;
    let router = TestRouter::start(&fake.url, |c| c.sessions.enabled = false).await;
    let (status, _, body) = router.get("/dashboard/api/sessions").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "sessions_unreadable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sessions.enabled = false")
    );
}
