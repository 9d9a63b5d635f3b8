//! Log output: `tracing` lines go to stderr from a thread of their own, so a reader of the log
//! that stops reading (a stalled collector, a paused terminal, a full pipe) never blocks the
//! threads that serve clients.
//!
//! Lines wait in a bounded queue ([`QUEUED_LINES`]); when it is full, new lines are dropped
//! and counted (`sigcast_log_lines_dropped_total`) instead of the server waiting. The writer
//! thread writes whatever is queued, then flushes once, so a burst of lines costs a few
//! `write()`s rather than one per line.

use std::io::BufWriter;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

use crate::config::{Config, LogFormat};

/// Lines that may wait for the writer thread; beyond them new lines are dropped. About 3 MB
/// at 200 bytes a line, minutes of a busy server's log.
pub const QUEUED_LINES: usize = 16_384;

/// Counts the lines dropped because the queue was full (set once, by [`init`]).
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread; dropping it writes out what is still queued (at exit).
#[must_use = "dropping it stops the log writer"]
pub struct Logging {
    _writer: WorkerGuard,
}

/// Sets up `tracing` on stderr (stdout carries tokens and the demo banner) at the configured
/// level and format. A process sets it up once; later calls keep the first setup.
pub fn init(config: &Config) -> Logging {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("sigcast-log")
        .finish(BufWriter::new(std::io::stderr()));
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Logging { _writer: guard }
}

/// Log lines dropped so far because the writer thread could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}
