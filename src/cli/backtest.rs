//! `sigcast backtest`: the engine over recordings, as fast as the machine allows, with every
//! signal, a per-strategy summary and an HTML report.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::settings::SettingsArgs;
pub use crate::backtest::Window;
use crate::backtest::{self, Summary, report};
use crate::config::Overrides;
use crate::hub;
use crate::market::replay::Merged;
use crate::market::{Malformed, Market};
use crate::strategy::{Engine, definition, exec};

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
    /// Where signals.jsonl, summary.json and report.html go.
    #[arg(long, default_value = "backtest-report", value_name = "DIR")]
    out: PathBuf,
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
    let options = Options {
        data: args.data,
        signals: args.signals.unwrap_or(config.signals.dir),
        window,
        out: args.out,
    };
    let summaries = run(&options)?;
    print!("{}", table(&summaries));
    if summaries.iter().all(|s| s.signals == 0) {
        eprintln!("sigcast: backtest: {}", no_signals_hint(&options)?);
    }
    println!(
        "signals: {0}/signals.jsonl  summary: {0}/summary.json  report: {0}/report.html",
        options.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Why a backtest may have found no signal: the strategies' markets and symbols beside the
/// data's (the usual cause is spot strategies over a futures recording, or the reverse).
fn no_signals_hint(options: &Options) -> anyhow::Result<String> {
    let engine = Engine::new(definition::load(&options.signals, None)?);
    let mut wanted: Vec<String> = engine
        .streams()
        .iter()
        .map(|(market, stream)| {
            let symbol = stream.split('@').next().unwrap_or(stream);
            format!("{} {}", market.as_str(), symbol.to_uppercase())
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut held: Vec<(Market, String)> = Vec::new();
    for event in Merged::open(&options.data)?.events(Malformed::new("backtest")) {
        let seen = held
            .iter()
            .any(|(m, s)| *m == event.market && *s == event.symbol);
        if !seen {
            held.push((event.market, event.symbol));
        }
    }
    let mut held: Vec<String> = held
        .iter()
        .map(|(m, s)| format!("{} {s}", m.as_str()))
        .collect();
    held.sort();
    let list = |v: &[String]| match v.is_empty() {
        true => "nothing".to_string(),
        false => v.join(", "),
    };
    Ok(format!(
        "no signals. The strategies in {} trade {}; the data holds {}. Strategies fire only on \
         their own market and symbol (`market = \"futures\"` in a definition for USD-M data), \
         and only after their warm-up.",
        options.signals.display(),
        list(&wanted),
        list(&held)
    ))
}

/// What to run.
pub struct Options {
    pub data: Vec<PathBuf>,
    pub signals: PathBuf,
    pub window: Window,
    pub out: PathBuf,
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

/// Runs the backtest and writes its outputs; returns the summaries.
pub fn run(options: &Options) -> anyhow::Result<Vec<Summary>> {
    let instances = definition::load(&options.signals, None)?;
    let merged = Merged::open(&options.data)?;
    let meter = merged.meter();
    let mut engine = Engine::new(instances);
    exec::set_lossless(true);
    let started = Instant::now();
    let mut progress = Progress::new();
    // Plugins need the runtime; the engine itself runs on this plain thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let _guard = runtime.enter();
    let run = backtest::run(
        &mut engine,
        merged.events(Malformed::new("backtest")),
        options.window,
        |events| progress.show(meter.fraction(), events, started.elapsed()),
    );
    progress.done(run.events, started.elapsed());
    let summaries = backtest::summarize(&run);
    write_outputs(options, &run, &summaries)?;
    Ok(summaries)
}

fn write_outputs(
    options: &Options,
    run: &backtest::Run,
    summaries: &[Summary],
) -> anyhow::Result<()> {
    let out = &options.out;
    std::fs::create_dir_all(out)
        .with_context(|| format!("--out: cannot create {}", out.display()))?;
    let write = |name: &str, body: &[u8]| -> anyhow::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut lines = String::new();
    // Numbered from 1, as a fresh server's journal numbers them.
    for (seq, s) in run.signals.iter().enumerate() {
        lines.push_str(hub::encode_seq(s, seq as u64 + 1).as_str());
        lines.push('\n');
    }
    write("signals.jsonl", lines.as_bytes())?;
    write(
        "summary.json",
        serde_json::to_string_pretty(&summary_json(run, summaries))?.as_bytes(),
    )?;
    let sources: Vec<String> = options.data.iter().map(|p| file_name(p)).collect();
    write(
        "report.html",
        report::html(run, summaries, &sources).as_bytes(),
    )?;
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn summary_json(run: &backtest::Run, summaries: &[Summary]) -> serde_json::Value {
    serde_json::json!({
        "events": run.events,
        "signals": run.signals.len(),
        "strategies": summaries.iter().map(|s| serde_json::json!({
            "strategy": s.strategy,
            "interval": s.interval,
            "signals": s.signals,
            "buys": s.buys,
            "sells": s.sells,
            "horizons": s.horizons.iter().map(|h| serde_json::json!({
                "intervals": h.intervals,
                "measured": h.measured,
                "hit_rate": h.hit_rate,
                "avg_move_pct": h.avg_move_pct,
            })).collect::<Vec<_>>(),
            "naive_pnl_pct": s.pnl_pct,
            "trades": s.trades,
        })).collect::<Vec<_>>(),
    })
}

/// The summary as a text table.
pub fn table(summaries: &[Summary]) -> String {
    let mut t = format!(
        "{:<20} {:>8} {:>8} {:>14} {:>14} {:>14} {:>10}\n",
        "strategy", "interval", "signals", "hit/move @1", "hit/move @5", "hit/move @15", "P&L %"
    );
    for s in summaries {
        let h: Vec<String> = s
            .horizons
            .iter()
            .map(|h| format!("{:.0}%/{:+.3}%", h.hit_rate * 100.0, h.avg_move_pct))
            .collect();
        t.push_str(&format!(
            "{:<20} {:>8} {:>8} {:>14} {:>14} {:>14} {:>+10.3}\n",
            s.strategy, s.interval, s.signals, h[0], h[1], h[2], s.pnl_pct
        ));
    }
    t
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
