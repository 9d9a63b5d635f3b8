//! The `sigcast` command line: argument parsing, and one call into the library per
//! subcommand, each in a file of its own.

mod backtest;
mod bench;
mod config;
mod demo;
#[cfg(test)]
mod examples;
mod healthcheck;
mod https;
mod init;
mod journal;
mod lines;
mod listen;
mod performance;
mod record;
mod serve;
mod settings;
mod token;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// sigcast: authenticated trading-signal broadcast over TLS WebSocket.
#[derive(Debug, Parser)]
#[command(name = "sigcast", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::Init),
    /// Run the signal server.
    Serve(serve::ServeArgs),
    Demo(demo::Demo),
    Backtest(backtest::Backtest),
    Record(record::Record),
    Bench(bench::Bench),
    Listen(listen::Listen),
    Healthcheck(healthcheck::Healthcheck),
    Performance(performance::Performance),
    Verify(verify::Verify),
    /// The signed journal: its public keys, its export, key rotation.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Issue and check tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

/// Parses the command line and runs it; errors are one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ran = match cli.command {
        Command::Init(args) => init::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Backtest(args) => backtest::command(args),
        Command::Record(args) => record::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Listen(args) => listen::run(args),
        Command::Healthcheck(args) => healthcheck::run(args),
        Command::Performance(args) => performance::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Journal(command) => journal::run(command),
        Command::Token(command) => token::run(command),
        Command::Config(command) => config::run(command),
    };
    match ran {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigcast: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Whether the command line `sigcast <args>` parses (the docs' examples are checked with
/// it); the error is clap's message.
#[cfg(test)]
fn accepts<I, T>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let all = std::iter::once(std::ffi::OsString::from("sigcast"))
        .chain(args.into_iter().map(Into::into));
    Cli::try_parse_from(all)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// An error and its causes on one line, as `{:#}` joins them, leaving out a cause whose text
/// the line already ends with (an error that prints its own source would show it twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line = format!("{line}: {text}");
        }
    }
    line
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(0)
}

/// The runtime with `threads` workers (0: tokio's default, one per CPU core).
fn runtime_with(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Writes `text` to stdout; a reader that went away (`| head`) ends the output quietly.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        done => Ok(done?),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open recording a,b: {source}")]
    struct Open {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Open { source: io }).context("--data");
        assert_eq!(
            one_line(&e),
            "--data: cannot open recording a,b: entity not found"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
