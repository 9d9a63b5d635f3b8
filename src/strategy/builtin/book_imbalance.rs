//! Order-book imbalance: at each interval's end, buy when the bid side outweighs the ask side
//! by more than `threshold`, sell when the ask side outweighs the bid. Imbalance is
//! `(bid qty - ask qty) / (bid qty + ask qty)`, from -1 to 1, taken either from bookTicker (best
//! bid and ask) or from the diff-depth stream over the top `levels` of each side.
//!
//! With `source = "depth"` the book is built from the diff updates themselves (each carries
//! absolute quantities per price level). Levels appear as they change, which near the top of
//! the book is within moments; still, the interval in which the book started (at start or
//! after a gap) and the next one are never judged.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

use crate::market::{Level, MarketEvent, MarketEventKind};
use crate::strategy::common::Common;
use crate::strategy::{Side, Signal, Strategy};

/// Where the book comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookSource {
    /// `<symbol>@bookTicker`: best bid and ask.
    #[default]
    BookTicker,
    /// `<symbol>@depth@100ms`: the top `levels` of each side.
    Depth,
}

/// `[strategy.params]` of `kind = "book_imbalance"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookImbalanceParams {
    /// Imbalance beyond which a signal fires, 0 to 1.
    pub threshold: f64,
    pub source: BookSource,
    /// Price levels per side summed with `source = "depth"`.
    pub levels: usize,
}

impl Default for BookImbalanceParams {
    fn default() -> Self {
        Self {
            threshold: 0.6,
            source: BookSource::BookTicker,
            levels: 10,
        }
    }
}

/// A book kept from diff-depth updates.
#[derive(Debug, Default)]
struct Book {
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
    /// The interval of the first update since (re)start: it and the next are not judged.
    first_bucket: Option<i64>,
}

impl Book {
    fn apply(side: &mut BTreeMap<Decimal, Decimal>, levels: &[Level]) {
        for (price, qty) in levels {
            if qty.is_zero() {
                side.remove(price);
            } else {
                side.insert(*price, *qty);
            }
        }
    }

    /// Imbalance over the top `levels` and the mid price.
    fn imbalance(&self, levels: usize) -> Option<(f64, f64)> {
        // Saturating: two of the largest quantities upstream could send overflow a plain sum.
        let sum = |a: Decimal, q: &Decimal| a.saturating_add(*q);
        let bid = self
            .bids
            .values()
            .rev()
            .take(levels)
            .fold(Decimal::ZERO, sum);
        let ask = self.asks.values().take(levels).fold(Decimal::ZERO, sum);
        let best_bid = self.bids.keys().next_back()?.to_f64()?;
        let best_ask = self.asks.keys().next()?.to_f64()?;
        let (bid, ask) = (bid.to_f64()?, ask.to_f64()?);
        (bid + ask > 0.0).then(|| ((bid - ask) / (bid + ask), (best_bid + best_ask) / 2.0))
    }
}

/// The imbalance strategy for one symbol.
pub struct BookImbalance {
    common: Common,
    params: BookImbalanceParams,
    interval_ms: i64,
    book: Book,
    /// The interval the latest book belongs to, and its imbalance and mid price.
    latest: Option<(i64, f64, f64)>,
}

impl BookImbalance {
    pub fn new(common: Common, params: BookImbalanceParams) -> Result<Self, String> {
        if !(params.threshold > 0.0 && params.threshold < 1.0) {
            return Err("params.threshold: must be between 0 and 1".into());
        }
        if params.levels == 0 || params.levels > 1000 {
            return Err("params.levels: must be 1 to 1000".into());
        }
        let interval_ms = common
            .interval
            .fixed_millis()
            .ok_or("interval: use 1s to 1d")?;
        Ok(Self {
            common,
            params,
            interval_ms,
            book: Book::default(),
            latest: None,
        })
    }

    /// The imbalance and mid price this event shows, if it is a book event of our source.
    fn observe(&mut self, event: &MarketEvent, bucket: i64) -> Option<(f64, f64)> {
        match (&event.kind, self.params.source) {
            (MarketEventKind::BookTicker(b), BookSource::BookTicker) => {
                let (bq, aq) = (b.bid_quantity.to_f64()?, b.ask_quantity.to_f64()?);
                let (bp, ap) = (b.bid_price.to_f64()?, b.ask_price.to_f64()?);
                (bq + aq > 0.0).then(|| ((bq - aq) / (bq + aq), (bp + ap) / 2.0))
            }
            (MarketEventKind::Depth(d), BookSource::Depth) => {
                Book::apply(&mut self.book.bids, &d.bids);
                Book::apply(&mut self.book.asks, &d.asks);
                self.book.first_bucket.get_or_insert(bucket);
                self.book.imbalance(self.params.levels)
            }
            _ => None,
        }
    }
}

impl Strategy for BookImbalance {
    fn common(&self) -> &Common {
        &self.common
    }

    fn streams(&self) -> Vec<String> {
        let symbol = self.common.symbol.to_lowercase();
        match self.params.source {
            BookSource::BookTicker => vec![format!("{symbol}@bookTicker")],
            BookSource::Depth => vec![format!("{symbol}@depth@100ms")],
        }
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let bucket = event.exchange_time_ms.div_euclid(self.interval_ms);
        let Some((imbalance_now, mid_now)) = self.observe(event, bucket) else {
            return;
        };
        // A book in a later interval closes the previous one: judge its last book.
        if let Some((last_bucket, imbalance, mid)) = self.latest {
            let partial = self
                .book
                .first_bucket
                .is_some_and(|first| last_bucket <= first + 1);
            if bucket > last_bucket && !partial {
                let end_ms = (last_bucket + 1).saturating_mul(self.interval_ms);
                let threshold = self.params.threshold;
                let side = if imbalance > threshold {
                    Some(Side::Buy)
                } else if imbalance < -threshold {
                    Some(Side::Sell)
                } else {
                    None
                };
                if let Some(side) = side {
                    let what = match self.params.source {
                        BookSource::BookTicker => "book".to_string(),
                        BookSource::Depth => format!("top-{} depth", self.params.levels),
                    };
                    let reason = format!("{what} imbalance {imbalance:+.2} beyond ±{threshold}");
                    out.extend(self.common.signal(side, mid, end_ms, reason));
                }
            }
        }
        self.latest = Some((bucket, imbalance_now, mid_now));
    }

    fn on_gap(&mut self) {
        self.latest = None;
        self.book = Book::default();
        self.common.cooldown.reset();
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
        let params = BookImbalanceParams {
            threshold: 0.5,
            ..Default::default()
        };
        let mut s = BookImbalance::new(common, params).unwrap();
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

    /// Two of the largest quantities a decimal holds overflowed the plain sum, a panic.
    #[test]
    fn the_largest_quantities_saturate_the_sum() {
        let mut book = Book::default();
        let max = Decimal::MAX;
        Book::apply(&mut book.bids, &[(Decimal::ONE, max), (Decimal::TWO, max)]);
        Book::apply(&mut book.asks, &[(Decimal::TEN, Decimal::ONE)]);
        let (imbalance, mid) = book.imbalance(2).unwrap();
        assert!(imbalance > 0.99, "{imbalance}");
        assert_eq!(mid, 6.0);
    }

    fn depth(t_ms: i64, bids: &[(i64, i64)], asks: &[(i64, i64)]) -> MarketEvent {
        let levels = |l: &[(i64, i64)]| -> Vec<Level> {
            l.iter()
                .map(|(p, q)| (Decimal::from(*p), Decimal::from(*q)))
                .collect()
        };
        MarketEvent {
            market: Market::Futures,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: t_ms,
            received_at: SystemTime::UNIX_EPOCH,
            kind: MarketEventKind::Depth(crate::market::DepthUpdate {
                first_update_id: t_ms as u64,
                final_update_id: t_ms as u64,
                previous_final_update_id: None,
                bids: levels(bids),
                asks: levels(asks),
            }),
        }
    }

    #[test]
    fn depth_book_sums_the_top_levels_and_skips_its_first_intervals() {
        let common = Common::new("d", Market::Futures, "BTCUSDT", Interval::S1, 0);
        let params = BookImbalanceParams {
            threshold: 0.5,
            source: BookSource::Depth,
            levels: 2,
        };
        let mut s = BookImbalance::new(common, params).unwrap();
        assert_eq!(s.streams(), vec!["btcusdt@depth@100ms".to_string()]);
        let mut out = Vec::new();
        for e in [
            // Seconds 0 and 1 are the book's first: bid-heavy but not judged.
            depth(0, &[(99, 9), (98, 9)], &[(101, 1), (102, 1)]),
            depth(1_500, &[], &[]),
            // Second 2: the third bid level (97) is outside the top 2; still bid-heavy.
            depth(2_100, &[(97, 100)], &[]),
            // Second 3: bids at 99 removed, asks grow: top-2 bids 9 + 100 vs asks 200 + 200.
            depth(3_100, &[(99, 0)], &[(101, 200), (102, 200)]),
            depth(4_000, &[], &[]),
        ] {
            s.on_event(&e, &mut out);
        }
        let got: Vec<(Side, i64)> = out.iter().map(|s| (s.side, s.timestamp)).collect();
        assert_eq!(got, vec![(Side::Buy, 3), (Side::Sell, 4)]);
        assert_eq!(out[1].reason, "top-2 depth imbalance -0.57 beyond ±0.5");
    }
}
