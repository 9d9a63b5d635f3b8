//! `sigcast backtest`: the engine over recordings, as fast as the machine allows, with every
//! signal, a per-strategy summary and an HTML report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::settings::SettingsArgs;
use crate::backtest::Window;
use crate::backtest::runner::{self, Options};
use crate::config::{Overrides, Positions};
use crate::ledger::Forced;

/// Run the strategies over recordings as fast as possible: every signal, a summary per
/// strategy and an HTML report with a chart.
#[derive(Debug, Args)]
pub struct Backtest {
    /// Recordings (merged by receive time), as `serve --source replay:` takes them:
    /// several after one flag, or comma-separated.
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', value_name = "FILE")]
    data: Vec<PathBuf>,
    /// Strategy definitions (default: signals.dir from the configuration).
    #[arg(long, value_name = "DIR")]
    signals: Option<PathBuf>,
    /// Window start, RFC 3339 or Unix seconds; earlier data only warms strategies up.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Window end, RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Where signals.jsonl, report.json, summary.json and report.html go.
    #[arg(long, default_value = "backtest-report", value_name = "DIR")]
    out: PathBuf,
    /// Paper-trade every strategy long_only (a sell closes) or long_short (a sell goes
    /// short), whatever the definitions and `[ledger]` say.
    #[arg(long, value_name = "MODE")]
    positions: Option<Positions>,
    /// Fee per side in basis points, for every strategy.
    #[arg(long, value_name = "BPS", allow_negative_numbers = true)]
    fee_bps: Option<f64>,
    /// Slippage against the trader in basis points, for every strategy.
    #[arg(long, value_name = "BPS", allow_negative_numbers = true)]
    slippage_bps: Option<f64>,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Runs the backtest and prints its table and where the files went.
pub fn command(args: Backtest) -> anyhow::Result<ExitCode> {
    let config = args.settings.load(Overrides::default())?;
    let _logging = crate::logging::init(&config);
    let window = Window {
        from: args.from.map(|t| parse_time("--from", &t)).transpose()?,
        to: args.to.map(|t| parse_time("--to", &t)).transpose()?,
    };
    let forced = Forced {
        positions: args.positions,
        fee_bps: args.fee_bps,
        slippage_bps: args.slippage_bps,
    };
    forced
        .apply(config.ledger)
        .check()
        .map_err(|e| anyhow::anyhow!("--{}", e.replacen('_', "-", 1)))?;
    let options = Options {
        data: args.data,
        signals: args.signals.unwrap_or(config.signals.dir),
        window,
        out: args.out,
        ledger: config.ledger,
        forced,
    };
    let started = Instant::now();
    let mut progress = Progress::new();
    let (run, summaries) = runner::run(&options, |fraction, events| {
        progress.show(fraction, events, started.elapsed())
    })?;
    progress.done(run.events, started.elapsed());
    print!("{}", runner::table(&run, &summaries));
    if summaries.iter().all(|s| s.signals == 0) {
        eprintln!("sigcast: backtest: {}", runner::no_signals_hint(&options)?);
    }
    println!(
        "signals: {0}/signals.jsonl  track record: {0}/report.json  summary: {0}/summary.json  report: {0}/report.html",
        options.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses `--from`/`--to`: RFC 3339 (`2024-08-08T23:55:00Z`) or Unix seconds.
pub fn parse_time(flag: &str, text: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(secs * 1000);
    }
    let t = humantime::parse_rfc3339_weak(text.trim()).with_context(|| {
        format!("{flag}: {text:?} is neither Unix seconds nor a time like 2024-08-08T23:55:00Z")
    })?;
    Ok(t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

/// Progress on stderr: a bar on a terminal, a line per 10 % otherwise.
struct Progress {
    terminal: bool,
    next_decile: u32,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            next_decile: 1,
        }
    }

    fn show(&mut self, fraction: f64, events: u64, elapsed: Duration) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let filled = (fraction * 30.0) as usize;
            let _ = write!(
                err,
                "\r[{}{}] {:>3.0}%  {} events  {:.1}s",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                fraction * 100.0,
                events,
                elapsed.as_secs_f64()
            );
        } else {
            while fraction * 10.0 >= self.next_decile as f64 && self.next_decile <= 10 {
                let _ = writeln!(
                    err,
                    "backtest: {}% ({events} events, {:.1}s)",
                    self.next_decile * 10,
                    elapsed.as_secs_f64()
                );
                self.next_decile += 1;
            }
        }
    }

    fn done(&mut self, events: u64, elapsed: Duration) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = writeln!(err);
        }
        let _ = writeln!(
            err,
            "backtest: {events} events in {:.2}s ({:.2} M events/s)",
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
        );
    }
}
