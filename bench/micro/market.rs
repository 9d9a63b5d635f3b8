//! Market benchmark: parse-and-normalize throughput over the real Binance recordings, per
//! message kind, in messages per second on one core; and the latency the pipeline adds from
//! a message's receipt to the strategy engine, p50 and p99.
//!
//! Run: `cargo bench --bench market` (reads `../shared/data/binance/` at run time).
//! Targets: at least 1 M messages/s/core for trades and aggTrades.

mod common;

use common::recordings;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sigcast::hub::Hub;
use sigcast::market::binance::{Parsed, StreamKind, parse};
use sigcast::market::recording::RecordingReader;
use sigcast::market::{Market, MarketEvent};
use sigcast::strategy::{Engine, definition};

fn kind_name(text: &str) -> &'static str {
    let stream = text
        .split("\"stream\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("");
    match StreamKind::of(stream) {
        Some(StreamKind::Trade) => "trade",
        Some(StreamKind::AggTrade) => "aggTrade",
        Some(StreamKind::Kline(_) | StreamKind::ContinuousKline(_)) => "kline",
        Some(StreamKind::BookTicker) => "bookTicker",
        Some(StreamKind::Ticker) => "ticker",
        Some(StreamKind::Depth) => "depth",
        None => "other",
    }
}

fn main() {
    // Every recorded message, in memory, grouped by kind.
    let mut by_kind: BTreeMap<&'static str, Vec<(Market, String)>> = BTreeMap::new();
    for file in recordings() {
        for r in RecordingReader::open(&file).unwrap() {
            let r = r.unwrap();
            by_kind
                .entry(kind_name(&r.text))
                .or_default()
                .push((r.market, r.text));
        }
    }
    by_kind.remove("other");

    println!(
        "parse + normalize, one core (messages/s; target >= 1,000,000 for trade and aggTrade)"
    );
    println!(
        "{:<12} {:>9} {:>10} {:>14} {:>10}",
        "kind", "messages", "avg bytes", "messages/s", "ns/msg"
    );
    let now = SystemTime::now();
    for (kind, msgs) in &by_kind {
        let bytes: usize = msgs.iter().map(|(_, t)| t.len()).sum();
        // Repeat small sets so every kind runs for at least ~0.5 s.
        let rounds = (2_000_000 / msgs.len()).clamp(1, 20_000);
        let mut parsed = 0usize;
        let started = Instant::now();
        for _ in 0..rounds {
            for (market, text) in msgs {
                if let Ok(Parsed::Event(e)) = parse(*market, std::hint::black_box(text), now) {
                    parsed += 1;
                    std::hint::black_box(e);
                }
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(parsed, rounds * msgs.len(), "every {kind} message parses");
        let per_sec = parsed as f64 / elapsed.as_secs_f64();
        println!(
            "{:<12} {:>9} {:>10} {:>14.0} {:>10.0}",
            kind,
            msgs.len(),
            bytes / msgs.len(),
            per_sec,
            1e9 / per_sec
        );
    }

    latency(&by_kind["trade"]);
}

/// Feeds trades at a steady rate through the same path live data takes (parse on the
/// receiving thread, a bounded channel, the engine and hub on the runtime) and measures
/// receipt-to-strategy time per event.
fn latency(trades: &[(Market, String)]) {
    const RATE: u64 = 20_000; // messages per second, far above any single Binance stream
    let n = trades.len().min(40_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, MarketEvent)>(4096);
    let hub = Arc::new(Hub::new(vec![], 1024));
    let definitions = r#"
[[strategy]]
name = "bench"
kind = "ma_cross"
symbols = ["BTCUSDT", "ETHUSDT"]
interval = "1s"
[strategy.params]
fast = 5
slow = 20
average = "ema"
"#;
    let instances = definition::from_text(definitions).unwrap();
    let mut engine = Engine::new(instances);
    let consumer = runtime.spawn(async move {
        let mut lat = Vec::with_capacity(n);
        let mut out = Vec::new();
        while let Some((received, event)) = rx.recv().await {
            sigcast::node::pump(&mut engine, &hub, &event, &mut out);
            lat.push(received.elapsed());
        }
        lat
    });
    let trades: Vec<(Market, String)> = trades[..n].to_vec();
    let producer = std::thread::spawn(move || {
        let started = Instant::now();
        for (i, (market, text)) in trades.iter().enumerate() {
            let due = started + Duration::from_nanos(i as u64 * 1_000_000_000 / RATE);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let received = Instant::now();
            if let Ok(Parsed::Event(e)) = parse(*market, text, SystemTime::now()) {
                tx.blocking_send((received, e)).unwrap();
            }
        }
    });
    producer.join().unwrap();
    let mut lat = runtime.block_on(consumer).unwrap();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!();
    println!(
        "upstream-to-strategy latency added by the pipeline ({} trades at {} msg/s): p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        RATE,
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
}
