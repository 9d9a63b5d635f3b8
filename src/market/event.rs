//! The normalized market model every source produces and every strategy consumes.

use std::time::SystemTime;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::Interval;

/// Which Binance market an event comes from; their wire formats and limits differ.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Market {
    Spot,
    Futures,
}

impl Market {
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::Futures => "futures",
        }
    }
}

/// One normalized market update.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketEvent {
    pub market: Market,
    /// Exchange symbol, upper case, e.g. `BTCUSDT` (for continuous klines: the pair).
    pub symbol: super::Symbol,
    /// When the exchange produced the event (`E`), Unix milliseconds.
    pub exchange_time_ms: i64,
    /// When sigcast received it.
    pub received_at: SystemTime,
    pub kind: MarketEventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum MarketEventKind {
    /// One executed trade.
    Trade(Trade),
    /// Trades of one taker order at one price, aggregated.
    AggTrade(AggTrade),
    /// A kline (candle) update; `closed` once final.
    Kline(Kline),
    /// Best bid and ask.
    BookTicker(BookTicker),
    /// Rolling 24 h statistics.
    Ticker(Ticker24h),
    /// A diff-depth update.
    Depth(DepthUpdate),
    /// The source reconnected; events may have been missed before it (backfill follows).
    Reconnected,
    /// Data was lost and could not be backfilled: strategies should reset and warm up again.
    Gap(Gap),
}

/// An executed trade.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub id: u64,
    pub price: Decimal,
    pub quantity: Decimal,
    /// Trade time (`T`), Unix milliseconds.
    pub time_ms: i64,
    /// True when the buyer was the maker (the aggressor sold).
    pub buyer_is_maker: bool,
}

/// An aggregate trade: trades `first_trade_id..=last_trade_id` of one taker order at one price.
#[derive(Debug, Clone, PartialEq)]
pub struct AggTrade {
    pub id: u64,
    pub price: Decimal,
    pub quantity: Decimal,
    pub first_trade_id: u64,
    pub last_trade_id: u64,
    pub time_ms: i64,
    pub buyer_is_maker: bool,
}

/// The contract a continuous kline follows (futures only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractType {
    Perpetual,
    CurrentQuarter,
    NextQuarter,
}

/// A kline (candle), as Binance sends it or as sigcast aggregates it from trades.
#[derive(Debug, Clone, PartialEq)]
pub struct Kline {
    pub interval: Interval,
    pub open_time_ms: i64,
    /// The last millisecond of the kline (Binance's `T`).
    pub close_time_ms: i64,
    /// First and last trade id; Binance sends -1 for a kline with no trades.
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// Base-asset volume.
    pub volume: Decimal,
    pub quote_volume: Decimal,
    pub trades: u64,
    pub taker_buy_volume: Decimal,
    pub taker_buy_quote_volume: Decimal,
    /// True once the kline is final.
    pub closed: bool,
    /// `Some` for a continuous kline.
    pub contract: Option<ContractType>,
}

/// Best bid and ask.
#[derive(Debug, Clone, PartialEq)]
pub struct BookTicker {
    pub update_id: u64,
    pub bid_price: Decimal,
    pub bid_quantity: Decimal,
    pub ask_price: Decimal,
    pub ask_quantity: Decimal,
}

/// Rolling 24 h statistics of a symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticker24h {
    pub price_change: Decimal,
    pub price_change_percent: Decimal,
    pub weighted_average: Decimal,
    pub last_price: Decimal,
    pub last_quantity: Decimal,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub volume: Decimal,
    pub quote_volume: Decimal,
    pub open_time_ms: i64,
    pub close_time_ms: i64,
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    pub trades: u64,
}

/// One price level: price and quantity (a quantity of zero removes the level).
pub type Level = (Decimal, Decimal);

/// A diff-depth update.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthUpdate {
    /// `U`: first update id in the event.
    pub first_update_id: u64,
    /// `u`: final update id in the event.
    pub final_update_id: u64,
    /// `pu` (futures only): the previous event's final update id.
    pub previous_final_update_id: Option<u64>,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// What was lost, by the ids that bound it.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// The stream kind that lost data, e.g. `aggTrade`.
    pub stream: &'static str,
    /// Last id seen before the gap.
    pub after_id: u64,
    /// First id seen after the gap.
    pub resumed_at: u64,
}

impl MarketEvent {
    /// When it happened in the market: a trade's own time, otherwise the exchange's event
    /// time. Backtests and the live track record mark prices at it.
    pub fn market_time_ms(&self) -> i64 {
        match &self.kind {
            MarketEventKind::Trade(t) => t.time_ms,
            MarketEventKind::AggTrade(t) => t.time_ms,
            _ => self.exchange_time_ms,
        }
    }

    /// The traded or closing price, for events that have one, as `f64` for indicators.
    pub fn price(&self) -> Option<f64> {
        match &self.kind {
            MarketEventKind::Trade(t) => t.price.to_f64(),
            MarketEventKind::AggTrade(t) => t.price.to_f64(),
            MarketEventKind::Kline(k) => k.close.to_f64(),
            MarketEventKind::Ticker(t) => t.last_price.to_f64(),
            _ => None,
        }
    }
}
