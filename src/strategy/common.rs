//! What every built-in strategy instance shares: who it is, its candles (built from trades
//! with the exact [`KlineBuilder`]) and its signal gate.

use rust_decimal::prelude::ToPrimitive;

use super::gate::Gate;
use super::{Side, Signal};
use crate::market::kline::{KlineBuilder, UnsupportedInterval};
use crate::market::{Interval, Kline, Market, MarketEvent, MarketEventKind};

/// Identity and gating of one strategy instance.
#[derive(Debug, Clone)]
pub struct Common {
    pub name: String,
    pub market: Market,
    pub symbol: String,
    pub interval: Interval,
    pub gate: Gate,
}

impl Common {
    pub fn new(
        name: &str,
        market: Market,
        symbol: &str,
        interval: Interval,
        cooldown_ms: i64,
    ) -> Self {
        Self {
            name: name.to_string(),
            market,
            symbol: symbol.to_string(),
            interval,
            gate: Gate::new(cooldown_ms),
        }
    }

    /// The `aggTrade` stream candle-driven strategies need.
    pub fn trade_stream(&self) -> String {
        format!("{}@aggTrade", self.symbol.to_lowercase())
    }

    /// A signal at `price` for the moment `end_ms`, if the gate lets it through.
    pub fn signal(
        &mut self,
        side: Side,
        price: f64,
        end_ms: i64,
        reason: String,
    ) -> Option<Signal> {
        self.gate.allow(side, end_ms).then(|| Signal {
            side,
            symbol: self.symbol.clone(),
            price,
            timestamp: end_ms.div_euclid(1000),
            strategy: self.name.clone(),
            interval: self.interval.as_str().to_string(),
            reason,
        })
    }

    /// A signal on a closed candle: its close price at its end.
    pub fn on_candle(&mut self, side: Side, candle: &Candle, reason: String) -> Option<Signal> {
        self.signal(side, candle.close, candle.end_ms, reason)
    }
}

/// A closed candle, in `f64` for indicators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// The first millisecond after the candle (its signals carry this time).
    pub end_ms: i64,
}

/// Turns trades into closed candles; signals fire only on closed candles.
#[derive(Debug, Clone)]
pub struct Candles(KlineBuilder);

impl Candles {
    pub fn new(interval: Interval) -> Result<Self, UnsupportedInterval> {
        Ok(Self(KlineBuilder::new(interval)?))
    }

    /// The candle this event closed, if it did.
    pub fn closed(&mut self, event: &MarketEvent) -> Option<Candle> {
        let kline = match &event.kind {
            MarketEventKind::Trade(t) => self.0.push_trade(t),
            MarketEventKind::AggTrade(t) => self.0.push_agg(t),
            _ => None,
        }?;
        to_candle(&kline)
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }
}

fn to_candle(k: &Kline) -> Option<Candle> {
    Some(Candle {
        high: k.high.to_f64()?,
        low: k.low.to_f64()?,
        close: k.close.to_f64()?,
        end_ms: k.close_time_ms + 1,
    })
}
