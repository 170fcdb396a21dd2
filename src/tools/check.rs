//! `ai-router check`: loads and validates the config, the route table, the prompts and
//! the META rules exactly as `serve` would, and reports the effective settings (secrets
//! masked) and who answers each label, or the first problem.

use std::fmt::Write as _;
use std::path::Path;

use super::Setup;
use crate::config::{self, Config, MissingKey};
use crate::prompts::{PromptSource, ROUTING_REQUEST, ROUTING_SYSTEM};
use crate::record::budget::Budgets;
use crate::record::disk;
use crate::routing::answering;
use crate::upstream::read_key;

/// The report for a valid setup, or the problem that would stop `serve`.
pub fn report(path: &Path) -> Result<String, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    let setup = Setup::from(config.clone())?;
    let prompts = &setup.prompts;
    let rules = crate::routing::meta::load_rules(&config.meta).map_err(|e| e.to_string())?;
    let settings = toml::to_string_pretty(&shown(&config)).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# ai-router {}: configuration is valid",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# effective settings: built-in defaults < {} < environment\n",
        path.display()
    );
    out.push_str(&settings);
    if !config.notes.is_empty() {
        out.push_str("\n# older keys, applied to the route table\n");
        for note in &config.notes {
            let _ = writeln!(out, "{note}");
        }
    }
    out.push_str("\n# backend keys\n");
    keys(&config, &mut out);
    out.push_str("\n# routes: label → route (backend, prompt), failover, search\n");
    routes(&setup, &mut out);
    out.push_str("\n# prompts\n");
    for prompt in prompts.all() {
        let source = match &prompt.source {
            PromptSource::File(file) => format!("file {}", file.display()),
            PromptSource::Fallback => "BUILT-IN FALLBACK (file missing)".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<27} {} ({} chars)",
            prompt.name,
            source,
            prompt.text.chars().count()
        );
    }
    out.push_str("\n# META text rules\n");
    let _ = match config.meta.rules_file.as_os_str().is_empty() {
        true => writeln!(out, "none (meta.rules_file is empty)"),
        false => {
            let names: Vec<&str> = rules.names().collect();
            writeln!(
                out,
                "{} rules from {}: {}",
                names.len(),
                config.meta.rules_file.display(),
                names.join(", ")
            )
        }
    };
    out.push_str("\n# session logs\n");
    let _ = writeln!(out, "{}", sessions_status(&config)?);
    Ok(out)
}

/// `config` as it may be shown: passwords in backend URLs masked.
fn shown(config: &Config) -> Config {
    let mut shown = config.clone();
    for backend in shown.backends.values_mut() {
        for url in &mut backend.base_url.0 {
            if let Some(masked) = crate::secret::mask_url_password(url) {
                *url = masked;
            }
        }
    }
    shown
}

/// Who answers each label, as `serve` would now (a missing key changes it), and a
/// warning for a label the classifier may give but its prompt never names.
fn routes(setup: &Setup, out: &mut String) {
    let table = &setup.routing.table;
    let routing_prompt = [ROUTING_SYSTEM, ROUTING_REQUEST]
        .map(|name| setup.prompts.render(name, &[]))
        .join("\n");
    for route in table.iter() {
        let mut line = format!(
            "{:<10} → {} ({}, {})",
            route.label,
            route.name,
            route.backend,
            if route.prompt.is_empty() {
                "no prompt"
            } else {
                &route.prompt
            }
        );
        if !route.failover.is_empty() {
            let labels: Vec<&str> = route.failover.iter().map(|l| l.as_str()).collect();
            let _ = write!(line, "; failover {}", labels.join(", "));
        }
        if let Some(hop) = &route.search {
            let _ = write!(
                line,
                "; search via {} ({})",
                hop.backend,
                hop.tools.join(", ")
            );
        }
        if !route.classifier_may_choose {
            line.push_str("; never from the classifier");
        } else if !crate::routing::table::words(&routing_prompt).any(|w| w == route.label.as_str())
        {
            let _ = write!(
                line,
                "\n{:13}warning: the routing prompts ({ROUTING_SYSTEM}, {ROUTING_REQUEST}) never name {}: the classifier will not give it",
                "", route.label
            );
        }
        let gate = answering::Gate {
            backends: &setup.backends,
            missing_key: setup.config.routing.missing_key,
            budgets: &Budgets::default(),
        };
        match answering::resolve(table, &gate, &route.label) {
            Ok(answering) => {
                if let Some(note) = answering.note {
                    let _ = write!(line, "\n{:13}now: {note}", "");
                }
            }
            Err(error) => {
                let _ = write!(line, "\n{:13}now: refused ({error})", "");
            }
        }
        let _ = writeln!(out, "{line}");
    }
}

fn keys(config: &Config, out: &mut String) {
    for (name, backend) in &config.backends {
        let variable = backend.api_key_env.trim();
        let state = if variable.is_empty() {
            "no key needed (api_key_env is empty)".to_string()
        } else if read_key(backend).is_some() {
            format!("{variable} is set (***)")
        } else {
            let what = match config.routing.missing_key {
                MissingKey::Fallback => {
                    "it is never called; its routes are answered as `# routes` says"
                }
                MissingKey::Error => "it is never called; its routes answer 503",
            };
            format!("{variable} is NOT set: {what}")
        };
        let _ = writeln!(out, "{name:<11} {state}");
    }
}

/// The same check `serve` makes at start-up: the folder must accept new files.
fn sessions_status(config: &Config) -> Result<String, String> {
    let sessions = &config.sessions;
    if !sessions.enabled {
        return Ok("disabled (sessions.enabled = false)".into());
    }
    let dir = &sessions.dir;
    let limits = format!(
        "keeps {} days, {} files",
        sessions.max_age_days, sessions.max_files
    );
    if dir.is_dir() {
        disk::check_writable(dir).map_err(|e| format!("session logs: {e}"))?;
        let count = std::fs::read_dir(dir).map_or(0, |d| d.count());
        return Ok(format!(
            "{} is writable ({count} entries); {limits}",
            dir.display()
        ));
    }
    // Not there yet: `serve` creates it, so its nearest existing ancestor must be a
    // writable folder.
    let ancestor = dir
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    if !ancestor.is_dir() {
        return Err(format!(
            "session logs: {} cannot be created: {} is not a folder",
            dir.display(),
            ancestor.display()
        ));
    }
    disk::check_writable(ancestor)
        .map_err(|e| format!("session logs: {} cannot be created: {e}", dir.display()))?;
    Ok(format!(
        "{} will be created at start-up; {limits}",
        dir.display()
    ))
}
