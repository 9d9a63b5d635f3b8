//! Per-stream ordering by Binance's ids: duplicates (from an overlapping rotation or a
//! reconnect) are dropped, gaps are found, and the caller is told how to fill them.
//!
//! - aggTrade: `a` must follow the previous `a` by one, and `f` the previous `l`; a gap is
//!   backfilled through REST aggTrades `fromId`.
//! - trade: `t` must follow by one; a gap cannot be backfilled (REST trades by id need an API
//!   key) and becomes a gap event.
//! - depth: spot `U` must be the previous `u + 1`, futures `pu` the previous `u`; a gap means
//!   the order book must be rebuilt and becomes a gap event.
//! - kline: a missed kline (or a missed final update) is backfilled through REST klines.
//! - bookTicker `u` and ticker `E` only ever rise; anything else is a duplicate.

use std::collections::HashMap;

use crate::market::{ContractType, Gap, Interval, Market, MarketEvent, MarketEventKind, Symbol};

/// What to do with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// New and in order: pass it on.
    Emit,
    /// Seen already: drop it.
    Duplicate,
    /// aggTrades `from_id..before_id` are missing: fetch them, then admit this event again.
    BackfillTrades { from_id: u64, before_id: u64 },
    /// Klines opening in `from_open_ms..before_open_ms` are missing (or not final).
    BackfillKlines {
        interval: Interval,
        from_open_ms: i64,
        before_open_ms: i64,
    },
    /// Data is lost for good: emit this gap, then the event (already recorded as seen).
    Gap(Gap),
}

/// Which stream of a symbol an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Trade,
    AggTrade,
    Kline(Interval, Option<ContractType>),
    BookTicker,
    Ticker,
    Depth,
}

/// The last position seen on one stream.
#[derive(Debug, Clone, Copy)]
enum Last {
    AggTrade {
        id: u64,
        last_trade: u64,
    },
    Id(u64),
    Kline {
        open_ms: i64,
        /// `(event time, last trade id, closed)`: later updates of one kline compare greater.
        version: (i64, i64, bool),
    },
    Time(i64),
}

/// Sequencing state for every stream of one connection shard.
#[derive(Debug, Default)]
pub struct Sequencer {
    last: HashMap<(Symbol, Key), Last>,
}

fn key(kind: &MarketEventKind) -> Option<Key> {
    Some(match kind {
        MarketEventKind::Trade(_) => Key::Trade,
        MarketEventKind::AggTrade(_) => Key::AggTrade,
        MarketEventKind::Kline(k) => Key::Kline(k.interval, k.contract),
        MarketEventKind::BookTicker(_) => Key::BookTicker,
        MarketEventKind::Ticker(_) => Key::Ticker,
        MarketEventKind::Depth(_) => Key::Depth,
        MarketEventKind::Reconnected | MarketEventKind::Gap(_) => return None,
    })
}

fn position(event: &MarketEvent) -> Option<Last> {
    Some(match &event.kind {
        MarketEventKind::Trade(t) => Last::Id(t.id),
        MarketEventKind::AggTrade(t) => Last::AggTrade {
            id: t.id,
            last_trade: t.last_trade_id,
        },
        MarketEventKind::Kline(k) => Last::Kline {
            open_ms: k.open_time_ms,
            version: (event.exchange_time_ms, k.last_trade_id, k.closed),
        },
        MarketEventKind::BookTicker(b) => Last::Id(b.update_id),
        MarketEventKind::Ticker(_) => Last::Time(event.exchange_time_ms),
        MarketEventKind::Depth(d) => Last::Id(d.final_update_id),
        MarketEventKind::Reconnected | MarketEventKind::Gap(_) => return None,
    })
}

impl Sequencer {
    /// Decides what to do with `event`. For `Emit` and `Gap` the event is recorded as seen;
    /// for the backfill answers nothing is recorded until the event is admitted again.
    pub fn admit(&mut self, event: &MarketEvent) -> Admit {
        let (Some(key), Some(now)) = (key(&event.kind), position(event)) else {
            return Admit::Emit;
        };
        let slot = (event.symbol.clone(), key);
        let verdict = match (self.last.get(&slot), &event.kind) {
            (None, _) => Admit::Emit,
            (Some(Last::AggTrade { id, last_trade }), MarketEventKind::AggTrade(t)) => {
                if t.id <= *id {
                    Admit::Duplicate
                } else if t.id > id + 1 {
                    Admit::BackfillTrades {
                        from_id: id + 1,
                        before_id: t.id,
                    }
                } else if last_trade.checked_add(1) != Some(t.first_trade_id) {
                    gap("aggTrade", *last_trade, t.first_trade_id)
                } else {
                    Admit::Emit
                }
            }
            (Some(Last::Id(last)), MarketEventKind::Trade(t)) => match t.id {
                id if id <= *last => Admit::Duplicate,
                id if id == last + 1 => Admit::Emit,
                id => gap("trade", *last, id),
            },
            (Some(Last::Id(last)), MarketEventKind::Depth(d)) => {
                let follows = match (event.market, d.previous_final_update_id) {
                    (Market::Futures, Some(pu)) => pu == *last,
                    _ => last.checked_add(1) == Some(d.first_update_id),
                };
                if d.final_update_id <= *last {
                    Admit::Duplicate
                } else if follows {
                    Admit::Emit
                } else {
                    gap("depth", *last, d.first_update_id)
                }
            }
            (Some(Last::Id(last)), MarketEventKind::BookTicker(b)) => {
                if b.update_id <= *last {
                    Admit::Duplicate
                } else {
                    Admit::Emit
                }
            }
            (Some(Last::Time(last)), MarketEventKind::Ticker(_)) => {
                if event.exchange_time_ms <= *last {
                    Admit::Duplicate
                } else {
                    Admit::Emit
                }
            }
            (Some(Last::Kline { open_ms, version }), MarketEventKind::Kline(k)) => {
                kline(*open_ms, *version, event.exchange_time_ms, k)
            }
            // A stream whose payload kind changed cannot happen with one key per kind.
            _ => Admit::Emit,
        };
        if matches!(verdict, Admit::Emit | Admit::Gap(_)) {
            self.last.insert(slot, now);
        }
        verdict
    }

    /// Starts `symbol`'s aggTrade stream after trade `id` (whose last single trade is
    /// `last_trade`), where an earlier run of sigcast left it: later trades are fetched to
    /// follow it, earlier ones are duplicates.
    pub fn resume_at(&mut self, symbol: &str, id: u64, last_trade: u64) {
        self.last.insert(
            (Symbol::from(symbol), Key::AggTrade),
            Last::AggTrade { id, last_trade },
        );
    }

    /// For every aggTrade stream seen so far: its symbol and the next id expected.
    pub fn agg_trade_resume_points(&self) -> Vec<(String, u64)> {
        let mut points: Vec<(String, u64)> = self
            .last
            .iter()
            .filter_map(|((symbol, key), last)| match (key, last) {
                (Key::AggTrade, Last::AggTrade { id, .. }) => {
                    Some((symbol.to_string(), id.saturating_add(1)))
                }
                _ => None,
            })
            .collect();
        points.sort();
        points
    }

    /// Records `event` as seen after a backfill that could not close the gap; returns the
    /// gap to report before it.
    pub fn give_up(&mut self, event: &MarketEvent, stream: &'static str, after_id: u64) -> Gap {
        if let (Some(key), Some(now)) = (key(&event.kind), position(event)) {
            self.last.insert((event.symbol.clone(), key), now);
        }
        let resumed_at = match &event.kind {
            MarketEventKind::AggTrade(t) => t.id,
            MarketEventKind::Kline(k) => k.open_time_ms.max(0) as u64,
            _ => 0,
        };
        Gap {
            stream,
            after_id,
            resumed_at,
        }
    }
}

fn gap(stream: &'static str, after_id: u64, resumed_at: u64) -> Admit {
    Admit::Gap(Gap {
        stream,
        after_id,
        resumed_at,
    })
}

fn kline(
    last_open: i64,
    last_version: (i64, i64, bool),
    event_time: i64,
    k: &crate::market::Kline,
) -> Admit {
    let version = (event_time, k.last_trade_id, k.closed);
    if k.open_time_ms < last_open || (k.open_time_ms == last_open && version <= last_version) {
        return Admit::Duplicate;
    }
    if k.open_time_ms == last_open {
        return Admit::Emit;
    }
    let Some(step) = k.interval.fixed_millis() else {
        return Admit::Emit; // weeks and months: no backfill by fixed steps
    };
    let last_was_final = last_version.2;
    let from = if last_was_final {
        last_open + step
    } else {
        last_open
    };
    if from >= k.open_time_ms {
        Admit::Emit
    } else {
        Admit::BackfillKlines {
            interval: k.interval,
            from_open_ms: from,
            before_open_ms: k.open_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::market::{AggTrade, Decimal, DepthUpdate, Kline, Trade};

    fn ev(market: Market, kind: MarketEventKind) -> MarketEvent {
        MarketEvent {
            market,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: 1,
            received_at: SystemTime::UNIX_EPOCH,
            kind,
        }
    }

    fn agg(id: u64, f: u64, l: u64) -> MarketEvent {
        ev(
            Market::Futures,
            MarketEventKind::AggTrade(AggTrade {
                id,
                price: Decimal::ONE,
                quantity: Decimal::ONE,
                first_trade_id: f,
                last_trade_id: l,
                time_ms: 1,
                buyer_is_maker: false,
            }),
        )
    }

    #[test]
    fn agg_trades_in_order_duplicates_and_backfill() {
        let mut s = Sequencer::default();
        assert_eq!(s.admit(&agg(10, 100, 101)), Admit::Emit);
        assert_eq!(s.admit(&agg(11, 102, 102)), Admit::Emit);
        assert_eq!(s.admit(&agg(11, 102, 102)), Admit::Duplicate);
        assert_eq!(s.admit(&agg(9, 90, 99)), Admit::Duplicate);
        assert_eq!(
            s.admit(&agg(14, 110, 110)),
            Admit::BackfillTrades {
                from_id: 12,
                before_id: 14
            }
        );
        // Backfilled rows, then the event again.
        assert_eq!(s.admit(&agg(12, 103, 105)), Admit::Emit);
        assert_eq!(s.admit(&agg(13, 106, 109)), Admit::Emit);
        assert_eq!(s.admit(&agg(14, 110, 110)), Admit::Emit);
        // Contiguous `a` but trades missing between `l` and `f`.
        assert!(matches!(s.admit(&agg(15, 115, 115)), Admit::Gap(_)));
    }

    /// Ids at u64::MAX are nonsense from upstream; they are judged, never an overflow panic.
    #[test]
    fn ids_at_the_top_of_their_range_do_not_overflow() {
        let mut s = Sequencer::default();
        assert_eq!(s.admit(&agg(u64::MAX - 1, 0, u64::MAX)), Admit::Emit);
        assert!(matches!(s.admit(&agg(u64::MAX, 0, 0)), Admit::Gap(_)));
        assert_eq!(
            s.agg_trade_resume_points(),
            vec![("BTCUSDT".into(), u64::MAX)]
        );
        let depth = ev(
            Market::Spot,
            MarketEventKind::Depth(DepthUpdate {
                first_update_id: 0,
                final_update_id: u64::MAX,
                previous_final_update_id: None,
                bids: vec![],
                asks: vec![],
            }),
        );
        assert_eq!(s.admit(&depth), Admit::Emit);
        assert_eq!(s.admit(&depth), Admit::Duplicate);
    }

    #[test]
    fn a_resumed_stream_continues_after_its_stored_trade() {
        let mut s = Sequencer::default();
        s.resume_at("BTCUSDT", 10, 101);
        assert_eq!(s.agg_trade_resume_points(), vec![("BTCUSDT".into(), 11)]);
        assert_eq!(s.admit(&agg(10, 100, 101)), Admit::Duplicate);
        assert_eq!(
            s.admit(&agg(13, 110, 110)),
            Admit::BackfillTrades {
                from_id: 11,
                before_id: 13
            }
        );
        assert_eq!(s.admit(&agg(11, 102, 105)), Admit::Emit);
    }

    #[test]
    fn trades_cannot_be_backfilled() {
        let mut s = Sequencer::default();
        let t = |id| {
            ev(
                Market::Spot,
                MarketEventKind::Trade(Trade {
                    id,
                    price: Decimal::ONE,
                    quantity: Decimal::ONE,
                    time_ms: 1,
                    buyer_is_maker: true,
                }),
            )
        };
        assert_eq!(s.admit(&t(5)), Admit::Emit);
        assert_eq!(s.admit(&t(6)), Admit::Emit);
        assert_eq!(s.admit(&t(6)), Admit::Duplicate);
        assert_eq!(
            s.admit(&t(9)),
            Admit::Gap(Gap {
                stream: "trade",
                after_id: 6,
                resumed_at: 9
            })
        );
        assert_eq!(s.admit(&t(10)), Admit::Emit, "recorded after the gap");
    }

    #[test]
    fn depth_rules_per_market() {
        let d = |market, first, last, pu| {
            ev(
                market,
                MarketEventKind::Depth(DepthUpdate {
                    first_update_id: first,
                    final_update_id: last,
                    previous_final_update_id: pu,
                    bids: vec![],
                    asks: vec![],
                }),
            )
        };
        let mut s = Sequencer::default();
        assert_eq!(s.admit(&d(Market::Spot, 1, 5, None)), Admit::Emit);
        assert_eq!(s.admit(&d(Market::Spot, 6, 9, None)), Admit::Emit);
        assert_eq!(s.admit(&d(Market::Spot, 6, 9, None)), Admit::Duplicate);
        assert!(matches!(
            s.admit(&d(Market::Spot, 11, 12, None)),
            Admit::Gap(_)
        ));
        let mut f = Sequencer::default();
        assert_eq!(f.admit(&d(Market::Futures, 1, 5, Some(0))), Admit::Emit);
        assert_eq!(
            f.admit(&d(Market::Futures, 8, 9, Some(5))),
            Admit::Emit,
            "pu links, U may jump"
        );
        assert!(matches!(
            f.admit(&d(Market::Futures, 12, 14, Some(10))),
            Admit::Gap(_)
        ));
    }

    #[test]
    fn klines_backfill_missed_and_unfinished() {
        let k = |open: i64, e: i64, l: i64, closed: bool| {
            let mut event = ev(
                Market::Spot,
                MarketEventKind::Kline(Kline {
                    interval: Interval::M1,
                    open_time_ms: open,
                    close_time_ms: open + 59_999,
                    first_trade_id: 0,
                    last_trade_id: l,
                    open: Decimal::ONE,
                    high: Decimal::ONE,
                    low: Decimal::ONE,
                    close: Decimal::ONE,
                    volume: Decimal::ONE,
                    quote_volume: Decimal::ONE,
                    trades: 1,
                    taker_buy_volume: Decimal::ZERO,
                    taker_buy_quote_volume: Decimal::ZERO,
                    closed,
                    contract: None,
                }),
            );
            event.exchange_time_ms = e;
            event
        };
        let mut s = Sequencer::default();
        assert_eq!(s.admit(&k(0, 10, 5, false)), Admit::Emit);
        assert_eq!(s.admit(&k(0, 10, 5, false)), Admit::Duplicate);
        assert_eq!(s.admit(&k(0, 60_000, 9, true)), Admit::Emit);
        assert_eq!(s.admit(&k(60_000, 61_000, 12, false)), Admit::Emit);
        // The final update of 60_000 and all of 120_000 were missed.
        assert_eq!(
            s.admit(&k(180_000, 181_000, 40, false)),
            Admit::BackfillKlines {
                interval: Interval::M1,
                from_open_ms: 60_000,
                before_open_ms: 180_000
            }
        );
    }
}
