//! Tracing set-up: `RUST_LOG` decides what is shown (default `info`), `log_format`
//! decides text or JSON lines. Lines are written by a thread of their own: a slow
//! terminal or a full pipe to the container runtime never stalls a request.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines waiting for the writer thread; past this they are dropped, not waited for.
const BUFFERED_LINES: usize = 64 * 1024;

/// Keeps the log writer running; dropping it writes out the lines still waiting.
#[must_use = "the log writer stops when this is dropped"]
pub struct LogWriter {
    _guard: WorkerGuard,
    dropped: tracing_appender::non_blocking::ErrorCounter,
}

impl LogWriter {
    /// Lines given up because the output could not keep up.
    pub fn dropped(&self) -> usize {
        self.dropped.dropped_lines()
    }
}

/// Installs the global subscriber. Safe to call once; later calls are ignored.
pub fn init(format: LogFormat) -> LogWriter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: `docker logs` and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("ai-router-log")
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    LogWriter {
        _guard: guard,
        dropped,
    }
}
