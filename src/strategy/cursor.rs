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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::market::kline::KlineBuilder;
use crate::market::{Interval, Kline, Market, MarketEvent, MarketEventKind};

/// Why the positions could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("trade positions in {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("trade positions: cannot start their writer thread: {0}")]
    Thread(std::io::Error),
}

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

/// The positions of every symbol, written behind the engine.
pub struct Cursor {
    /// Per market (spot, futures), by symbol: looked up by `&str`, so taking a trade
    /// allocates nothing.
    tracked: [HashMap<String, Tracked>; 2],
    /// `None` when nothing is kept (replayed or synthetic data).
    writer: Option<Writer>,
}

/// Where flushed positions go.
enum Writer {
    /// The SQLite writer thread.
    Thread {
        rows: std_mpsc::Sender<Vec<Position>>,
        thread: std::thread::JoinHandle<()>,
    },
    /// A task writing elsewhere (a cluster's bucket).
    Task {
        rows: tokio::sync::mpsc::UnboundedSender<Vec<Position>>,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Cursor {
    /// A cursor that keeps nothing (sources without resumable ids).
    pub fn disabled() -> Self {
        Cursor {
            tracked: Default::default(),
            writer: None,
        }
    }

    /// Opens the positions in the database at `path` (creating the table) and starts their
    /// writer; returns the cursor and the positions an earlier run left.
    pub fn open(path: &Path) -> Result<(Self, Vec<Position>), CursorError> {
        let db_error = |source| CursorError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = crate::db::open(path).map_err(db_error)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS trade_positions (
                market TEXT NOT NULL,
                symbol TEXT NOT NULL,
                agg_id INTEGER NOT NULL,
                last_trade_id INTEGER NOT NULL,
                time_ms INTEGER NOT NULL,
                open_candles TEXT NOT NULL,
                saved_at_ms INTEGER NOT NULL,
                PRIMARY KEY (market, symbol)
            )",
        )
        .map_err(db_error)?;
        let saved = load(&conn).map_err(db_error)?;
        let (rows, received) = std_mpsc::channel();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("sigcast-positions".into())
            .spawn(move || write_all(conn, received, &shown))
            .map_err(CursorError::Thread)?;
        let cursor = Cursor {
            tracked: Default::default(),
            writer: Some(Writer::Thread { rows, thread }),
        };
        Ok((cursor, saved))
    }

    /// A cursor whose positions a task writes (it ends once `rows` is closed and written).
    pub fn with_task(
        rows: tokio::sync::mpsc::UnboundedSender<Vec<Position>>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        Cursor {
            tracked: Default::default(),
            writer: Some(Writer::Task { rows, task }),
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
            let _ = match writer {
                Writer::Thread { rows, .. } => rows.send(changed).is_ok(),
                Writer::Task { rows, .. } => rows.send(changed).is_ok(),
            };
        }
    }

    /// Writes what is left and waits until it is on disk.
    pub async fn close(mut self) {
        self.flush();
        match self.writer.take() {
            Some(Writer::Thread { rows, thread }) => {
                drop(rows);
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Some(Writer::Task { rows, task }) => {
                drop(rows);
                let _ = task.await;
            }
            None => {}
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

/// The writer thread: commits each batch (the latest of each symbol) in one transaction.
fn write_all(mut conn: rusqlite::Connection, rows: std_mpsc::Receiver<Vec<Position>>, path: &str) {
    while let Ok(first) = rows.recv() {
        let mut latest: HashMap<(Market, String), Position> = HashMap::new();
        for p in first.into_iter().chain(rows.try_iter().flatten()) {
            latest.insert((p.market, p.symbol.clone()), p);
        }
        if let Err(e) = store(&mut conn, latest.values()) {
            tracing::error!(path, error = %e, "trade positions not saved; a restart may replay trades");
        }
    }
}

fn store<'a>(
    conn: &mut rusqlite::Connection,
    positions: impl Iterator<Item = &'a Position>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO trade_positions
             (market, symbol, agg_id, last_trade_id, time_ms, open_candles, saved_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for p in positions {
            let open: Vec<SavedKline> = p.open.iter().map(SavedKline::from).collect();
            let open = serde_json::to_string(&open).unwrap_or_else(|_| "[]".into());
            insert.execute(params![
                p.market.as_str(),
                p.symbol,
                p.agg_id as i64,
                p.last_trade_id as i64,
                p.time_ms,
                open,
                p.saved_at_ms
            ])?;
        }
    }
    tx.commit()
}

fn load(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Position>> {
    let mut select = conn.prepare(
        "SELECT market, symbol, agg_id, last_trade_id, time_ms, open_candles, saved_at_ms
         FROM trade_positions ORDER BY market, symbol",
    )?;
    let rows = select.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, i64>(6)?,
        ))
    })?;
    let mut positions = Vec::new();
    for row in rows {
        let (market, symbol, agg_id, last_trade_id, time_ms, open, saved_at_ms) = row?;
        // A row this version cannot read is skipped: that symbol starts fresh.
        let Some(market) = self::market(&market) else {
            continue;
        };
        let open: Vec<Kline> = serde_json::from_str::<Vec<SavedKline>>(&open)
            .ok()
            .map(|saved| {
                saved
                    .into_iter()
                    .filter_map(SavedKline::into_kline)
                    .collect()
            })
            .unwrap_or_default();
        positions.push(Position {
            market,
            symbol,
            agg_id: agg_id as u64,
            last_trade_id: last_trade_id as u64,
            time_ms,
            saved_at_ms,
            open,
        });
    }
    Ok(positions)
}

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

fn market(name: &str) -> Option<Market> {
    [Market::Spot, Market::Futures]
        .into_iter()
        .find(|m| m.as_str() == name)
}

/// A candle as stored: decimals as their exact text.
#[derive(Serialize, Deserialize)]
struct SavedKline {
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
    fn into_kline(self) -> Option<Kline> {
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
