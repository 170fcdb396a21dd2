//! The command line: `serve`, `check`, `classify`, `eval` and `sessions …`, and the dispatch of
//! the `sessions` commands (read the logs, or replay them through the classifier).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use super::eval::EvalArgs;
use super::eval::candidates::{self, Only};
use super::replay::{self, ReplayOptions};
use super::sessions::{self, ListFilter};
use crate::config::{self, Config};
use crate::record::folders;

/// An OpenAI-compatible router: each chat request goes to the backend that should answer it.
#[derive(Parser)]
#[command(name = "ai-router", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `--config FILE`, shared by every command.
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// Config file (TOML); the environment overrides it (AI_ROUTER_<SECTION>__<KEY>).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config/router.toml",
        global = true
    )]
    pub config: PathBuf,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the proxy on `server.listen` until SIGTERM or Ctrl-C.
    Serve(ConfigArg),
    /// Validate the config, prompts and META rules and print the effective settings
    /// (secrets masked); exits non-zero with the reason when something is wrong.
    Check(ConfigArg),
    /// Show how TEXT would be routed (META rules, then the classifier with the prompts
    /// as they are now): the decision, the classifier's raw reply and the time it took.
    Classify {
        #[command(flatten)]
        config: ConfigArg,
        /// The message to classify, as a user would send it.
        text: String,
    },
    /// Run the router's decision over a golden set of labelled conversations: accuracy,
    /// per-label precision and recall, the confusion matrix, cost-weighted error,
    /// calibration and latency; `--against DIR` compares a second prompts folder. Exit
    /// status: 0 done, 1 below `--min-accuracy`, 2 could not run.
    Eval(EvalArgs),
    /// Read the session logs: list, show, stats, replay, export.
    Sessions {
        #[command(flatten)]
        config: ConfigArg,
        /// A session folder (default: `sessions.dir` from the config). Give it again for
        /// more folders (one per replica); each is read with its sub-folders that hold
        /// session files (`logs/sessions/<pod>/`). Sessions merge oldest first.
        #[arg(long, global = true, value_name = "DIR")]
        dir: Vec<PathBuf>,
        /// Output JSON for agents instead of text for people.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: SessionsCommand,
    },
}

/// `ai-router sessions …`.
#[derive(Subcommand)]
pub enum SessionsCommand {
    /// One line per session: time, id, route, label, classification ms, total ms, outcome, query.
    List(ListFilter),
    /// One session, readable: query, decision and why, each step, the error.
    Show {
        /// The session id (from `x-request-id`), or a unique prefix of it.
        id: String,
    },
    /// Shares per route and label, latency percentiles, errors and fallbacks, xAI cost.
    Stats {
        /// Only sessions this recent: 30m, 24h, 7d, 2w.
        #[arg(long)]
        since: Option<String>,
    },
    /// Re-classify logged conversations with the prompts as they are now and report
    /// agreement with the logged decisions (needs the classifier).
    Replay {
        /// How far back.
        #[arg(long, default_value = "7d")]
        since: String,
        /// At most this many sessions (the most recent).
        #[arg(long)]
        limit: Option<usize>,
        /// Only sessions logged on this route.
        #[arg(long)]
        route: Option<String>,
        /// Classifier calls in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Where to write the JSON report (default: logs/replays/replay-<time>.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every session as one JSON line (JSONL), oldest first.
    Export {
        /// Only sessions this recent: 30m, 24h, 7d, 2w.
        #[arg(long)]
        since: Option<String>,
        /// Write golden-set lines instead (`ai-router eval`'s format): the classified
        /// conversations labelled as logged, marked `"needs_review": true` for a person.
        #[arg(long)]
        as_cases: bool,
        /// With --as-cases: every classified session, only the fallbacks, or the fallbacks
        /// and the labels given with a probability under one half (unsure).
        #[arg(long, value_enum, default_value_t, requires = "as_cases")]
        only: Only,
    },
}

/// Runs an `ai-router sessions …` command and returns what to print.
pub fn sessions(
    config_path: &Path,
    dirs: Vec<PathBuf>,
    json: bool,
    command: SessionsCommand,
) -> Result<String, String> {
    let config = config::load(config_path).map_err(|e| e.to_string())?;
    let given = match dirs.is_empty() {
        true => vec![config.sessions.dir.clone()],
        false => dirs,
    };
    let dirs = folders::expand(&given)?;
    match command {
        SessionsCommand::List(filter) => sessions::list(&dirs, &filter, json),
        SessionsCommand::Show { id } => sessions::show(&dirs, &id, json),
        SessionsCommand::Stats { since } => sessions::stats(&config, &dirs, since.as_deref(), json),
        SessionsCommand::Export {
            since,
            as_cases,
            only,
        } => {
            let mut stdout = std::io::stdout().lock();
            if as_cases {
                let count = candidates::export(&dirs, since.as_deref(), only, &mut stdout)?;
                eprintln!("exported {count} candidate cases (needs_review: true)");
                return Ok(String::new());
            }
            let count = sessions::export(&dirs, since.as_deref(), &mut stdout)?;
            eprintln!("exported {count} sessions");
            Ok(String::new())
        }
        SessionsCommand::Replay {
            since,
            limit,
            route,
            concurrency,
            out,
        } => {
            let options = ReplayOptions {
                since,
                limit,
                route,
                concurrency,
                out,
            };
            // The report goes beside the first folder given (`logs/replays`).
            let first = given.first().cloned().unwrap_or_default();
            run_replay(config, &dirs, &first, &options, json)
        }
    }
}

fn run_replay(
    config: Config,
    dirs: &[PathBuf],
    first: &Path,
    options: &ReplayOptions,
    json: bool,
) -> Result<String, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let setup = super::Setup::from(config)?;
        let report = replay::replay(&setup, dirs, options).await?;
        let path = replay::write_report(&report, first, options.out.as_deref())?;
        if report.replayed > 0 && report.failed.len() == report.replayed {
            // Nothing was compared: an agreement figure would mislead a script or agent.
            let first = report.failed.first().map_or("", |f| f.reason.as_str());
            return Err(format!(
                "every replay failed (first: {first}); is the classifier up? report: {}",
                path.display()
            ));
        }
        if json {
            return serde_json::to_string_pretty(&report)
                .map(|t| t + "\n")
                .map_err(|e| e.to_string());
        }
        Ok(replay::render(&report, &path))
    })
}
