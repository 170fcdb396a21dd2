//! `[routes.LABEL]`: the route table. Each label the classifier (or META detection) can
//! give names the backend that answers, its system prompt, how the request is shaped for
//! it, an optional search hop, and the routes that answer instead when it fails early.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[routes.<LABEL>]`: how requests with this label are answered.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name in `x-ai-router-route` and the session log's `route`; empty for
    /// the label in lower case. Several labels may share one.
    pub name: String,
    /// The backend that answers.
    pub backend: String,
    /// The system prompt, a file under `prompts_dir` (`primary/system.md`); empty for none.
    pub prompt: String,
    /// What happens to the client's `max_tokens` / `max_completion_tokens`.
    pub max_tokens: MaxTokens,
    /// With `max_tokens = "floor"`: the least `max_tokens` the backend is sent.
    pub min_max_tokens: u32,
    /// Whether a reasoning model thinks: `pass` leaves it to the client; `off` / `on`
    /// send `chat_template_kwargs.enable_thinking`.
    pub thinking: Thinking,
    /// Request parameters removed on the way (e.g. what Grok's reasoning models reject).
    pub drop_params: Vec<String>,
    /// A hop that gathers context before the answer (ENRICH's web search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchConfig>,
    /// For a route whose backend cannot see images: a vision backend that describes each
    /// image first, so this route answers a chat with images from their descriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe: Option<DescribeConfig>,
    /// Labels of the routes that answer, in order, when this one's backend fails before
    /// anything reached the client (unreachable, timed out, 429, 5xx).
    pub failover: Vec<String>,
    /// Whether the classifier may give this label. META's is not trusted: only task
    /// headers, the task model and META rules choose META.
    pub classifier_may_choose: bool,
    /// A model id `/v1/models` lists for this route (e.g. `ai-router/cloud`), when
    /// `server.expose_routes` is on; a chat naming it skips the classifier and takes
    /// this route. Empty: not listed.
    pub expose_as: String,
    /// Whether the route's backend sees images (`image_url` parts): a chat carrying them
    /// goes only to such a route (see `routing.image_routes`).
    pub images: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            name: String::new(),
            backend: String::new(),
            prompt: String::new(),
            max_tokens: MaxTokens::Strip,
            min_max_tokens: 0,
            thinking: Thinking::Pass,
            drop_params: Vec::new(),
            search: None,
            describe: None,
            failover: Vec::new(),
            classifier_may_choose: true,
            expose_as: String::new(),
            images: false,
        }
    }
}

/// `[routes.<LABEL>.search]`: a hop through a backend's Responses API with server-side
/// search tools; what it finds is injected into the answering route's system prompt.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// The backend that searches (its `/responses` endpoint).
    pub backend: String,
    /// Its instructions, a file under `prompts_dir`.
    pub prompt: String,
    /// How the findings reach the answering model (`{{context}}`, `{{sources}}`).
    pub injection: String,
    /// Server-side tools, e.g. `web_search`, `x_search`.
    pub tools: Vec<String>,
    /// Longest wait for the whole hop (x_search can take 20–45 s).
    pub timeout_secs: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            backend: String::new(),
            prompt: "enrichment/system.md".into(),
            injection: "enrichment/injection.md".into(),
            tools: vec!["web_search".into(), "x_search".into()],
            timeout_secs: 90,
        }
    }
}

/// `[routes.<LABEL>.describe]`: "describe, then answer". Each image of a chat is sent to
/// a vision backend with `prompt`; its description, rendered through `injection`, takes
/// the image's place in the conversation the route's own backend answers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DescribeConfig {
    /// The backend that sees images (its `/chat/completions`).
    pub backend: String,
    /// Its instructions, a file under `prompts_dir`.
    pub prompt: String,
    /// What replaces each image (`{{description}}`, `{{number}}`).
    pub injection: String,
    /// Longest wait for all of a chat's descriptions together.
    pub timeout_secs: u64,
    /// Most images described for one chat; a chat with more gets a 400 that says so.
    pub max_images: usize,
}

impl Default for DescribeConfig {
    fn default() -> Self {
        DescribeConfig {
            backend: String::new(),
            prompt: "vision/describe.md".into(),
            injection: "vision/injection.md".into(),
            timeout_secs: 60,
            max_images: 4,
        }
    }
}

/// What a route does with the client's length cap.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MaxTokens {
    /// Remove it: a reasoning model cut short ends inside `<think>`.
    Strip,
    /// Raise it to at least `min_max_tokens` (never lower it).
    Floor,
    /// Send it as the client did.
    Pass,
}

/// Whether a reasoning model thinks on this route.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Thinking {
    /// As the client asked (or the model's default).
    Pass,
    /// `chat_template_kwargs.enable_thinking = false`.
    Off,
    /// `chat_template_kwargs.enable_thinking = true`.
    On,
}

/// The route table of the seed deployment: SIMPLE and MODERATE on the primary, COMPLEX
/// on xAI (falling back to the primary), ENRICH searching with xAI and answered by the
/// primary, META on the primary without thinking. MODERATE, COMPLEX and ENRICH are also
/// listed as models a client may choose: `ai-router/local`, `/cloud`, `/search`.
pub(crate) fn default_routes() -> BTreeMap<String, RouteConfig> {
    let local = |prompt: &str| RouteConfig {
        name: "primary".into(),
        backend: "primary".into(),
        prompt: prompt.into(),
        ..RouteConfig::default()
    };
    let routes = [
        ("SIMPLE", local("primary/system.md")),
        (
            "MODERATE",
            RouteConfig {
                expose_as: "ai-router/local".into(),
                ..local("primary/system.md")
            },
        ),
        (
            "COMPLEX",
            RouteConfig {
                name: "xai".into(),
                backend: "xai".into(),
                prompt: "xai/system.md".into(),
                max_tokens: MaxTokens::Floor,
                min_max_tokens: 16384,
                drop_params: [
                    "presence_penalty",
                    "frequency_penalty",
                    "stop",
                    "reasoning_effort",
                ]
                .map(String::from)
                .to_vec(),
                failover: vec!["MODERATE".into()],
                expose_as: "ai-router/cloud".into(),
                // Grok reads images.
                images: true,
                ..RouteConfig::default()
            },
        ),
        (
            "ENRICH",
            RouteConfig {
                name: "enrich".into(),
                search: Some(SearchConfig {
                    backend: "xai".into(),
                    ..SearchConfig::default()
                }),
                expose_as: "ai-router/search".into(),
                ..local("primary/system.md")
            },
        ),
        (
            "META",
            RouteConfig {
                name: "meta".into(),
                thinking: Thinking::Off,
                classifier_may_choose: false,
                ..local("meta/system.md")
            },
        ),
    ];
    routes
        .into_iter()
        .map(|(label, route)| (label.to_string(), route))
        .collect()
}
