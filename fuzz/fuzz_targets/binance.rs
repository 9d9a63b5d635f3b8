//! One message from a Binance stream (spot or USD-M futures), as the upstream delivers it,
//! then what sigcast does next with a parsed event: the sequencer's gap check and the kline
//! builder's arithmetic (each twice, so the second pass continues what the first began).
//! Seeded with the recorded traffic in ../shared/data/binance (scripts/fuzz).
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sigcast::market::binance::live::sequence::Sequencer;
use sigcast::market::kline::KlineBuilder;
use sigcast::market::{Interval, Market, MarketEventKind, binance};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for market in [Market::Spot, Market::Futures] {
        let Ok(binance::Parsed::Event(event)) =
            binance::parse(market, text, SystemTime::UNIX_EPOCH)
        else {
            continue;
        };
        let mut sequencer = Sequencer::default();
        let mut klines = KlineBuilder::new(Interval::M1).expect("1m klines are buildable");
        for _ in 0..2 {
            let _ = sequencer.admit(&event);
            match &event.kind {
                MarketEventKind::Trade(t) => _ = klines.push_trade(t),
                MarketEventKind::AggTrade(t) => _ = klines.push_agg(t),
                _ => {}
            }
        }
        let _ = sequencer.agg_trade_resume_points();
    }
});
