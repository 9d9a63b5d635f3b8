//! Helpers for strategy unit tests: one trade per second makes one candle per second.

use std::time::SystemTime;

use super::common::{CandleLogic, Common, OnCandles};
use super::{Signal, Strategy};
use crate::market::{Decimal, Interval, Market, MarketEvent, MarketEventKind, Trade};

/// One trade per second at each price; a trade at second `i` closes the candle of `i - 1`.
pub fn closes(prices: &[f64]) -> Vec<MarketEvent> {
    closes_from(0, prices)
}

/// As [`closes`], the first trade at second `start`.
pub fn closes_from(start: usize, prices: &[f64]) -> Vec<MarketEvent> {
    prices
        .iter()
        .enumerate()
        .map(|(i, p)| (i + start, p))
        .map(|(i, p)| MarketEvent {
            market: Market::Spot,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: i as i64 * 1000,
            received_at: SystemTime::UNIX_EPOCH,
            kind: MarketEventKind::Trade(Trade {
                id: i as u64,
                price: Decimal::try_from(*p).unwrap(),
                quantity: Decimal::ONE,
                time_ms: i as i64 * 1000,
                buyer_is_maker: false,
            }),
        })
        .collect()
}

/// Feeds `events` and returns every signal.
pub fn run(strategy: &mut dyn Strategy, events: &[MarketEvent]) -> Vec<Signal> {
    let mut out = Vec::new();
    for e in events {
        strategy.on_event(e, &mut out);
    }
    out
}

/// `logic` as a 1s BTCUSDT spot instance without cooldown.
pub fn on_candles<L: CandleLogic>(logic: L) -> OnCandles<L> {
    OnCandles::new(
        Common::new("t", Market::Spot, "BTCUSDT", Interval::S1, 0),
        logic,
    )
    .unwrap()
}
