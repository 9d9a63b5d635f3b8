//! Strategy-engine benchmark: market events per second on one core through the engine with
//! 1, 10 and 100 strategy instances, over every real Binance recording (parsed beforehand, so
//! only the engine is timed); then the wall time of `sigcast backtest` over the full set
//! (decompression and parsing included).
//!
//! Run: `cargo bench --bench engine` (reads `../shared/data/binance/` at run time).
//! Target: at least 5 M events/s/core with 10 instances.

mod common;

use common::recordings;
use std::collections::BTreeSet;
use std::time::Instant;

use sigcast::backtest::{self, Window};
use sigcast::market::replay::Merged;
use sigcast::market::{Malformed, Market, MarketEvent, MarketEventKind};
use sigcast::strategy::{Engine, Instance, definition};

const KINDS: [(&str, &str); 6] = [
    ("ma_cross", "fast = 9\nslow = 21\naverage = \"ema\""),
    ("rsi", "period = 14"),
    ("bollinger", "period = 20"),
    ("macd", ""),
    ("donchian", "period = 20"),
    ("book_imbalance", "threshold = 0.6"),
];

/// `n` instances cycling over the recorded (market, symbol) pairs, kinds and intervals.
fn instances(n: usize, symbols: &[(Market, String)]) -> Vec<Instance> {
    let mut text = String::new();
    for i in 0..n {
        let (market, symbol) = &symbols[i % symbols.len()];
        let (kind, params) = KINDS[i % KINDS.len()];
        let interval = ["1s", "1m", "5m"][i % 3];
        text.push_str(&format!(
            "[[strategy]]\nname = \"s{i}\"\nkind = \"{kind}\"\nmarket = \"{}\"\nsymbol = \"{symbol}\"\ninterval = \"{interval}\"\n[strategy.params]\n{params}\n",
            market.as_str()
        ));
    }
    definition::from_text(&text).unwrap()
}

fn main() {
    let files = recordings();
    let events: Vec<MarketEvent> = Merged::open(&files)
        .unwrap()
        .events(Malformed::new("bench"))
        .collect();
    let symbols: Vec<(Market, String)> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                MarketEventKind::Trade(_) | MarketEventKind::AggTrade(_)
            )
        })
        .map(|e| (e.market, e.symbol.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    println!(
        "engine throughput over {} recorded events ({} files, {} traded symbols), one core",
        events.len(),
        files.len(),
        symbols.len()
    );
    println!("target: >= 5,000,000 events/s with 10 instances");
    println!(
        "{:>10} {:>10} {:>14} {:>10}",
        "instances", "signals", "events/s", "ns/event"
    );
    for n in [1, 10, 100] {
        // Best of three passes, each with a fresh engine.
        let mut best = f64::MAX;
        let mut signals = 0;
        for _ in 0..3 {
            let mut engine = Engine::new(instances(n, &symbols));
            let mut out = Vec::new();
            let started = Instant::now();
            for e in &events {
                engine.on_event(std::hint::black_box(e), &mut out);
            }
            best = best.min(started.elapsed().as_secs_f64());
            signals = out.len();
        }
        let per_sec = events.len() as f64 / best;
        println!(
            "{n:>10} {signals:>10} {per_sec:>14.0} {:>10.1}",
            1e9 / per_sec
        );
    }

    let started = Instant::now();
    let merged = Merged::open(&files).unwrap();
    let mut engine = Engine::new(instances(10, &symbols));
    let run = backtest::run(
        &mut engine,
        merged.events(Malformed::new("bench")),
        Window::default(),
        sigcast::ledger::Ledger::new(Default::default(), Default::default()),
        |_| {},
    );
    let summaries = backtest::summarize(&run);
    println!();
    println!(
        "backtest wall time, all {} recordings, 10 instances: {:.2}s ({} events, {} signals, {} strategies summarized; read + decompress + parse + engine + ledger)",
        files.len(),
        started.elapsed().as_secs_f64(),
        run.events,
        run.signals.len(),
        summaries.len()
    );
}
