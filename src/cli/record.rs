//! `sigcast record`: live upstream messages into a replay file until Ctrl-C or `--duration`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::settings::SettingsArgs;

use crate::config::{Config, Overrides};
use crate::market::Market;
use crate::market::binance::live::recorder::{self, Summary};

/// Save live Binance messages, with receive times, in the JSON-lines replay format.
#[derive(Debug, Args)]
pub struct Record {
    /// Streams, comma-separated, e.g. btcusdt@aggTrade,btcusdt@depth@100ms.
    #[arg(long, value_delimiter = ',', required = true)]
    streams: Vec<String>,
    /// `spot` or `futures` (USD-M).
    #[arg(long, default_value = "spot")]
    market: String,
    /// File to write (replay it with --source replay:FILE).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this long (e.g. 10m); otherwise at Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    settings: SettingsArgs,
}

pub fn run(args: Record) -> anyhow::Result<ExitCode> {
    let config = args.settings.load(Overrides::default())?;
    let _logging = crate::logging::init(&config);
    let summary = super::runtime()?.block_on(record(
        &config,
        &args.streams,
        &args.market,
        args.out.clone(),
        args.duration,
    ))?;
    if summary.messages == 0 {
        anyhow::bail!(
            "recorded nothing to {}: no message came from the upstream (no network, the \
             binance.* URLs unreachable, or stream names Binance does not know)",
            args.out.display()
        );
    }
    eprintln!(
        "sigcast: recorded {} messages ({:.1} MiB) to {}",
        summary.messages,
        summary.bytes as f64 / (1024.0 * 1024.0),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Records `streams` of `market` ("spot" or "futures") into `out`.
async fn record(
    config: &Config,
    streams: &[String],
    market: &str,
    out: PathBuf,
    duration: Option<Duration>,
) -> anyhow::Result<Summary> {
    let market = match market {
        "spot" => Market::Spot,
        "futures" | "usdm" => Market::Futures,
        other => anyhow::bail!("--market: expected spot or futures, got {other:?}"),
    };
    let mut subscriptions = Vec::new();
    for s in streams.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !s.contains('@') {
            anyhow::bail!("--streams: {s:?} is not a stream name like btcusdt@aggTrade");
        }
        subscriptions.push((market, s.to_string()));
    }
    if subscriptions.is_empty() {
        anyhow::bail!("--streams: name at least one stream");
    }
    let stop = CancellationToken::new();
    crate::node::cancel_on_signal(stop.clone());
    recorder::record(config.binance.clone(), &subscriptions, out, duration, stop).await
}
