//! The route table, built once from `[routes]`: for each label, the backend that answers,
//! its prompt and shaping rules, its search hop and its failover order. The classifier's
//! labels are the table's labels.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, MaxTokens, Thinking};
use crate::names::{BackendId, Label, RouteName};

/// The label of client task prompts (see `config::validate`).
pub use crate::config::META_LABEL;

/// How one label is answered.
#[derive(Clone, Debug)]
pub struct Route {
    pub label: Label,
    /// Its name in `x-ai-router-route` and the session log.
    pub name: RouteName,
    pub backend: BackendId,
    /// The system prompt's file; empty for none.
    pub prompt: String,
    pub max_tokens: MaxTokens,
    pub min_max_tokens: u32,
    pub thinking: Thinking,
    pub drop_params: Vec<String>,
    pub search: Option<SearchHop>,
    /// Describes a chat's images for a backend that cannot see them.
    pub describe: Option<DescribeHop>,
    /// The routes that answer, in order, when this one's backend fails early.
    pub failover: Vec<Label>,
    pub classifier_may_choose: bool,
    /// The model id a client names to choose this route (`expose_as`), if listed.
    pub exposed_as: Option<String>,
    /// Whether its backend sees images.
    pub images: bool,
}

/// A route's search hop.
#[derive(Clone, Debug)]
pub struct SearchHop {
    pub backend: BackendId,
    /// Its instructions' file.
    pub prompt: String,
    /// The file that hands the findings to the answering model.
    pub injection: String,
    pub tools: Vec<String>,
    pub timeout: std::time::Duration,
}

/// A route's "describe, then answer" hop.
#[derive(Clone, Debug)]
pub struct DescribeHop {
    pub backend: BackendId,
    /// Its instructions' file.
    pub prompt: String,
    /// The file whose text takes each image's place.
    pub injection: String,
    /// For all of a chat's descriptions together.
    pub timeout: std::time::Duration,
    pub max_images: usize,
}

/// Every route, by label.
#[derive(Clone, Debug)]
pub struct RouteTable {
    routes: BTreeMap<Label, Arc<Route>>,
    /// The label used when the classifier gives none.
    pub fallback: Label,
    /// Where a chat with images goes when its label's route cannot see them, in order.
    pub image_routes: Vec<Label>,
}

impl RouteTable {
    /// The table `config` describes (validated: every name it uses exists).
    pub fn new(config: &Config) -> Self {
        let routes = config
            .routes
            .iter()
            .map(|(label, route)| {
                let name = if route.name.is_empty() {
                    label.to_lowercase()
                } else {
                    route.name.clone()
                };
                let route = Route {
                    label: Label::from(label.as_str()),
                    name: RouteName::from(name.as_str()),
                    backend: BackendId::from(route.backend.as_str()),
                    prompt: route.prompt.clone(),
                    max_tokens: route.max_tokens,
                    min_max_tokens: route.min_max_tokens,
                    thinking: route.thinking,
                    drop_params: route.drop_params.clone(),
                    search: route.search.as_ref().map(|search| SearchHop {
                        backend: BackendId::from(search.backend.as_str()),
                        prompt: search.prompt.clone(),
                        injection: search.injection.clone(),
                        tools: search.tools.clone(),
                        timeout: std::time::Duration::from_secs(search.timeout_secs),
                    }),
                    describe: route.describe.as_ref().map(|describe| DescribeHop {
                        backend: BackendId::from(describe.backend.as_str()),
                        prompt: describe.prompt.clone(),
                        injection: describe.injection.clone(),
                        timeout: std::time::Duration::from_secs(describe.timeout_secs),
                        max_images: describe.max_images,
                    }),
                    failover: route
                        .failover
                        .iter()
                        .map(|l| Label::from(l.as_str()))
                        .collect(),
                    classifier_may_choose: route.classifier_may_choose,
                    exposed_as: (config.server.expose_routes && !route.expose_as.is_empty())
                        .then(|| route.expose_as.clone()),
                    images: route.images,
                };
                (route.label.clone(), Arc::new(route))
            })
            .collect();
        RouteTable {
            routes,
            fallback: Label::from(config.routing.fallback.as_str()),
            image_routes: config
                .routing
                .image_routes
                .iter()
                .map(|l| Label::from(l.as_str()))
                .collect(),
        }
    }

    /// The route for `label`.
    pub fn get(&self, label: &str) -> Option<&Arc<Route>> {
        self.routes.get(label)
    }

    /// Every route, by label.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// The route a client chose by naming its `expose_as` model id, if any.
    pub fn exposed(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes
            .values()
            .find(|route| route.exposed_as.as_deref() == Some(model))
    }

    /// The model ids of the exposed routes, in label order.
    pub fn exposed_models(&self) -> impl Iterator<Item = &str> {
        self.routes.values().filter_map(|r| r.exposed_as.as_deref())
    }

    /// The label `name` (any case) names, if the table has it.
    pub fn label(&self, name: &str) -> Option<&Label> {
        self.routes
            .keys()
            .find(|label| label.eq_ignore_ascii_case(name))
    }

    /// The first whole-word label in a classifier's reply, ignoring case, punctuation,
    /// surrounding words and anything the model thought inside `<think>…</think>`.
    pub fn parse_label(&self, reply: &str) -> Option<Label> {
        words(visible_text(reply))
            .find_map(|word| self.label(word))
            .cloned()
    }
}

/// The words of `text` as labels are written: letters, digits and `_`.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
}

/// The reply without its reasoning: text after the last `</think>` (some templates open
/// the block in the prompt, so only the end tag appears), and nothing after an
/// unclosed `<think>`.
fn visible_text(reply: &str) -> &str {
    let lower = reply.to_ascii_lowercase();
    let start = lower.rfind("</think>").map_or(0, |i| i + "</think>".len());
    let visible = &reply[start..];
    match visible.to_ascii_lowercase().find("<think>") {
        Some(open) => &visible[..open],
        None => visible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> RouteTable {
        RouteTable::new(&Config::default())
    }

    #[test]
    fn labels_map_to_the_seed_routes() {
        let table = shipped();
        let names: Vec<(&str, &str, &str)> = table
            .iter()
            .map(|r| (r.label.as_str(), r.name.as_str(), r.backend.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("COMPLEX", "xai", "xai"),
                ("ENRICH", "enrich", "primary"),
                ("META", "meta", "primary"),
                ("MODERATE", "primary", "primary"),
                ("SIMPLE", "primary", "primary"),
            ]
        );
    }

    #[test]
    fn labels_are_read_leniently() {
        let table = shipped();
        let cases = [
            ("SIMPLE", Some("SIMPLE")),
            ("  moderate.\n", Some("MODERATE")),
            ("Label: **COMPLEX**", Some("COMPLEX")),
            (
                "I would say this is Enrich because it needs news",
                Some("ENRICH"),
            ),
            (
                "<think>Could be COMPLEX… no.</think>\nSIMPLE",
                Some("SIMPLE"),
            ),
            ("<THINK>hmm ENRICH</THINK> moderate", Some("MODERATE")),
            (
                "it needs thought about ENRICH</think>MODERATE",
                Some("MODERATE"),
            ),
            ("<think>still thinking about COMPLEX", None),
            ("SIMPLEX or COMPLEXITY", None),
            ("", None),
            ("META", Some("META")),
            ("simple, or maybe complex", Some("SIMPLE")),
        ];
        for (reply, expected) in cases {
            let label = table.parse_label(reply);
            assert_eq!(label.as_deref(), expected, "{reply:?}");
        }
    }

    #[test]
    fn an_admins_label_is_a_label_too() {
        let mut config = Config::default();
        config.routes.insert(
            "CODE_REVIEW".into(),
            crate::config::RouteConfig {
                backend: "primary".into(),
                ..Default::default()
            },
        );
        let table = RouteTable::new(&config);
        assert_eq!(
            table.parse_label("this is code_review.").as_deref(),
            Some("CODE_REVIEW")
        );
        assert_eq!(table.get("CODE_REVIEW").unwrap().name, "code_review");
    }
}
