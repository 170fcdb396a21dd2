//! Which prompt files the router needs: the shipped ones (with their built-in copies,
//! used when a file is missing) and every file the config names.

use crate::config::Config;

use super::{ROUTING_REQUEST, ROUTING_SYSTEM, TRUNCATION_NOTE};

/// A shipped prompt: its file, its built-in copy, and the placeholders it cannot do
/// without.
pub(super) struct BuiltIn {
    pub name: &'static str,
    pub text: &'static str,
    pub required: &'static [&'static str],
}

/// The shipped prompts, compiled in as fallbacks for missing files.
pub(super) const BUILT_IN: [BuiltIn; 10] = [
    BuiltIn {
        name: "primary/system.md",
        text: include_str!("../../prompts/primary/system.md"),
        required: &[],
    },
    BuiltIn {
        name: ROUTING_SYSTEM,
        text: include_str!("../../prompts/routing/system.md"),
        required: &[],
    },
    BuiltIn {
        name: ROUTING_REQUEST,
        text: include_str!("../../prompts/routing/request.md"),
        required: &["query"],
    },
    BuiltIn {
        name: TRUNCATION_NOTE,
        text: include_str!("../../prompts/routing/truncation_note.md"),
        required: &[],
    },
    BuiltIn {
        name: "xai/system.md",
        text: include_str!("../../prompts/xai/system.md"),
        required: &[],
    },
    BuiltIn {
        name: "enrichment/system.md",
        text: include_str!("../../prompts/enrichment/system.md"),
        required: &[],
    },
    BuiltIn {
        name: "enrichment/injection.md",
        text: include_str!("../../prompts/enrichment/injection.md"),
        required: &["context"],
    },
    BuiltIn {
        name: "vision/describe.md",
        text: include_str!("../../prompts/vision/describe.md"),
        required: &[],
    },
    BuiltIn {
        name: "vision/injection.md",
        text: include_str!("../../prompts/vision/injection.md"),
        required: &["description"],
    },
    BuiltIn {
        name: "meta/system.md",
        text: include_str!("../../prompts/meta/system.md"),
        required: &[],
    },
];

/// A prompt file the router needs, and the placeholders its use requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Path relative to the prompts folder, e.g. `primary/system.md`.
    pub name: String,
    /// Placeholders the file must contain.
    pub required: Vec<&'static str>,
    /// The config key that names it, for error messages.
    pub named_by: String,
}

/// Every prompt file `config` names: the classifier's, each route's system prompt, and
/// each search hop's instructions and injection (which must carry `{{context}}`).
pub fn wanted(config: &Config) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut add = |name: &str, required: &[&'static str], named_by: String| {
        if name.trim().is_empty() {
            return;
        }
        match wanted.iter_mut().find(|w| w.name == name) {
            Some(known) => {
                for placeholder in required {
                    if !known.required.contains(placeholder) {
                        known.required.push(placeholder);
                    }
                }
            }
            None => wanted.push(Wanted {
                name: name.to_string(),
                required: required.to_vec(),
                named_by,
            }),
        }
    };
    for name in [ROUTING_SYSTEM, ROUTING_REQUEST, TRUNCATION_NOTE] {
        add(name, &[], "the classifier".into());
    }
    for (label, route) in &config.routes {
        add(&route.prompt, &[], format!("routes.{label}.prompt"));
        if let Some(search) = &route.search {
            add(&search.prompt, &[], format!("routes.{label}.search.prompt"));
            add(
                &search.injection,
                &["context"],
                format!("routes.{label}.search.injection"),
            );
        }
        if let Some(describe) = &route.describe {
            add(
                &describe.prompt,
                &[],
                format!("routes.{label}.describe.prompt"),
            );
            add(
                &describe.injection,
                &["description"],
                format!("routes.{label}.describe.injection"),
            );
        }
    }
    wanted
}
