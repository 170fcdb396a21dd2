//! `ai-router eval`: runs the router's decision over a golden set of labelled
//! conversations and reports how often it is right, what its mistakes cost, how far its
//! confidence can be trusted and how long it takes; with `--against`, two prompt sets
//! side by side. How a routing-prompt edit is judged against ground truth.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::Setup;
use super::cli::ConfigArg;
use crate::config;
use crate::prompts::{self, PromptSet, PromptSource, ROUTING_REQUEST, ROUTING_SYSTEM};

pub mod candidates;
mod render;
pub mod report;
pub mod set;
pub mod verdict;

use report::{Change, Figures};
use verdict::Verdict;

/// `ai-router eval`'s options.
#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The golden set: JSON Lines, one labelled conversation a line.
    #[arg(long, value_name = "FILE", default_value = "evals/golden.jsonl")]
    pub set: PathBuf,
    /// The prompts to measure (default: `server.prompts_dir` from the config).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// A second prompts folder (a candidate edit): both side by side, and every case
    /// whose verdict changed.
    #[arg(long, value_name = "DIR")]
    pub against: Option<PathBuf>,
    /// Classifier calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Print the whole report as JSON for scripts.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when the accuracy (of the --against prompts, when given) is below this
    /// fraction, e.g. 0.85: a gate for scripts and CI.
    #[arg(long, value_name = "X")]
    pub min_accuracy: Option<f64>,
    /// Measure conversations that don't bounce: set `routing.sticky_secs` to SECS and
    /// decide each case's earlier turns first, in order, as the router would have seen
    /// them. Compare with a run without it.
    #[arg(long, value_name = "SECS")]
    pub sticky: Option<u64>,
}

/// The whole report; `Serialize` is the `--json` shape.
#[derive(Debug, Serialize)]
pub struct Report {
    pub set: String,
    pub classifier: String,
    pub cases: usize,
    /// Cases left out because they are marked `needs_review`.
    pub unreviewed: usize,
    /// The confusion matrix's rows and columns (with `fallback`), in order.
    pub labels: Vec<String>,
    /// The figures of the config's prompts (or `--prompts`).
    pub prompts: Figures,
    /// The figures of `--against`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Figures>,
    /// With `--against`: every case whose verdict differs.
    pub changed: Vec<Change>,
    /// With `--min-accuracy`: whether the run passes.
    pub gate: Option<Gate>,
}

/// `--min-accuracy` and the accuracy it was held to.
#[derive(Debug, Serialize)]
pub struct Gate {
    pub min_accuracy: f64,
    pub accuracy: f64,
    pub passed: bool,
}

/// Runs `ai-router eval`: 0 when done (and the gate, if any, passed), 1 when the gate
/// failed, 2 when the command could not run (options, config, set, classifier).
pub fn command(args: &EvalArgs) -> ExitCode {
    let report = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(evaluate(args)));
    let report = match report {
        Ok(report) => report,
        Err(message) => {
            eprintln!("ai-router eval: {message}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("ai-router eval: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", render::render(&report));
    }
    match &report.gate {
        Some(gate) if !gate.passed => {
            eprintln!(
                "ai-router eval: accuracy {:.3} is below --min-accuracy {}",
                gate.accuracy, gate.min_accuracy
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Loads everything `args` names, decides every case with each prompt set, and
/// computes the report.
pub async fn evaluate(args: &EvalArgs) -> Result<Report, String> {
    if let Some(min) = args.min_accuracy
        && !(0.0..=1.0).contains(&min)
    {
        return Err(format!(
            "--min-accuracy is a fraction from 0 to 1 (0.85 for 85%), not {min}"
        ));
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let mut config = config::load(&args.config.config).map_err(|e| e.to_string())?;
    if let Some(dir) = &args.prompts {
        config.server.prompts_dir.clone_from(dir);
    }
    // Every case must reach the classifier: a remembered decision would hide its time,
    // and a set may repeat a conversation on purpose.
    config.routing.cache_entries = 0;
    if let Some(secs) = args.sticky {
        config.routing.sticky_secs = secs;
    }
    let prompts_dir = config.server.prompts_dir.clone();
    is_folder(&prompts_dir)?;
    let setup = Setup::from(config)?;
    no_built_in(&prompts_dir, &setup.prompts)?;
    let against = match &args.against {
        None => None,
        Some(dir) => {
            is_folder(dir)?;
            let set = PromptSet::load(dir, &prompts::wanted(&setup.config))
                .map_err(|e| format!("--against {}: {e}", dir.display()))?;
            no_built_in(dir, &set)?;
            Some((dir, set))
        }
    };
    let golden = set::load(&args.set, &setup.routing.table)?;
    let before = verdict::decide_all(
        &setup,
        &setup.prompts,
        &golden.cases,
        args.concurrency,
        "classified",
    )
    .await;
    reached(&before)?;
    let after = match &against {
        None => None,
        Some((_, set)) => {
            let verdicts = verdict::decide_all(
                &setup,
                set,
                &golden.cases,
                args.concurrency,
                "classified (--against)",
            )
            .await;
            reached(&verdicts)?;
            Some(verdicts)
        }
    };
    let every: Vec<Verdict> = before
        .iter()
        .chain(after.iter().flatten())
        .cloned()
        .collect();
    let labels = report::labels(&every);
    let changed = after
        .as_ref()
        .map(|after| report::changes(&before, after))
        .unwrap_or_default();
    let costs = &setup.config.eval;
    let prompts = report::figures(&shown(&prompts_dir), before, &labels, costs);
    let against = against
        .zip(after)
        .map(|((dir, _), after)| report::figures(&shown(dir), after, &labels, costs));
    let gate = args.min_accuracy.map(|min| {
        let accuracy = against.as_ref().unwrap_or(&prompts).accuracy;
        Gate {
            min_accuracy: min,
            accuracy,
            passed: accuracy >= min,
        }
    });
    Ok(Report {
        set: args.set.display().to_string(),
        classifier: super::classifier_name(&setup.routing),
        cases: golden.cases.len(),
        unreviewed: golden.unreviewed,
        labels,
        prompts,
        against,
        changed,
        gate,
    })
}

fn is_folder(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "the prompts folder {} does not exist",
        dir.display()
    ))
}

/// A folder measured must hold the routing prompts: a missing one would quietly be
/// replaced by the built-in copy, and the report would measure that instead.
fn no_built_in(dir: &Path, set: &PromptSet) -> Result<(), String> {
    for name in [ROUTING_SYSTEM, ROUTING_REQUEST] {
        if set
            .get(name)
            .is_some_and(|p| p.source == PromptSource::Fallback)
        {
            return Err(format!(
                "{} has no {name}: the built-in copy would be measured instead",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// A run in which the classifier could not be asked even once measured nothing: the
/// figures would read as a classifier that is always wrong.
fn reached(verdicts: &[Verdict]) -> Result<(), String> {
    let asked: Vec<&Verdict> = verdicts.iter().filter(|v| v.ms.is_some()).collect();
    if asked.is_empty() || asked.iter().any(|v| !v.unreachable) {
        return Ok(());
    }
    let first = asked
        .first()
        .and_then(|v| v.fallback.as_deref())
        .unwrap_or("");
    Err(format!(
        "the classifier could not be asked for any case (first: {first}); is it up, and \
         are the config's backend URLs reachable from here?"
    ))
}

fn shown(dir: &Path) -> String {
    dir.display().to_string()
}
