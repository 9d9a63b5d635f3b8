//! The plugin protocol: one JSON object per line each way.
//!
//! sigcast → plugin (stdin), in event order:
//! - `{"type":"hello","protocol":1,"name":"…","market":"spot","symbol":"BTCUSDT","interval":"1m","settings":{…}}` first;
//! - `{"type":"candle","symbol":…,"interval":"1m","open_time":ms,"close_time":ms,"open":…,"high":…,"low":…,"close":…,"volume":…,"history":false}`
//!   for each closed candle (`history: true` for warm-up history, which must not lead to a signal);
//! - `{"type":"trade","symbol":…,"id":…,"time":ms,"price":…,"qty":…,"buyer_maker":false}` with `trades = true`;
//! - `{"type":"book","symbol":…,"time":ms,"bid":…,"bid_qty":…,"ask":…,"ask_qty":…}` with `book = true`;
//! - `{"type":"gap","symbol":…}` (data was lost: start over) and `{"type":"reconnected","symbol":…}`.
//!
//! plugin → sigcast (stdout): `{"type":"buy","price":75000.0,"reason":"…"}` or `"sell"`, with
//! optional `timestamp` (Unix seconds; default: the latest event's) and `symbol` (must be the
//! instance's). Blank lines are ignored; anything else is garbage and restarts the plugin.
//! Diagnostics go to stderr, which sigcast logs.

use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use serde_json::json;

use crate::market::{Kline, MarketEvent, MarketEventKind};
use crate::strategy::Side;
use crate::strategy::common::Common;

/// The protocol version in `hello`.
pub const VERSION: u32 = 1;

pub fn hello(common: &Common, settings: &toml::Table) -> String {
    json!({
        "type": "hello",
        "protocol": VERSION,
        "name": common.name,
        "market": common.market.as_str(),
        "symbol": common.symbol,
        "interval": common.interval.as_str(),
        "settings": settings,
    })
    .to_string()
}

fn f(d: &rust_decimal::Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

pub fn candle(symbol: &str, k: &Kline, history: bool) -> String {
    json!({
        "type": "candle",
        "symbol": symbol,
        "interval": k.interval.as_str(),
        "open_time": k.open_time_ms,
        "close_time": k.close_time_ms,
        "open": f(&k.open),
        "high": f(&k.high),
        "low": f(&k.low),
        "close": f(&k.close),
        "volume": f(&k.volume),
        "history": history,
    })
    .to_string()
}

pub fn trade(e: &MarketEvent) -> Option<String> {
    // `id`: the aggTrade id (`a`) or trade id (`t`), so a plugin can tell trades apart.
    let (id, time, price, qty, maker) = match &e.kind {
        MarketEventKind::AggTrade(t) => (t.id, t.time_ms, t.price, t.quantity, t.buyer_is_maker),
        MarketEventKind::Trade(t) => (t.id, t.time_ms, t.price, t.quantity, t.buyer_is_maker),
        _ => return None,
    };
    Some(
        json!({"type": "trade", "symbol": e.symbol, "id": id, "time": time, "price": f(&price), "qty": f(&qty), "buyer_maker": maker})
            .to_string(),
    )
}

pub fn book(e: &MarketEvent) -> Option<String> {
    let MarketEventKind::BookTicker(b) = &e.kind else {
        return None;
    };
    Some(
        json!({"type": "book", "symbol": e.symbol, "time": e.exchange_time_ms, "bid": f(&b.bid_price),
               "bid_qty": f(&b.bid_quantity), "ask": f(&b.ask_price), "ask_qty": f(&b.ask_quantity)})
        .to_string(),
    )
}

pub fn marker(kind: &str, symbol: &str) -> Option<String> {
    Some(json!({"type": kind, "symbol": symbol}).to_string())
}

/// A signal as a plugin wrote it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSignal {
    pub side: Side,
    pub price: f64,
    /// Unix seconds, when the plugin gave one.
    pub timestamp: Option<i64>,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    price: f64,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Reads one stdout line: `Ok(None)` for a blank line, an error saying what is wrong otherwise.
pub fn parse_signal(line: &str, symbol: &str) -> Result<Option<PluginSignal>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let wire: Wire = serde_json::from_str(line).map_err(|e| format!("not a signal object: {e}"))?;
    let side = match wire.kind.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(format!("type {other:?}: expected buy or sell")),
    };
    if !(wire.price.is_finite() && wire.price > 0.0) {
        return Err(format!("price {}: must be a positive number", wire.price));
    }
    if let Some(s) = wire.symbol.filter(|s| s != symbol) {
        return Err(format!(
            "symbol {s:?}: this plugin instance trades {symbol}"
        ));
    }
    if wire
        .timestamp
        .is_some_and(|t| !(0..=32_503_680_000).contains(&t))
    {
        return Err("timestamp: expected Unix seconds".into());
    }
    let mut reason = wire.reason.unwrap_or_else(|| "plugin signal".into());
    reason.truncate(200);
    Ok(Some(PluginSignal {
        side,
        price: wire.price,
        timestamp: wire.timestamp,
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked() {
        let ok = parse_signal(
            r#"{"type":"sell","price":2.5,"timestamp":1720000000,"reason":"r"}"#,
            "BTCUSDT",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.side, Side::Sell);
        assert_eq!(ok.timestamp, Some(1_720_000_000));
        assert_eq!(parse_signal("  ", "BTCUSDT"), Ok(None));
        for (bad, why) in [
            ("hello", "not a signal object"),
            (r#"{"type":"hold","price":1}"#, "expected buy or sell"),
            (r#"{"type":"buy","price":-1}"#, "positive"),
            (
                r#"{"type":"buy","price":1,"symbol":"ETHUSDT"}"#,
                "trades BTCUSDT",
            ),
            (
                r#"{"type":"buy","price":1,"timestamp":1720000000000}"#,
                "Unix seconds",
            ),
            (r#"{"type":"buy","price":1,"extra":1}"#, "unknown field"),
        ] {
            let err = parse_signal(bad, "BTCUSDT").unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
