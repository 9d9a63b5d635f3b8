//! sigcast's kline aggregation equals Binance's own kline events, every field to the last
//! digit, on real recordings (`usdm_multi_2021-07-22`, `spot_multi_2021-04-17`).
//!
//! Each kline update names its first and last trade ids, `f` and `L`. An update is checkable
//! when the recording holds the aggTrade that starts at `f` and one that ends exactly at `L`
//! (Binance can emit an update part-way through an aggTrade's group of trades; those cannot be
//! rebuilt). For each checkable update, the aggTrades from `f` to `L` are aggregated and compared.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use sigcast::market::binance::{Parsed, parse};
use sigcast::market::kline::KlineBuilder;
use sigcast::market::recording::RecordingReader;
use sigcast::market::{AggTrade, Kline, MarketEventKind};

fn recording(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/binance")
        .join(name)
}

/// `(checked, skipped)` for one recording; panics on the first field that differs.
fn check(name: &str) -> (usize, usize) {
    let mut aggs: HashMap<String, Vec<AggTrade>> = HashMap::new();
    let mut klines: Vec<(String, Kline)> = Vec::new();
    for recorded in RecordingReader::open(&recording(name)).unwrap() {
        let recorded = recorded.unwrap();
        if let Ok(Parsed::Event(e)) = parse(recorded.market, &recorded.text, SystemTime::now()) {
            match e.kind {
                MarketEventKind::AggTrade(t) => {
                    aggs.entry(e.symbol.to_string()).or_default().push(t)
                }
                MarketEventKind::Kline(k) => klines.push((e.symbol.to_string(), k)),
                _ => {}
            }
        }
    }
    let (mut checked, mut skipped) = (0, 0);
    for (symbol, binance) in &klines {
        let Some(trades) = aggs.get(symbol) else {
            skipped += 1;
            continue;
        };
        let start = trades
            .iter()
            .position(|t| t.first_trade_id as i64 == binance.first_trade_id);
        let end = trades
            .iter()
            .position(|t| t.last_trade_id as i64 == binance.last_trade_id);
        let (Some(start), Some(end)) = (start, end) else {
            skipped += 1;
            continue;
        };
        let mut builder = KlineBuilder::new(binance.interval).unwrap();
        for t in &trades[start..=end] {
            assert!(
                builder.push_agg(t).is_none(),
                "{symbol}: trades {}..{} span two klines",
                binance.first_trade_id,
                binance.last_trade_id
            );
        }
        let ours = builder.current().unwrap();
        let what = format!(
            "{name} {symbol} kline {} f={} L={}",
            binance.open_time_ms, binance.first_trade_id, binance.last_trade_id
        );
        assert_eq!(ours.open_time_ms, binance.open_time_ms, "{what}: open time");
        assert_eq!(
            ours.close_time_ms, binance.close_time_ms,
            "{what}: close time"
        );
        assert_eq!(ours.first_trade_id, binance.first_trade_id, "{what}: f");
        assert_eq!(ours.last_trade_id, binance.last_trade_id, "{what}: L");
        assert_eq!(ours.open, binance.open, "{what}: open");
        assert_eq!(ours.high, binance.high, "{what}: high");
        assert_eq!(ours.low, binance.low, "{what}: low");
        assert_eq!(ours.close, binance.close, "{what}: close");
        assert_eq!(ours.volume, binance.volume, "{what}: volume");
        assert_eq!(
            ours.quote_volume, binance.quote_volume,
            "{what}: quote volume"
        );
        assert_eq!(ours.trades, binance.trades, "{what}: trade count");
        assert_eq!(
            ours.taker_buy_volume, binance.taker_buy_volume,
            "{what}: taker buy volume"
        );
        assert_eq!(
            ours.taker_buy_quote_volume, binance.taker_buy_quote_volume,
            "{what}: taker buy quote volume"
        );
        checked += 1;
    }
    (checked, skipped)
}

#[test]
fn aggregated_klines_equal_binance_klines() {
    let mut total = 0;
    for name in [
        "usdm_multi_2021-07-22.cryptofeed.txt",
        "spot_multi_2021-04-17.cryptofeed.txt",
    ] {
        let (checked, skipped) = check(name);
        eprintln!(
            "{name}: {checked} kline updates equal, field for field; {skipped} not checkable"
        );
        total += checked;
    }
    // About 20 updates qualify in these two recordings; every one must match.
    assert!(total >= 15, "only {total} kline updates could be checked");
}
