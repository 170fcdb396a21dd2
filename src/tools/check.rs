//! `ai-router check`: loads and validates the config and prompts exactly as `serve`
//! would, and reports the effective settings (secrets masked) or the first problem.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{self, Config};
use crate::prompts::{PromptSet, PromptSource};
use crate::record::writer;
use crate::upstream::backend;

/// The report for a valid setup, or the problem that would stop `serve`.
pub fn report(path: &Path) -> Result<String, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    let prompts = PromptSet::load(&config.server.prompts_dir).map_err(|e| e.to_string())?;
    let rules = crate::routing::meta::load_rules(&config.meta).map_err(|e| e.to_string())?;
    let settings = toml::to_string_pretty(&config).map_err(|e| e.to_string())?;
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
    out.push_str("\n# backend keys\n");
    keys(&config, &mut out);
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

fn keys(config: &Config, out: &mut String) {
    for (name, backend) in config.backends.iter() {
        let variable = backend.api_key_env.trim();
        let state = if variable.is_empty() {
            "no key needed (api_key_env is empty)".to_string()
        } else if backend::read_key(backend).is_some() {
            format!("{variable} is set (***)")
        } else {
            format!("{variable} is NOT set: calls to this backend will be refused")
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
        writer::check_writable(dir).map_err(|e| format!("session logs: {e}"))?;
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
    writer::check_writable(ancestor)
        .map_err(|e| format!("session logs: {} cannot be created: {e}", dir.display()))?;
    Ok(format!(
        "{} will be created at start-up; {limits}",
        dir.display()
    ))
}
