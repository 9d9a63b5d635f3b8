//! Order-book imbalance from bookTicker: at each interval's end, buy when the best bid
//! quantity outweighs the ask by more than `threshold`, sell when the ask outweighs the bid.
//! Imbalance is `(bid qty - ask qty) / (bid qty + ask qty)`, from -1 to 1.

use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

use super::common::Common;
use super::{Side, Signal, Strategy};
use crate::market::{MarketEvent, MarketEventKind};

/// `[strategy.params]` of `kind = "book_imbalance"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookImbalanceParams {
    /// Imbalance beyond which a signal fires, 0 to 1.
    pub threshold: f64,
}

impl Default for BookImbalanceParams {
    fn default() -> Self {
        Self { threshold: 0.6 }
    }
}

/// The imbalance strategy for one symbol.
pub struct BookImbalance {
    common: Common,
    threshold: f64,
    interval_ms: i64,
    /// The interval the latest book belongs to, and its imbalance and mid price.
    latest: Option<(i64, f64, f64)>,
}

impl BookImbalance {
    pub fn new(common: Common, params: BookImbalanceParams) -> Result<Self, String> {
        if !(params.threshold > 0.0 && params.threshold < 1.0) {
            return Err("params.threshold: must be between 0 and 1".into());
        }
        let interval_ms = common
            .interval
            .fixed_millis()
            .ok_or("interval: use 1s to 1d")?;
        Ok(Self {
            common,
            threshold: params.threshold,
            interval_ms,
            latest: None,
        })
    }
}

impl Strategy for BookImbalance {
    fn common(&self) -> &Common {
        &self.common
    }

    fn streams(&self) -> Vec<String> {
        vec![format!("{}@bookTicker", self.common.symbol.to_lowercase())]
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let MarketEventKind::BookTicker(b) = &event.kind else {
            return;
        };
        let bucket = event.exchange_time_ms.div_euclid(self.interval_ms);
        // A book in a later interval closes the previous one: judge its last book.
        if let Some((last_bucket, imbalance, mid)) = self.latest {
            if bucket > last_bucket {
                let end_ms = (last_bucket + 1) * self.interval_ms;
                let side = if imbalance > self.threshold {
                    Some(Side::Buy)
                } else if imbalance < -self.threshold {
                    Some(Side::Sell)
                } else {
                    None
                };
                if let Some(side) = side {
                    let reason =
                        format!("book imbalance {imbalance:+.2} beyond ±{}", self.threshold);
                    out.extend(self.common.signal(side, mid, end_ms, reason));
                }
            }
        }
        let (Some(bq), Some(aq), Some(bp), Some(ap)) = (
            b.bid_quantity.to_f64(),
            b.ask_quantity.to_f64(),
            b.bid_price.to_f64(),
            b.ask_price.to_f64(),
        ) else {
            return;
        };
        if bq + aq > 0.0 {
            self.latest = Some((bucket, (bq - aq) / (bq + aq), (bp + ap) / 2.0));
        }
    }

    fn on_gap(&mut self) {
        self.latest = None;
        self.common.gate.reset();
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::market::{BookTicker, Decimal, Interval, Market};

    fn book(t_ms: i64, bid_qty: i64, ask_qty: i64) -> MarketEvent {
        MarketEvent {
            market: Market::Futures,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: t_ms,
            received_at: SystemTime::UNIX_EPOCH,
            kind: MarketEventKind::BookTicker(BookTicker {
                update_id: t_ms as u64,
                bid_price: Decimal::from(100),
                bid_quantity: Decimal::from(bid_qty),
                ask_price: Decimal::from(102),
                ask_quantity: Decimal::from(ask_qty),
            }),
        }
    }

    #[test]
    fn judges_the_last_book_of_each_interval() {
        let common = Common::new("i", Market::Futures, "BTCUSDT", Interval::S1, 0);
        let mut s = BookImbalance::new(common, BookImbalanceParams { threshold: 0.5 }).unwrap();
        let mut out = Vec::new();
        for e in [
            book(0, 1, 9),
            book(900, 9, 1),
            book(1_100, 5, 5),
            book(1_900, 1, 9),
            book(2_000, 5, 5),
        ] {
            s.on_event(&e, &mut out);
        }
        let got: Vec<(Side, f64, i64)> =
            out.iter().map(|s| (s.side, s.price, s.timestamp)).collect();
        // Second 0 ended bid-heavy (9 vs 1), second 1 ask-heavy (1 vs 9).
        assert_eq!(got, vec![(Side::Buy, 101.0, 1), (Side::Sell, 101.0, 2)]);
        assert_eq!(s.streams(), vec!["btcusdt@bookTicker".to_string()]);
    }
}
