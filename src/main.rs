//! The `ai-router` binary: command line, then wiring (config → tracing → state →
//! session writer → prompt watcher → serve → flush). Everything else is in the library.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ai_router::record::session::SessionSink;
use ai_router::tools::cli::{Cli, Command};
use ai_router::{
    AppState, app::prompt_watch, app::shutdown, app::telemetry, config, prompts,
    record::writer as session_writer, routing::meta, tools::check,
    tools::classify as classify_command, tools::cli, upstream::backend as upstream,
};
use anyhow::Context;
use clap::Parser;

/// mimalloc: malloc and free were a third of the router's instructions per request
/// under callgrind (`make profile`); this halves that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Check(args) => check::report(&args.config).map(|report| print!("{report}")),
        Command::Serve(args) => serve(&args.config).map_err(|e| format!("{e:#}")),
        Command::Classify { config, text } => tokio::runtime::Runtime::new()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(classify_command::report(&config.config, &text)))
            .map(|report| print!("{report}")),
        Command::Sessions {
            config,
            dir,
            json,
            command,
        } => cli::sessions(&config.config, dir, json, command).map(|out| print!("{out}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ai-router: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let config = config::load(path)?;
    telemetry::init(config.server.log_format);
    tokio::runtime::Runtime::new()?.block_on(run(config))
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    let prompts = prompts::PromptSet::load(&config.server.prompts_dir)?;
    let rules = meta::load_rules(&config.meta)?;
    let secrets = config
        .backends
        .iter()
        .into_iter()
        .filter_map(|(_, b)| upstream::read_key(b))
        .collect();
    let (sink, writer) = if config.sessions.enabled {
        let (sink, writer) = session_writer::start(&config.sessions, secrets)
            .with_context(|| format!("session logs in {}", config.sessions.dir.display()))?;
        (sink, Some(writer))
    } else {
        (SessionSink::disabled(), None)
    };
    ai_router::app::fd_limit::raise(config.server.max_concurrent_requests);
    let listen = config.server.listen;
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    for (name, backend) in config.backends.iter() {
        tracing::info!(backend = name, url = %backend.base_url, model = %backend.model, "backend");
    }
    let state = Arc::new(AppState::new(config, prompts, rules, sink)?);
    let _watcher = prompt_watch::start(state.clone()).context("watching the prompts folder")?;
    let probes = ai_router::upstream::health::spawn_probes(state.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "ai-router listening");
    ai_router::serve(listener, state, shutdown::signal(), grace).await?;
    probes.abort();
    if let Some(writer) = writer {
        writer.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}
