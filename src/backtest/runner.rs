//! A backtest over recording files, as `sigcast backtest` runs it: the definitions loaded,
//! the recordings merged, the engine and the ledger run, and its outputs written
//! (`signals.jsonl`, `report.json`, `summary.json`, `report.html`).

use std::path::{Path, PathBuf};

use super::{Run, Summary, Window, report};
use crate::config::LedgerSettings;
use crate::hub;
use crate::ledger::{self, Forced, Ledger};
use crate::market::recording::RecordingError;
use crate::market::replay::Merged;
use crate::market::{Malformed, Market};
use crate::strategy::definition::{self, DefinitionError};
use crate::strategy::{Engine, exec};

/// Why a backtest could not run or keep its outputs.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Definitions(#[from] DefinitionError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("starting the runtime plugins run on: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What to run.
pub struct Options {
    pub data: Vec<PathBuf>,
    pub signals: PathBuf,
    pub window: Window,
    pub out: PathBuf,
    /// How signals are paper-traded where a definition says nothing (`[ledger]`).
    pub ledger: LedgerSettings,
    /// What wins over the definitions too (`--positions`, `--fee-bps`, `--slippage-bps`).
    pub forced: Forced,
}

/// Runs the backtest and writes its outputs; returns the summaries. `progress` is told the
/// fraction of the data read and the events so far, every 8192 events.
pub fn run(
    options: &Options,
    mut progress: impl FnMut(f64, u64),
) -> Result<(Run, Vec<Summary>), BacktestError> {
    let instances = definition::load(&options.signals, None)?;
    let ledger = Ledger::new(ledger::rules(&instances, &options.ledger).forced(&options.forced));
    let merged = Merged::open(&options.data)?;
    let meter = merged.meter();
    let mut engine = Engine::new(instances);
    exec::set_lossless(true);
    // Plugins need the runtime; the engine itself runs on this plain thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(BacktestError::Runtime)?;
    let _guard = runtime.enter();
    let run = super::run(
        &mut engine,
        merged.events(Malformed::new("backtest")),
        options.window,
        ledger,
        |events| progress(meter.fraction(), events),
    );
    let summaries = super::summarize(&run);
    write_outputs(options, &run, &summaries)?;
    Ok((run, summaries))
}

fn write_outputs(options: &Options, run: &Run, summaries: &[Summary]) -> Result<(), BacktestError> {
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|error| BacktestError::Write {
        path: out.clone(),
        error,
    })?;
    let write = |name: &str, body: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, body).map_err(|error| BacktestError::Write { path, error })
    };
    let mut lines = String::new();
    // Numbered from 1, as a fresh server's journal numbers them.
    for (seq, s) in run.signals.iter().enumerate() {
        lines.push_str(hub::encode_seq(s, seq as u64 + 1).as_str());
        lines.push('\n');
    }
    write("signals.jsonl", lines.as_bytes())?;
    write(
        "report.json",
        serde_json::to_string_pretty(&report_json(run))
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write(
        "summary.json",
        serde_json::to_string_pretty(&summary_json(run, summaries))
            .unwrap_or_default()
            .as_bytes(),
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

/// `report.json`: the track record of every strategy (figures, per symbol, trades, equity),
/// the signals untracked for want of a price, and what the run covered.
fn report_json(run: &Run) -> serde_json::Value {
    serde_json::json!({
        "events": run.events,
        "signals": run.signals.len(),
        "strategies": run.track.strategies,
        "untracked": run.track.untracked,
    })
}

fn summary_json(run: &Run, summaries: &[Summary]) -> serde_json::Value {
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

/// The summary as text: each strategy's signals and their moves after 1, 5 and 15 candles,
/// then its track record (the ledger's headline figures; every figure is in report.json).
pub fn table(run: &Run, summaries: &[Summary]) -> String {
    let mut t = format!(
        "{:<20} {:>8} {:>8} {:>14} {:>14} {:>14}\n",
        "strategy", "interval", "signals", "hit/move @1", "hit/move @5", "hit/move @15"
    );
    for s in summaries {
        let h: Vec<String> = s
            .horizons
            .iter()
            .map(|h| format!("{:.0}%/{:+.3}%", h.hit_rate * 100.0, h.avg_move_pct))
            .collect();
        t.push_str(&format!(
            "{:<20} {:>8} {:>8} {:>14} {:>14} {:>14}\n",
            s.strategy, s.interval, s.signals, h[0], h[1], h[2]
        ));
    }
    let track = serde_json::to_value(&run.track).unwrap_or_default();
    t.push('\n');
    t.push_str(&ledger::table::text(&track));
    t
}

/// Why a backtest may have found no signal: the strategies' markets and symbols beside the
/// data's (the usual cause is spot strategies over a futures recording, or the reverse).
pub fn no_signals_hint(options: &Options) -> Result<String, BacktestError> {
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
            held.push((event.market, event.symbol.to_string()));
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
