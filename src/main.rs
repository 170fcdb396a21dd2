//! The `ai-router` binary: the command line, then wiring (config → tracing → the app →
//! listener → serve until a signal). Everything else is in the library.

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use ai_router::app::{fd_limit, shutdown, telemetry};
use ai_router::tools::cli::{Cli, Command};
use ai_router::tools::{check, classify, cli, eval};
use ai_router::{App, config};
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
            .and_then(|rt| rt.block_on(classify::report(&config.config, &text)))
            .map(|report| print!("{report}")),
        // Its own exit statuses: 1 is a failed gate, 2 a run that could not happen.
        Command::Eval(args) => return eval::command(&args),
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
    let log = telemetry::init(config.server.log_format);
    // This thread accepts connections and runs the background work (probes, reloads,
    // the session logs' sweeps); the requests themselves run on the worker threads
    // (`server.workers`), each a runtime of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        fd_limit::raise(config.server.max_concurrent_requests);
        let listen = config.server.listen;
        let app = App::build(config)?;
        for backend in app.state.backends.iter() {
            let urls: Vec<&str> = backend
                .pool
                .endpoints()
                .iter()
                .map(|e| e.display.as_str())
                .collect();
            tracing::info!(backend = %backend.id, urls = ?urls, model = %backend.model, "backend");
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, "ai-router listening");
        app.run(listener, shutdown::signal()).await?;
        tracing::info!("stopped");
        Ok(())
    });
    if log.dropped() > 0 {
        eprintln!(
            "ai-router: {} log lines were dropped because the output could not keep up",
            log.dropped()
        );
    }
    served
}
