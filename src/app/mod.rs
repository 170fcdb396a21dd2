//! Builds the router from its config — one `App::build` for `serve` and the tests —
//! and serves it: the accept loop, shutdown, tracing, the open-file limit, hot reload
//! of prompts and META rules, backend probes, and the replicas' shared cloud spend.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::edge::state::{AppState, Parts};
use crate::observe::live::LiveStats;
use crate::observe::metrics::Metrics;
use crate::observe::recent::Recent;
use crate::prompts::{self, PromptSet};
use crate::record::budget::Budgets;
use crate::record::sink::{Observer, SessionSink};
use crate::record::writer::{self, SessionWriter};
use crate::routing::{RouteTable, Routing};
use crate::upstream::{Backends, probe};

pub mod accept;
pub mod fd_limit;
pub mod hot_reload;
mod in_flight;
mod reloads;
mod serve;
mod shared_spend;
pub mod shutdown;
pub mod telemetry;
pub mod workers;

pub use serve::serve;

/// A router ready to serve: its state, and the session-log writer to flush at the end.
#[derive(Debug)]
pub struct App {
    pub state: Arc<AppState>,
    pub writer: Option<SessionWriter>,
}

/// What runs beside the server: hot reload and backend probes. Dropping it stops both.
pub struct Background {
    _watcher: hot_reload::HotReload,
    probes: tokio::task::JoinHandle<()>,
    /// Reads the other replicas' spend (`sessions.shared_dir`).
    shared_spend: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.probes.abort();
        if let Some(task) = &self.shared_spend {
            task.abort();
        }
    }
}

impl App {
    /// Everything `config` describes: prompts, META rules, backends and their pools,
    /// routing, the session-log writer (when enabled), metrics. Runs on a Tokio runtime
    /// (the writer's sweeper is a task).
    pub fn build(config: Config) -> anyhow::Result<App> {
        let prompts = PromptSet::load(&config.server.prompts_dir, &prompts::wanted(&config))?;
        let backends = Arc::new(
            Backends::build(
                &config.backends,
                config.health.failure_threshold,
                config.server.worker_count(),
            )
            .context("HTTP client")?,
        );
        let routing = Routing::build(&config, &backends)?;
        let metrics = Arc::new(Metrics::default());
        let live = Arc::new(LiveStats::new(
            route_names(&routing.table).iter().map(String::as_str),
        ));
        let budgets = Arc::new(Budgets::new(&config));
        if config.sessions.enabled {
            rebuild_spend(&budgets, &config);
        } else if budgets.any() {
            tracing::warn!(
                "cloud budgets are set but session logs are off: spend is counted from start-up only"
            );
        }
        let recent = Arc::new(Recent::default());
        let observers: Vec<Arc<dyn Observer>> = vec![
            metrics.clone(),
            live.clone(),
            budgets.clone(),
            recent.clone(),
        ];
        let (sessions, writer) = if config.sessions.enabled {
            // Room for every request being answered, and as many finished ones waiting
            // for the disk.
            let queue = config.server.max_concurrent_requests.saturating_mul(2);
            let (sink, writer) =
                writer::start(&config.sessions, queue, backends.secrets(), observers)
                    .with_context(|| {
                        format!("session logs in {}", config.sessions.dir.display())
                    })?;
            (sink, Some(writer))
        } else {
            (SessionSink::disabled().observed_by(observers), None)
        };
        for note in &config.notes {
            tracing::info!(note = %note, "older config key applied");
        }
        let state = AppState::new(Parts {
            config,
            prompts,
            backends,
            routing,
            sessions,
            metrics,
            live,
            budgets,
            recent,
        })?;
        Ok(App {
            state: Arc::new(state),
            writer,
        })
    }

    /// Serves on `listener` until `shutdown` resolves (then lets in-flight requests
    /// finish within `server.shutdown_grace_secs`), and flushes the session logs.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = background(&self.state)?;
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        serve(listener, self.state, shutdown, grace).await?;
        drop(background);
        if let Some(writer) = self.writer {
            writer.shutdown().await;
        }
        Ok(())
    }
}

/// Starts hot reload (prompts, META rules) and the background probes for `state`.
pub fn background(state: &AppState) -> anyhow::Result<Background> {
    let mut targets = vec![reloads::prompts(
        state.prompts.clone(),
        &state.config.server.prompts_dir,
        state.metrics.clone(),
    )];
    let rules_file = &state.config.meta.rules_file;
    if !rules_file.as_os_str().is_empty() {
        targets.push(reloads::meta_rules(state.routing.meta.rules(), rules_file));
    }
    let watcher = hot_reload::start(targets).context("watching the prompts and META rules")?;
    let every = Duration::from_secs(state.config.health.probe_interval_secs);
    let sessions = &state.config.sessions;
    let shared = sessions.enabled && !sessions.shared_dir.as_os_str().is_empty();
    Ok(Background {
        _watcher: watcher,
        probes: probe::spawn(state.backends.clone(), every),
        shared_spend: shared
            .then(|| shared_spend::spawn(state.budgets.clone(), spend_dirs(&state.config))),
    })
}

/// Counts what this UTC month's session logs spent (the folder and its replica
/// sub-folders, and every replica's with `sessions.shared_dir`), so a restart does not
/// reset the cloud budgets. Runs before the router serves; a folder that cannot be read
/// is logged and the budgets start from what could be read.
fn rebuild_spend(budgets: &Budgets, config: &Config) {
    let sessions = &config.sessions;
    let started = std::time::Instant::now();
    match budgets.read_month(&spend_dirs(config)) {
        Ok(count) => tracing::info!(
            sessions = count,
            ms = started.elapsed().as_millis() as u64,
            "cloud spend this month read from the session logs"
        ),
        Err(error) => tracing::warn!(
            error = %error,
            "cloud spend could not be read from the session logs; budgets count from now"
        ),
    }
    let monthly = config.budget.values().any(|b| b.monthly_usd > 0.0);
    if monthly && sessions.max_age_days < 31 {
        tracing::warn!(
            max_age_days = sessions.max_age_days,
            "a monthly cloud budget is set but session logs are kept fewer than 31 days: after a restart, the month's spend is read only from the days still kept"
        );
    }
}

/// The folders whose session logs count towards the cloud budgets.
fn spend_dirs(config: &Config) -> Vec<std::path::PathBuf> {
    let sessions = &config.sessions;
    let mut dirs = vec![sessions.dir.clone()];
    if !sessions.shared_dir.as_os_str().is_empty() {
        dirs.push(sessions.shared_dir.clone());
    }
    dirs
}

/// The route names, in the table's order.
fn route_names(table: &RouteTable) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for route in table.iter() {
        if !names.iter().any(|n| n == route.name.as_str()) {
            names.push(route.name.to_string());
        }
    }
    names
}
