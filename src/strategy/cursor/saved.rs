//! Positions and their open candles as JSON: the cluster's bucket holds positions so, and
//! the SQLite table its candles. Decimals are kept as their exact text.

use serde::{Deserialize, Serialize};

use super::Position;
use crate::market::{Kline, Market};

/// A position as stored elsewhere than SQLite (a cluster's bucket).
#[derive(Serialize, Deserialize)]
struct SavedPosition {
    market: String,
    symbol: String,
    agg_id: u64,
    last_trade_id: u64,
    time_ms: i64,
    saved_at_ms: i64,
    open: Vec<SavedKline>,
}

/// A position as JSON, candles and all.
pub fn to_json(p: &Position) -> String {
    serde_json::to_string(&SavedPosition {
        market: p.market.as_str().into(),
        symbol: p.symbol.clone(),
        agg_id: p.agg_id,
        last_trade_id: p.last_trade_id,
        time_ms: p.time_ms,
        saved_at_ms: p.saved_at_ms,
        open: p.open.iter().map(SavedKline::from).collect(),
    })
    .unwrap_or_default()
}

/// A position from [`to_json`]'s text; `None` for one this version cannot read.
pub fn from_json(text: &[u8]) -> Option<Position> {
    let s: SavedPosition = serde_json::from_slice(text).ok()?;
    Some(Position {
        market: market(&s.market)?,
        symbol: s.symbol,
        agg_id: s.agg_id,
        last_trade_id: s.last_trade_id,
        time_ms: s.time_ms,
        saved_at_ms: s.saved_at_ms,
        open: s
            .open
            .into_iter()
            .filter_map(SavedKline::into_kline)
            .collect(),
    })
}

pub(super) fn market(name: &str) -> Option<Market> {
    [Market::Spot, Market::Futures]
        .into_iter()
        .find(|m| m.as_str() == name)
}

/// A candle as stored: decimals as their exact text.
#[derive(Serialize, Deserialize)]
pub(super) struct SavedKline {
    interval: String,
    open_time_ms: i64,
    close_time_ms: i64,
    first_trade_id: i64,
    last_trade_id: i64,
    open: String,
    high: String,
    low: String,
    close: String,
    volume: String,
    quote_volume: String,
    trades: u64,
    taker_buy_volume: String,
    taker_buy_quote_volume: String,
}

impl From<&Kline> for SavedKline {
    fn from(k: &Kline) -> Self {
        SavedKline {
            interval: k.interval.as_str().into(),
            open_time_ms: k.open_time_ms,
            close_time_ms: k.close_time_ms,
            first_trade_id: k.first_trade_id,
            last_trade_id: k.last_trade_id,
            open: k.open.to_string(),
            high: k.high.to_string(),
            low: k.low.to_string(),
            close: k.close.to_string(),
            volume: k.volume.to_string(),
            quote_volume: k.quote_volume.to_string(),
            trades: k.trades,
            taker_buy_volume: k.taker_buy_volume.to_string(),
            taker_buy_quote_volume: k.taker_buy_quote_volume.to_string(),
        }
    }
}

impl SavedKline {
    pub(super) fn into_kline(self) -> Option<Kline> {
        let d = |s: &str| s.parse().ok();
        Some(Kline {
            interval: self.interval.parse().ok()?,
            open_time_ms: self.open_time_ms,
            close_time_ms: self.close_time_ms,
            first_trade_id: self.first_trade_id,
            last_trade_id: self.last_trade_id,
            open: d(&self.open)?,
            high: d(&self.high)?,
            low: d(&self.low)?,
            close: d(&self.close)?,
            volume: d(&self.volume)?,
            quote_volume: d(&self.quote_volume)?,
            trades: self.trades,
            taker_buy_volume: d(&self.taker_buy_volume)?,
            taker_buy_quote_volume: d(&self.taker_buy_quote_volume)?,
            closed: false,
            contract: None,
        })
    }
}
