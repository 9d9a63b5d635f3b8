//! The latest price of each symbol, and the synthetic `test` signals made from them.

use std::collections::HashMap;

use super::{Frame, Hub, encode};
use crate::strategy::{Side, Signal};

/// Symbols in the order they became known (configured first, then as prices arrive), and
/// the latest traded price of each.
#[derive(Default)]
pub(super) struct Prices {
    pub(super) order: Vec<String>,
    pub(super) last: HashMap<String, f64>,
}

impl Hub {
    /// Records the latest price of a symbol.
    pub fn mark_price(&self, symbol: &str, price: f64) {
        if !price.is_finite() {
            return;
        }
        let mut prices = self.prices.write().unwrap_or_else(|p| p.into_inner());
        match prices.last.get_mut(symbol) {
            Some(p) => *p = price,
            None => {
                prices.last.insert(symbol.to_string(), price);
                if !prices.order.iter().any(|s| s == symbol) {
                    prices.order.push(symbol.to_string());
                }
            }
        }
    }

    /// The latest price of `symbol`, when one is known.
    pub fn price(&self, symbol: &str) -> Option<f64> {
        let prices = self.prices.read().unwrap_or_else(|p| p.into_inner());
        prices.last.get(symbol).copied()
    }

    /// A buy and a sell test signal for the `n`th tracked symbol that `symbol_allowed`
    /// (round robin), at its latest price when known, labelled `strategy`. Sent to one session only,
    /// never through the ring. With no symbol tracked at all yet, an unrestricted client
    /// gets BTCUSDT at 100; `None` when symbols are tracked but none is allowed, or when
    /// the client is restricted and nothing is tracked: a test never shows a symbol out of
    /// scope.
    pub fn test_frames(
        &self,
        n: usize,
        now_unix: i64,
        symbol_allowed: Option<&dyn Fn(&str) -> bool>,
        strategy: &str,
    ) -> Option<[Frame; 2]> {
        let (symbol, price) = {
            let prices = self.prices.read().unwrap_or_else(|p| p.into_inner());
            let allowed: Vec<&String> = prices
                .order
                .iter()
                .filter(|s| symbol_allowed.is_none_or(|allows| allows(s)))
                .collect();
            match allowed.get(n % allowed.len().max(1)) {
                Some(symbol) => (
                    (*symbol).clone(),
                    prices.last.get(*symbol).copied().unwrap_or(100.0),
                ),
                None if symbol_allowed.is_none() => ("BTCUSDT".to_string(), 100.0),
                None => return None,
            }
        };
        Some([Side::Buy, Side::Sell].map(|side| {
            encode(
                &Signal {
                    side,
                    symbol: symbol.as_str().into(),
                    price,
                    timestamp: now_unix,
                    strategy: strategy.into(),
                    interval: String::new(),
                    reason: "synthetic test signal requested by this client".into(),
                },
                true,
            )
        }))
    }
}
