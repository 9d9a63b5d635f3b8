//! Strategies: deterministic, synchronous logic that turns [`MarketEvent`]s into [`Signal`]s.
//!
//! A strategy never touches the network or the clock: the same events give the same signals,
//! live or replayed. The [`Engine`] routes each event only to the instances that trade its symbol.

pub mod bollinger;
pub mod book_imbalance;
pub mod common;
pub mod definition;
pub mod donchian;
pub mod gate;
pub mod indicators;
pub mod ma_cross;
pub mod macd;
pub mod rsi;
#[cfg(test)]
mod testing;

use std::collections::HashMap;

use crate::market::{Market, MarketEvent, MarketEventKind};

/// Which way a signal points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// The contract's `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A trading signal, before it is numbered and serialized by the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub side: Side,
    pub symbol: String,
    pub price: f64,
    /// Unix seconds of the market moment the signal is about (exchange time).
    pub timestamp: i64,
    /// The strategy instance that emitted it.
    pub strategy: String,
    /// The candle interval it was computed on, e.g. `1s`.
    pub interval: String,
    /// A short human explanation.
    pub reason: String,
}

/// One strategy instance for one symbol.
pub trait Strategy: Send {
    /// Who the instance is (name, market, symbol, interval) and its signal gate.
    fn common(&self) -> &common::Common;
    /// The instance name, carried in each signal.
    fn name(&self) -> &str {
        &self.common().name
    }
    /// The market this instance trades on.
    fn market(&self) -> Market {
        self.common().market
    }
    /// The symbol this instance trades.
    fn symbol(&self) -> &str {
        &self.common().symbol
    }
    /// The upstream streams it needs; candle strategies need the symbol's aggTrades.
    /// Operators declare strategies, and the subscriptions follow from them.
    fn streams(&self) -> Vec<String> {
        vec![self.common().trade_stream()]
    }
    /// Feeds one event; pushes any signals it causes onto `out`.
    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>);
    /// The source lost data it could not backfill: drop indicator state and warm up again.
    fn on_gap(&mut self);
    /// The source reconnected; missed trades are backfilled before new ones, so by default
    /// nothing needs resetting.
    fn on_reconnect(&mut self) {}
}

/// Runs many strategy instances, dispatching events by market and symbol.
#[derive(Default)]
pub struct Engine {
    instances: Vec<Box<dyn Strategy>>,
    /// Per market (spot, futures): symbol -> indices into `instances`, so an event touches
    /// only the instances that need it (and looking it up allocates nothing).
    by_symbol: [HashMap<String, Vec<usize>>; 2],
}

impl Engine {
    pub fn new(instances: Vec<Box<dyn Strategy>>) -> Self {
        let mut by_symbol: [HashMap<String, Vec<usize>>; 2] = Default::default();
        for (i, s) in instances.iter().enumerate() {
            by_symbol[s.market() as usize]
                .entry(s.symbol().to_string())
                .or_default()
                .push(i);
        }
        Self {
            instances,
            by_symbol,
        }
    }

    /// Every upstream stream some instance needs, once each, sorted.
    pub fn streams(&self) -> Vec<(Market, String)> {
        let mut all: Vec<(Market, String)> = self
            .instances
            .iter()
            .flat_map(|s| s.streams().into_iter().map(move |st| (s.market(), st)))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Feeds one event to the instances of its symbol; returns the signals in order.
    pub fn on_event(&mut self, event: &MarketEvent) -> Vec<Signal> {
        let mut out = Vec::new();
        if let Some(indices) = self.by_symbol[event.market as usize].get(&event.symbol) {
            for &i in indices {
                let instance = &mut self.instances[i];
                match event.kind {
                    MarketEventKind::Gap(_) => instance.on_gap(),
                    MarketEventKind::Reconnected => instance.on_reconnect(),
                    _ => instance.on_event(event, &mut out),
                }
            }
        }
        out
    }
}
