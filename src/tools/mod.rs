//! The command-line tools: the command line itself, `check`, `classify`, `eval` and
//! `sessions …` (list, show, stats, export, replay). They read the config, the
//! prompts, the backends and the session logs; they never start the HTTP edge.

use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config};
use crate::prompts::{self, PromptSet};
use crate::record::session::{Session, SessionStart, new_id};
use crate::record::sink::SessionSink;
use crate::routing::Routing;
use crate::upstream::Backends;

pub mod check;
pub mod classify;
pub mod cli;
pub mod eval;
pub mod progress;
pub mod replay;
pub mod sessions;

/// What a tool that classifies needs: the config, the prompts as they are now, the
/// backends and routing.
pub struct Setup {
    pub config: Config,
    pub prompts: PromptSet,
    pub backends: Arc<Backends>,
    pub routing: Routing,
}

impl Setup {
    /// Loads `config` and everything it names, as `serve` would.
    pub fn load(path: &Path) -> Result<Self, String> {
        let config = config::load(path).map_err(|e| e.to_string())?;
        Self::from(config)
    }

    /// Everything `config` names.
    pub fn from(config: Config) -> Result<Self, String> {
        let prompts = PromptSet::load(&config.server.prompts_dir, &prompts::wanted(&config))
            .map_err(|e| e.to_string())?;
        // The tools call from their own thread: one client (no workers).
        let backends = Backends::build(&config.backends, config.health.failure_threshold, 0)
            .map_err(|e| format!("HTTP client: {e}"))?;
        let routing = Routing::build(&config, &backends).map_err(|e| e.to_string())?;
        Ok(Setup {
            config,
            prompts,
            backends: Arc::new(backends),
            routing,
        })
    }
}

/// The classifier's endpoints and model, for reports.
pub fn classifier_name(routing: &Routing) -> String {
    let classifier = &routing.classifier;
    let urls: Vec<&str> = classifier
        .pool
        .endpoints()
        .iter()
        .map(|e| e.display.as_str())
        .collect();
    format!("{} ({})", urls.join(", "), classifier.model)
}

/// A session record that goes nowhere, for a tool's classifier calls.
pub fn scratch_session() -> Session {
    Session::start(
        SessionStart {
            id: new_id(),
            client_ip: "127.0.0.1".into(),
            user_agent: None,
            backends_down: Vec::new(),
        },
        SessionSink::disabled(),
    )
}
