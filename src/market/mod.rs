//! Market data: typed [`MarketEvent`]s and the sources that produce them.
//!
//! Every event carries the exchange's event time and the local receive time, so downstream
//! code can measure lag and strategies can stay on exchange time alone.

pub mod synthetic;

use std::time::SystemTime;

/// One normalized market update.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketEvent {
    /// Exchange symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// When the exchange produced the event, Unix milliseconds.
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
    /// The source lost data (a reconnect or a gap); strategies should reset their state.
    Gap,
}

/// An executed trade.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub id: u64,
    pub price: f64,
    pub quantity: f64,
    /// True when the buyer was the maker (the aggressor sold).
    pub buyer_is_maker: bool,
}

impl MarketEvent {
    /// The traded price, for events that have one.
    pub fn price(&self) -> Option<f64> {
        match &self.kind {
            MarketEventKind::Trade(t) => Some(t.price),
            MarketEventKind::Gap => None,
        }
    }
}
