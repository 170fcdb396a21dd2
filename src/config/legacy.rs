//! The seed deployment's names for what the route table now says: `[xai]`, `[failover]`
//! and `meta.disable_thinking`, with the `XAI_*` variables behind them. Admins' files and
//! `.env`s still use them, so they keep working: each one that is set is written onto
//! the routes it always meant, here and nowhere else, and `ai-router check` says so.

use serde::{Deserialize, Serialize};

use super::{Config, MaxTokens, MissingKey, Thinking};

/// `[xai]`: the cloud backend's rules, by their older names. Each applies to the routes
/// whose backend is `xai` (and to search hops through it).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct XaiConfig {
    /// `routes.*.min_max_tokens` (`XAI_MIN_MAX_TOKENS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_max_tokens: Option<u32>,
    /// `routes.*.search.tools` (`XAI_SEARCH_TOOLS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_tools: Option<Vec<String>>,
    /// `routes.*.drop_params`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_params: Option<Vec<String>>,
    /// `routes.*.search.timeout_secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrich_timeout_secs: Option<u64>,
    /// `routing.missing_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_key: Option<MissingKey>,
}

/// `[failover]`: the two failovers the seed knew.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailoverConfig {
    /// The routes answered by `primary` (but META) fail over to the one answered by
    /// `xai`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_to_xai: Option<bool>,
    /// The route answered by `xai` fails over to the fallback label's route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xai_to_primary: Option<bool>,
}

impl XaiConfig {
    fn is_empty(&self) -> bool {
        self.min_max_tokens.is_none()
            && self.search_tools.is_none()
            && self.drop_params.is_none()
            && self.enrich_timeout_secs.is_none()
            && self.missing_key.is_none()
    }
}

/// Writes every older key that is set onto the route table, clears it, and returns one
/// line per key saying where it went.
pub(crate) fn apply(config: &mut Config) -> Vec<String> {
    let mut notes = Vec::new();
    let xai = std::mem::take(&mut config.xai);
    let failover = std::mem::take(&mut config.failover);
    let on_xai = |route: &super::RouteConfig| route.backend == "xai";
    if let Some(floor) = xai.min_max_tokens {
        let labels = edit(config, on_xai, |r| {
            r.max_tokens = MaxTokens::Floor;
            r.min_max_tokens = floor;
        });
        notes.push(note("xai.min_max_tokens", "min_max_tokens", &labels));
    }
    if let Some(params) = xai.drop_params {
        let labels = edit(config, on_xai, |r| r.drop_params.clone_from(&params));
        notes.push(note("xai.drop_params", "drop_params", &labels));
    }
    let searches_on_xai =
        |r: &super::RouteConfig| r.search.as_ref().is_some_and(|s| s.backend == "xai");
    if let Some(tools) = xai.search_tools {
        let labels = edit(config, searches_on_xai, |r| {
            if let Some(search) = &mut r.search {
                search.tools.clone_from(&tools);
            }
        });
        notes.push(note("xai.search_tools", "search.tools", &labels));
    }
    if let Some(secs) = xai.enrich_timeout_secs {
        let labels = edit(config, searches_on_xai, |r| {
            if let Some(search) = &mut r.search {
                search.timeout_secs = secs;
            }
        });
        notes.push(note(
            "xai.enrich_timeout_secs",
            "search.timeout_secs",
            &labels,
        ));
    }
    if let Some(policy) = xai.missing_key {
        config.routing.missing_key = policy;
        notes.push("xai.missing_key → routing.missing_key".into());
    }
    let xai_routes = labels_where(config, on_xai);
    if let Some(on) = failover.primary_to_xai
        && let Some(target) = xai_routes.first().cloned()
    {
        let labels = edit(
            config,
            |r| r.backend == "primary" && r.classifier_may_choose && r.search.is_none(),
            |r| {
                r.failover.retain(|l| *l != target);
                if on {
                    r.failover.push(target.clone());
                }
            },
        );
        notes.push(note("failover.primary_to_xai", "failover", &labels));
    }
    if let Some(on) = failover.xai_to_primary {
        let target = config.routing.fallback.clone();
        let labels = edit(config, on_xai, |r| {
            r.failover.retain(|l| *l != target);
            if on {
                r.failover.insert(0, target.clone());
            }
        });
        notes.push(note("failover.xai_to_primary", "failover", &labels));
    }
    if let Some(disable) = config.meta.disable_thinking.take()
        && let Some(meta) = config.routes.get_mut("META")
    {
        meta.thinking = if disable {
            Thinking::Off
        } else {
            Thinking::Pass
        };
        notes.push("meta.disable_thinking → routes.META.thinking".into());
    }
    debug_assert!(config.xai.is_empty());
    notes
}

/// Applies `change` to every route `which` picks; returns their labels.
fn edit(
    config: &mut Config,
    which: impl Fn(&super::RouteConfig) -> bool,
    mut change: impl FnMut(&mut super::RouteConfig),
) -> Vec<String> {
    let mut labels = Vec::new();
    for (label, route) in &mut config.routes {
        if which(route) {
            change(route);
            labels.push(label.clone());
        }
    }
    labels
}

fn labels_where(config: &Config, which: impl Fn(&super::RouteConfig) -> bool) -> Vec<String> {
    config
        .routes
        .iter()
        .filter(|(_, route)| which(route))
        .map(|(label, _)| label.clone())
        .collect()
}

fn note(old: &str, field: &str, labels: &[String]) -> String {
    if labels.is_empty() {
        return format!("{old} is set but no route uses what it applies to");
    }
    let targets: Vec<String> = labels
        .iter()
        .map(|l| format!("routes.{l}.{field}"))
        .collect();
    format!("{old} → {}", targets.join(", "))
}
