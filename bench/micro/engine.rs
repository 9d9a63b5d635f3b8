//! Strategy-engine benchmark: market events per second on one core through the engine with
//! 1, 10 and 100 strategy instances, over every real Binance recording (parsed beforehand, so
//! only the engine is timed); the ledger's cost per market price and per signal; then the
//! wall time of `sigcast backtest` over the full set (decompression, parsing and the ledger
//! included).
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

    ledger_cost(&events);

    let started = Instant::now();
    let merged = Merged::open(&files).unwrap();
    let mut engine = Engine::new(instances(10, &symbols));
    let run = backtest::run(
        &mut engine,
        merged.events(Malformed::new("bench")),
        Window::default(),
        sigcast::ledger::Ledger::new(Default::default()),
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

/// The track record's cost: a market price marked (per event with a price, equity sampled on
/// each minute boundary), and a signal traded, with ten strategies holding positions on every
/// symbol. Best of three passes each.
fn ledger_cost(events: &[MarketEvent]) {
    use sigcast::ledger::Ledger;
    use sigcast::strategy::Side;
    let priced: Vec<(Market, &str, i64, f64)> = events
        .iter()
        .filter_map(|e| Some((e.market, e.symbol.as_str(), e.exchange_time_ms, e.price()?)))
        .collect();
    let symbols: BTreeSet<(Market, &str)> = priced.iter().map(|p| (p.0, p.1)).collect();
    let strategies: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let opened = |ledger: &mut Ledger| {
        for (i, (market, symbol, time, price)) in priced.iter().take(1_000).enumerate() {
            ledger.mark(*market, symbol, *time, *price);
            for s in &strategies {
                ledger.signal(s, symbol, Side::Buy, *price, i as u64, *time);
            }
        }
    };
    // Plain marks (a backtest), then marks that also hand back checkpoints (the live hub).
    let (mut mark, mut checked) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let mut ledger = Ledger::new(Default::default());
        opened(&mut ledger);
        let started = Instant::now();
        for (market, symbol, time, price) in &priced {
            ledger.mark(*market, std::hint::black_box(symbol), *time, *price);
        }
        mark = mark.min(started.elapsed().as_secs_f64() / priced.len() as f64);
        let mut ledger = Ledger::new(Default::default());
        opened(&mut ledger);
        let mut kept = 0usize;
        let started = Instant::now();
        for (market, symbol, time, price) in &priced {
            kept += usize::from(
                ledger
                    .mark_checked(*market, std::hint::black_box(symbol), *time, *price)
                    .is_some(),
            );
        }
        checked = checked.min(started.elapsed().as_secs_f64() / priced.len() as f64);
        std::hint::black_box(kept);
    }
    let n = 200_000;
    let mut signal = f64::MAX;
    for _ in 0..3 {
        let mut ledger = Ledger::new(Default::default());
        opened(&mut ledger);
        let started = Instant::now();
        for i in 0..n {
            let (_, symbol, time, price) = priced[i % priced.len()];
            let side = if i % 2 == 0 { Side::Sell } else { Side::Buy };
            ledger.signal(&strategies[i % 10], symbol, side, price, i as u64, time);
        }
        signal = signal.min(started.elapsed().as_secs_f64() / n as f64);
    }
    println!();
    println!(
        "ledger, 10 strategies with positions on {} (market, symbol) pairs: {:.1} ns per market price marked ({:.1} ns with checkpoints, as live), {:.1} ns per signal traded",
        symbols.len(),
        mark * 1e9,
        checked * 1e9,
        signal * 1e9
    );
    report_cost(&priced, &strategies);
}

/// What a live `/v1/performance` or `/metrics` scrape costs after a day of uptime: the copy
/// taken under the hub's track-record lock, and the report computed from it outside.
fn report_cost(priced: &[(Market, &str, i64, f64)], strategies: &[String]) {
    use sigcast::ledger::Ledger;
    use sigcast::strategy::Side;
    let mut ledger = Ledger::new(Default::default());
    let start = priced[0].2;
    for minute in 0..1_440i64 {
        for (i, (market, symbol, _, price)) in priced.iter().take(64).enumerate() {
            let time = start + minute * 60_000 + i as i64;
            ledger.mark(*market, symbol, time, *price);
            if minute % 30 == 0 {
                let side = if minute % 60 == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                for s in strategies {
                    ledger.signal(s, symbol, side, *price, minute as u64, time);
                }
            }
        }
    }
    let (mut copy, mut report, mut headlines) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..3 {
        let started = Instant::now();
        let copied = std::hint::black_box(ledger.clone());
        copy = copy.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        std::hint::black_box(copied.report());
        report = report.min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        std::hint::black_box(ledger.headlines());
        headlines = headlines.min(started.elapsed().as_secs_f64());
    }
    println!(
        "ledger after a day of minutes, 10 strategies: {:.2} ms to copy (under the hub's lock), {:.2} ms to report (outside it); {:.3} ms for the headline figures of /metrics (under the lock)",
        copy * 1e3,
        report * 1e3,
        headlines * 1e3
    );
}
