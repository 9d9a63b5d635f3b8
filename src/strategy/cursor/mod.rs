//! Where the strategies stand in each aggTrade stream, kept in the data directory's database
//! so a restarted sigcast continues at the next trade instead of skipping what was traded
//! while it was stopped.
//!
//! A position is the last aggregate trade the engine took for a symbol, with the candles that
//! trade left open (one per interval the symbol's strategies use). On restart the upstream
//! fetches the trades after it, and warm-up history stops at those open candles, which the
//! fetched trades then continue: every trade is counted once, in one candle.
//!
//! The engine's thread only updates memory; positions go to a writer thread every
//! [`Cursor::flush`] (the pipeline calls it every 20 ms) and once more at a clean stop. A
//! crash can therefore lose the last moments' positions, and those trades reach the
//! strategies again after the restart; a clean stop loses and repeats nothing.
//!
//! Where they are kept is a [`PositionStore`]: the data directory's SQLite database
//! ([`SqlitePositions`]) on a single node, a key-value bucket in cluster mode
//! (`cluster::positions`).

pub use saved::{from_json, to_json};
pub use sqlite::{CursorError, SqlitePositions};

mod saved;
mod sqlite;

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;

use crate::market::kline::KlineBuilder;
use crate::market::{Interval, Kline, Market, MarketEvent, MarketEventKind};

/// The last trade the strategies took on one symbol's aggTrade stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub market: Market,
    pub symbol: String,
    pub agg_id: u64,
    /// Its last single-trade id (`l`).
    pub last_trade_id: u64,
    /// Its trade time, Unix milliseconds.
    pub time_ms: i64,
    /// When it was written, Unix milliseconds: how long ago sigcast last took a trade.
    pub saved_at_ms: i64,
    /// The candles open after it, each holding every trade of its interval up to it.
    pub open: Vec<Kline>,
}

/// One symbol's position and the candles being built to go with it.
struct Tracked {
    agg_id: u64,
    last_trade_id: u64,
    time_ms: i64,
    builders: Vec<KlineBuilder>,
    /// Changed since the last flush.
    dirty: bool,
}

/// Where positions are kept. [`PositionStore::save`] runs on the cursor's writer thread,
/// never on the async runtime, so a store may block (a database commit, or waiting on the
/// runtime for a network write).
pub trait PositionStore: Send + 'static {
    /// Keeps `latest` (the newest position of each symbol in a batch), replacing what was
    /// kept for those symbols. An error is logged; the next batch tries again.
    fn save(&mut self, latest: Vec<Position>) -> Result<(), String>;
}

/// The positions of every symbol, written behind the engine.
pub struct Cursor {
    /// Per market (spot, futures), by symbol: looked up by `&str`, so taking a trade
    /// allocates nothing.
    tracked: [HashMap<String, Tracked>; 2],
    /// `None` when nothing is kept (replayed or synthetic data).
    writer: Option<Writer>,
}

/// The writer thread and the channel batches of changed positions reach it by.
struct Writer {
    rows: std_mpsc::Sender<Vec<Position>>,
    thread: std::thread::JoinHandle<()>,
}

impl Cursor {
    /// A cursor whose positions `store` keeps, written on a thread of its own.
    pub fn new(store: impl PositionStore) -> Result<Self, std::io::Error> {
        let (rows, received) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sigcast-positions".into())
            .spawn(move || write_all(store, received))?;
        Ok(Cursor {
            tracked: Default::default(),
            writer: Some(Writer { rows, thread }),
        })
    }

    /// A cursor that keeps nothing (sources without resumable ids).
    pub fn disabled() -> Self {
        Cursor {
            tracked: Default::default(),
            writer: None,
        }
    }

    /// Records that the strategies took `event`; `intervals` names the candle intervals the
    /// symbol's strategies build (asked only the first time the symbol is seen).
    pub fn note(&mut self, event: &MarketEvent, intervals: impl FnOnce() -> Vec<Interval>) {
        match &event.kind {
            MarketEventKind::AggTrade(t) => {
                let Some(tracked) = self.tracked(event.market, &event.symbol, intervals) else {
                    return;
                };
                for b in &mut tracked.builders {
                    b.push_agg(t);
                }
                tracked.agg_id = t.id;
                tracked.last_trade_id = t.last_trade_id;
                tracked.time_ms = t.time_ms;
                tracked.dirty = true;
            }
            // The strategies' candles start over after a gap; so do these.
            MarketEventKind::Gap(_) => {
                if let Some(tracked) = self.tracked(event.market, &event.symbol, intervals) {
                    tracked.builders.iter_mut().for_each(KlineBuilder::reset);
                }
            }
            _ => {}
        }
    }

    /// Warm-up history handed the strategies: its open candles are the ones they continue.
    pub fn seed(
        &mut self,
        market: Market,
        symbol: &str,
        history: &[Kline],
        intervals: impl FnOnce() -> Vec<Interval>,
    ) {
        let Some(tracked) = self.tracked(market, symbol, intervals) else {
            return;
        };
        for k in history.iter().filter(|k| !k.closed) {
            if let Some(b) = tracked
                .builders
                .iter_mut()
                .find(|b| b.interval() == k.interval)
            {
                b.seed(k.clone());
            }
        }
    }

    /// The symbol's entry, made on first sight; `None` when nothing is kept.
    fn tracked(
        &mut self,
        market: Market,
        symbol: &str,
        intervals: impl FnOnce() -> Vec<Interval>,
    ) -> Option<&mut Tracked> {
        self.writer.as_ref()?;
        let by_symbol = &mut self.tracked[market as usize];
        if !by_symbol.contains_key(symbol) {
            let fresh = Tracked {
                agg_id: 0,
                last_trade_id: 0,
                time_ms: 0,
                builders: builders(intervals()),
                dirty: false,
            };
            by_symbol.insert(symbol.to_string(), fresh);
        }
        by_symbol.get_mut(symbol)
    }

    /// The strategy set changed: candles of intervals no longer used are dropped, new ones
    /// start with the next trade.
    pub fn reload(&mut self, intervals: impl Fn(Market, &str) -> Vec<Interval>) {
        for (market, symbol, tracked) in all_mut(&mut self.tracked) {
            let wanted = intervals(market, symbol);
            tracked.builders.retain(|b| wanted.contains(&b.interval()));
            let fresh: Vec<Interval> = wanted
                .into_iter()
                .filter(|i| !tracked.builders.iter().any(|b| b.interval() == *i))
                .collect();
            tracked.builders.extend(builders(fresh));
        }
    }

    /// Hands the positions changed since the last call to the writer.
    pub fn flush(&mut self) {
        let Some(writer) = &self.writer else {
            return;
        };
        let changed: Vec<Position> = all_mut(&mut self.tracked)
            .filter(|(_, _, t)| t.dirty && t.agg_id > 0)
            .map(|(market, symbol, t)| {
                t.dirty = false;
                Position {
                    market,
                    symbol: symbol.clone(),
                    agg_id: t.agg_id,
                    last_trade_id: t.last_trade_id,
                    time_ms: t.time_ms,
                    saved_at_ms: now_ms(),
                    open: t
                        .builders
                        .iter()
                        .filter_map(|b| b.current().cloned())
                        .collect(),
                }
            })
            .collect();
        if !changed.is_empty() {
            let _ = writer.rows.send(changed);
        }
    }

    /// Writes what is left and waits until it is on disk.
    pub async fn close(mut self) {
        self.flush();
        if let Some(Writer { rows, thread }) = self.writer.take() {
            drop(rows);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Every symbol's entry, with its market.
fn all_mut(
    tracked: &mut [HashMap<String, Tracked>; 2],
) -> impl Iterator<Item = (Market, &String, &mut Tracked)> {
    let [spot, futures] = tracked;
    let spot = spot.iter_mut().map(|(s, t)| (Market::Spot, s, t));
    spot.chain(futures.iter_mut().map(|(s, t)| (Market::Futures, s, t)))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn builders(intervals: Vec<Interval>) -> Vec<KlineBuilder> {
    let mut out: Vec<KlineBuilder> = Vec::new();
    for i in intervals {
        if !out.iter().any(|b| b.interval() == i)
            && let Ok(b) = KlineBuilder::new(i)
        {
            out.push(b);
        }
    }
    out
}

/// The writer thread: hands each batch (the latest of each symbol) to the store.
fn write_all(mut store: impl PositionStore, rows: std_mpsc::Receiver<Vec<Position>>) {
    while let Ok(first) = rows.recv() {
        let mut latest: HashMap<(Market, String), Position> = HashMap::new();
        for p in first.into_iter().chain(rows.try_iter().flatten()) {
            latest.insert((p.market, p.symbol.clone()), p);
        }
        if let Err(e) = store.save(latest.into_values().collect()) {
            tracing::error!(error = %e, "trade positions not saved; a restart may replay trades");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::market::{AggTrade, Decimal, Gap};

    fn trade(id: u64, time_ms: i64, price: &str) -> MarketEvent {
        MarketEvent {
            market: Market::Futures,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: time_ms,
            received_at: SystemTime::UNIX_EPOCH,
            kind: MarketEventKind::AggTrade(AggTrade {
                id,
                price: price.parse().unwrap(),
                quantity: Decimal::ONE,
                first_trade_id: id * 10,
                last_trade_id: id * 10 + 2,
                time_ms,
                buyer_is_maker: false,
            }),
        }
    }

    #[tokio::test]
    async fn positions_and_open_candles_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sigcast.db");
        let (mut cursor, saved) = Cursor::open(&path).unwrap();
        assert!(saved.is_empty(), "a new database has no positions");
        let minute = || vec![Interval::M1, Interval::S1];
        cursor.note(&trade(1, 60_000, "10.5"), minute);
        cursor.note(&trade(2, 61_500, "12.25"), minute);
        cursor.flush();
        cursor.note(&trade(3, 119_999, "9.125"), minute);
        cursor.close().await;

        let (_cursor, saved) = Cursor::open(&path).unwrap();
        assert_eq!(saved.len(), 1);
        let p = &saved[0];
        assert_eq!((p.market, p.symbol.as_str()), (Market::Futures, "BTCUSDT"));
        assert_eq!((p.agg_id, p.last_trade_id, p.time_ms), (3, 32, 119_999));
        let minute = p.open.iter().find(|k| k.interval == Interval::M1).unwrap();
        assert_eq!(minute.open_time_ms, 60_000);
        assert_eq!(minute.open.to_string(), "10.5");
        assert_eq!(minute.high.to_string(), "12.25");
        assert_eq!(minute.close.to_string(), "9.125");
        assert_eq!(minute.trades, 9, "three aggTrades of three trades each");
        assert!(!minute.closed);
        let second = p.open.iter().find(|k| k.interval == Interval::S1).unwrap();
        assert_eq!(second.open_time_ms, 119_000, "only the last trade's second");
    }

    #[tokio::test]
    async fn a_gap_starts_the_open_candles_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sigcast.db");
        let (mut cursor, _) = Cursor::open(&path).unwrap();
        cursor.note(&trade(1, 60_000, "10"), || vec![Interval::M1]);
        let mut gap = trade(1, 60_500, "10");
        gap.kind = MarketEventKind::Gap(Gap {
            stream: "aggTrade",
            after_id: 1,
            resumed_at: 5,
        });
        cursor.note(&gap, Vec::new);
        cursor.note(&trade(5, 61_000, "11"), Vec::new);
        cursor.close().await;
        let (_, saved) = Cursor::open(&path).unwrap();
        let minute = &saved[0].open[0];
        assert_eq!(
            minute.open.to_string(),
            "11",
            "trades before the gap are gone"
        );
        assert_eq!(saved[0].agg_id, 5);
    }

    #[test]
    fn positions_survive_json() {
        let mut cursor = Cursor::disabled();
        let mut builder = KlineBuilder::new(Interval::M1).unwrap();
        if let MarketEventKind::AggTrade(t) = &trade(7, 61_000, "3.25").kind {
            builder.push_agg(t);
        }
        let p = Position {
            market: Market::Spot,
            symbol: "ETHUSDT".into(),
            agg_id: 7,
            last_trade_id: 72,
            time_ms: 61_000,
            saved_at_ms: 5,
            open: builder.current().cloned().into_iter().collect(),
        };
        assert_eq!(from_json(to_json(&p).as_bytes()), Some(p));
        assert_eq!(from_json(b"{}"), None);
        cursor.flush();
    }

    #[test]
    fn a_disabled_cursor_keeps_nothing() {
        let mut cursor = Cursor::disabled();
        cursor.note(&trade(1, 0, "1"), || vec![Interval::M1]);
        cursor.flush();
        assert!(all_mut(&mut cursor.tracked).next().is_none());
    }
}
