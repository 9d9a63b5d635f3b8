//! Trade positions in the data directory's SQLite database (table `trade_positions`).

use std::path::{Path, PathBuf};

use rusqlite::params;

use super::saved::SavedKline;
use super::{Cursor, Position, PositionStore};
use crate::market::Kline;

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

/// The `trade_positions` table of the data directory's database.
pub struct SqlitePositions {
    conn: rusqlite::Connection,
    /// Names the database in errors.
    path: PathBuf,
}

impl SqlitePositions {
    /// Opens the database at `path` (creating the table); returns the store and the
    /// positions an earlier run left.
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
        let path = path.to_path_buf();
        Ok((SqlitePositions { conn, path }, saved))
    }
}

impl PositionStore for SqlitePositions {
    fn save(&mut self, latest: Vec<Position>) -> Result<(), String> {
        store(&mut self.conn, latest.iter()).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

impl Cursor {
    /// A cursor on the database at `path`, and the positions an earlier run left.
    pub fn open(path: &Path) -> Result<(Self, Vec<Position>), CursorError> {
        let (store, saved) = SqlitePositions::open(path)?;
        Ok((Cursor::new(store).map_err(CursorError::Thread)?, saved))
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
        let Some(market) = super::saved::market(&market) else {
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
