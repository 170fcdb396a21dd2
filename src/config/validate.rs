//! What types alone cannot check: URLs, names, non-zero limits, and that the route table
//! holds together (every label, backend and failover it names exists). Prompt files are
//! checked when they are loaded.

use super::{Config, ConfigError, MaxTokens};

/// The label of client task prompts: META detection gives it, so the table must have it.
pub const META_LABEL: &str = "META";

/// The fewest headers a request may be allowed: browsers behind Traefik and cloudflared
/// send some 40, and hyper's own default is 100.
const MIN_HEADERS: usize = 64;

/// The most: hyper sets aside room for twice `server.max_headers` on every request it
/// reads (64 bytes each), so a larger bound costs every request memory.
const MAX_HEADERS: usize = 8192;

/// Most worker threads: more than a machine has cores only adds switching between them.
const MAX_WORKERS: usize = 1024;

/// Checks `config`; the first problem found is the error, naming its key.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    server(config)?;
    for (name, backend) in &config.backends {
        let key = |field: &str| format!("backends.{name}.{field}");
        if !is_backend_name(name) {
            return invalid(
                &format!("backends.{name}"),
                "backend names are lower-case letters, digits, `-` and `_`",
            );
        }
        if backend.base_url.0.is_empty() {
            return invalid(&key("base_url"), "must name at least one URL");
        }
        for url in backend.base_url.iter() {
            match reqwest::Url::parse(url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => return invalid(&key("base_url"), "must be an http:// or https:// URL"),
            }
        }
        if backend.model.trim().is_empty() {
            return invalid(&key("model"), "must not be empty");
        }
        if backend.connect_timeout_secs == 0
            || backend.timeout_secs == 0
            || backend.response_timeout_secs == 0
        {
            return invalid(&key("*_timeout_secs"), "timeouts must be at least 1 second");
        }
        if backend.max_response_bytes < 1024 {
            return invalid(&key("max_response_bytes"), "must be at least 1024");
        }
    }
    routes(config)?;
    routing(config)?;
    passthrough(config)?;
    super::budget::validate(config)?;
    eval(config)
}

fn server(config: &Config) -> Result<(), ConfigError> {
    let server = &config.server;
    if server.virtual_model.trim().is_empty() {
        return invalid("server.virtual_model", "must not be empty");
    }
    if server.sse_keepalive_secs == 0 {
        return invalid("server.sse_keepalive_secs", "must be at least 1");
    }
    if config.health.probe_interval_secs == 0 {
        return invalid("health.probe_interval_secs", "must be at least 1");
    }
    if config.health.failure_threshold == 0 {
        return invalid("health.failure_threshold", "must be at least 1");
    }
    if server.max_concurrent_requests == 0 {
        return invalid("server.max_concurrent_requests", "must be at least 1");
    }
    if server.max_body_bytes == 0 {
        return invalid("server.max_body_bytes", "must be greater than 0");
    }
    if server.max_header_bytes < 1024 {
        return invalid("server.max_header_bytes", "must be at least 1024");
    }
    if !(MIN_HEADERS..=MAX_HEADERS).contains(&server.max_headers) {
        return invalid(
            "server.max_headers",
            &format!("must be from {MIN_HEADERS} to {MAX_HEADERS}"),
        );
    }
    if server.workers > MAX_WORKERS {
        return invalid(
            "server.workers",
            &format!("must be at most {MAX_WORKERS} (0: one per CPU)"),
        );
    }
    if server.max_choices == 0 {
        return invalid("server.max_choices", "must be at least 1");
    }
    if server.header_read_timeout_secs == 0 {
        return invalid("server.header_read_timeout_secs", "must be at least 1");
    }
    if server.body_read_timeout_secs == 0 {
        return invalid("server.body_read_timeout_secs", "must be at least 1");
    }
    if config
        .meta
        .headers
        .iter()
        .any(|h| axum::http::HeaderName::try_from(h.as_str()).is_err())
    {
        return invalid("meta.headers", "must be valid HTTP header names");
    }
    if config.sessions.max_files == 0 {
        return invalid("sessions.max_files", "must be at least 1");
    }
    if config.sessions.max_age_days == 0 {
        return invalid("sessions.max_age_days", "must be at least 1");
    }
    if config.sessions.max_answer_bytes < 1024 {
        return invalid("sessions.max_answer_bytes", "must be at least 1024");
    }
    // The session tools refuse files past 64 MiB (a file that size is not ours).
    if !(64 * 1024..=64 * 1024 * 1024).contains(&config.sessions.max_file_bytes) {
        return invalid(
            "sessions.max_file_bytes",
            "must be between 65536 (64 KiB) and 67108864 (64 MiB)",
        );
    }
    Ok(())
}

/// Every route names a backend that exists, labels it can fail over to, and sane rules.
fn routes(config: &Config) -> Result<(), ConfigError> {
    if !config.routes.contains_key(META_LABEL) {
        return invalid(
            "routes.META",
            "is missing: client task prompts (titles, tags, follow-ups) are answered on it",
        );
    }
    for (label, route) in &config.routes {
        let key = |field: &str| format!("routes.{label}.{field}");
        if !is_label(label) {
            return invalid(
                &format!("routes.{label}"),
                "labels are upper-case letters, digits and `_`, starting with a letter (e.g. [routes.CODE])",
            );
        }
        if !route.name.is_empty() && !is_backend_name(&route.name) {
            return invalid(
                &key("name"),
                "route names are lower-case letters, digits, `-` and `_`",
            );
        }
        backend_exists(config, &key("backend"), &route.backend)?;
        exposed_name(config, label, &route.expose_as)?;
        if route.max_tokens == MaxTokens::Floor && route.min_max_tokens == 0 {
            return invalid(
                &key("min_max_tokens"),
                "must be at least 1 with max_tokens = \"floor\"",
            );
        }
        for other in &route.failover {
            if other == label {
                return invalid(&key("failover"), "must not name the route itself");
            }
            if !config.routes.contains_key(other) {
                return invalid(&key("failover"), &no_such_label(config, other));
            }
        }
        if let Some(search) = &route.search {
            backend_exists(config, &key("search.backend"), &search.backend)?;
            if search.timeout_secs == 0 {
                return invalid(&key("search.timeout_secs"), "must be at least 1");
            }
            if search.injection.trim().is_empty() {
                return invalid(
                    &key("search.injection"),
                    "must name the prompt that hands the findings to the answering model",
                );
            }
        }
        if let Some(describe) = &route.describe {
            backend_exists(config, &key("describe.backend"), &describe.backend)?;
            if describe.timeout_secs == 0 {
                return invalid(&key("describe.timeout_secs"), "must be at least 1");
            }
            if describe.max_images == 0 {
                return invalid(&key("describe.max_images"), "must be at least 1");
            }
            if describe.injection.trim().is_empty() || describe.prompt.trim().is_empty() {
                return invalid(
                    &key("describe"),
                    "needs its prompt and its injection (the text that takes each image's place)",
                );
            }
        }
    }
    Ok(())
}

fn routing(config: &Config) -> Result<(), ConfigError> {
    let routing = &config.routing;
    backend_exists(config, "routing.backend", &routing.backend)?;
    match config.routes.get(&routing.fallback) {
        None => {
            return invalid(
                "routing.fallback",
                &no_such_label(config, &routing.fallback),
            );
        }
        Some(route) if !route.classifier_may_choose => {
            return invalid(
                "routing.fallback",
                "names a route the classifier may not choose (classifier_may_choose = false)",
            );
        }
        Some(_) => {}
    }
    for rule in &routing.fallback_rules {
        if !config.routes.contains_key(&rule.label) {
            return invalid(
                "routing.fallback_rules.label",
                &no_such_label(config, &rule.label),
            );
        }
    }
    if !(0.0..=1.0).contains(&routing.min_confidence) {
        return invalid("routing.min_confidence", "must be between 0 and 1");
    }
    if routing.min_confidence > 0.0 && !routing.logprobs {
        return invalid(
            "routing.min_confidence",
            "needs routing.logprobs = true (the confidence comes from log-probabilities)",
        );
    }
    if !routing.unsure_label.is_empty() && !config.routes.contains_key(&routing.unsure_label) {
        return invalid(
            "routing.unsure_label",
            &no_such_label(config, &routing.unsure_label),
        );
    }
    for label in &routing.image_routes {
        if !config.routes.contains_key(label) {
            return invalid("routing.image_routes", &no_such_label(config, label));
        }
    }
    if routing.sticky_secs > 0 {
        for label in &routing.sticky_order {
            if !config.routes.contains_key(label) {
                return invalid("routing.sticky_order", &no_such_label(config, label));
            }
        }
    }
    if routing.max_input_chars < 200 {
        return invalid("routing.max_input_chars", "must be at least 200");
    }
    Ok(())
}

/// `[eval]`: weights are finite and not negative, and each pair names two different
/// labels of the route table, written `"TRUE>ROUTED"`.
fn eval(config: &Config) -> Result<(), ConfigError> {
    let weight_ok = |w: f64| w.is_finite() && w >= 0.0;
    if !weight_ok(config.eval.default_cost) {
        return invalid("eval.default_cost", "must be a number, 0 or more");
    }
    for (pair, weight) in &config.eval.costs {
        let key = format!("eval.costs.\"{pair}\"");
        let Some((truth, routed)) = pair.split_once('>') else {
            return invalid(
                &key,
                "must be written \"TRUE>ROUTED\", e.g. \"COMPLEX>MODERATE\" (a COMPLEX request answered on MODERATE's route)",
            );
        };
        for label in [truth, routed] {
            if !config.routes.contains_key(label) {
                return invalid(&key, &no_such_label(config, label));
            }
        }
        if truth == routed {
            return invalid(&key, "names the same label twice: a right answer costs 0");
        }
        if !weight_ok(*weight) {
            return invalid(&key, "must be a number, 0 or more");
        }
    }
    Ok(())
}

fn backend_exists(config: &Config, key: &str, name: &str) -> Result<(), ConfigError> {
    if config.backends.contains_key(name) {
        return Ok(());
    }
    let known: Vec<&str> = config.backends.keys().map(String::as_str).collect();
    invalid(
        key,
        &format!(
            "names no backend: {name:?} (the backends are {})",
            known.join(", ")
        ),
    )
}

fn no_such_label(config: &Config, label: &str) -> String {
    let known: Vec<&str> = config.routes.keys().map(String::as_str).collect();
    format!(
        "names no route: {label:?} (the labels are {})",
        known.join(", ")
    )
}

fn is_label(label: &str) -> bool {
    label.starts_with(|c: char| c.is_ascii_uppercase())
        && label
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Backend and route names go into metrics labels, error codes and file-safe text.
fn is_backend_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn invalid(key: &str, problem: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    })
}

/// A route's `expose_as` model id: printable, not the virtual or the task model, not
/// another route's, and never META's (task prompts are recognised, not chosen).
fn exposed_name(config: &Config, label: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Ok(());
    }
    let key = format!("routes.{label}.expose_as");
    if label == META_LABEL {
        return invalid(&key, "META is not chosen by a client: leave it empty");
    }
    if name.len() > 128 || !name.chars().all(|c| c.is_ascii_graphic()) {
        return invalid(
            &key,
            "must be printable ASCII without spaces, at most 128 characters",
        );
    }
    if name == config.server.virtual_model || name == config.server.task_model.trim() {
        return invalid(
            &key,
            "must differ from server.virtual_model and server.task_model",
        );
    }
    let twice = config
        .routes
        .iter()
        .any(|(other, route)| other.as_str() != label && route.expose_as == name);
    if twice {
        return invalid(&key, &format!("{name:?} is another route's expose_as too"));
    }
    Ok(())
}

/// Every passed-through path is a `/v1/…` path the router does not answer itself, and
/// names backends that exist.
fn passthrough(config: &Config) -> Result<(), ConfigError> {
    for (path, pass) in &config.passthrough {
        let key = |field: &str| format!("passthrough.\"{path}\".{field}");
        if !super::passthrough::valid_path(path) {
            return invalid(
                &format!("passthrough.\"{path}\""),
                "must be a /v1/ path in lower case (e.g. \"/v1/embeddings\"), not one the router answers itself",
            );
        }
        backend_exists(config, &key("backend"), &pass.backend)?;
        for backend in &pass.failover {
            backend_exists(config, &key("failover"), backend)?;
        }
    }
    Ok(())
}
