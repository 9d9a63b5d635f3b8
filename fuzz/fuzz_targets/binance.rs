//! One message from a Binance stream (spot or USD-M futures), as the upstream delivers it.
//! Seeded with the recorded traffic in ../shared/data/binance (scripts/fuzz).
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sigcast::market::Market;
use sigcast::market::binance;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for market in [Market::Spot, Market::Futures] {
        let _ = binance::parse(market, text, SystemTime::UNIX_EPOCH);
    }
});
