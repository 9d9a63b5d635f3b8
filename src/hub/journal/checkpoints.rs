//! The track record's checkpoints beside the journal (`ledger::Checkpoint`): written by the
//! journal's writer thread as the live ledger takes them, read back in order when `serve`
//! rebuilds the record, pruned with the signals.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::PAGE;
use crate::ledger::Checkpoint;

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS track_checkpoints (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    after_seq INTEGER NOT NULL,
    body TEXT NOT NULL
);";

/// Keeps one. `at` is when (Unix seconds), as a signal's is, for retention: a replay's
/// market times can be years old.
pub(super) fn insert(conn: &Connection, checkpoint: &Checkpoint) -> rusqlite::Result<()> {
    let body = serde_json::to_string(checkpoint).unwrap_or_default();
    conn.execute(
        "INSERT INTO track_checkpoints (at, after_seq, body) VALUES (?1, ?2, ?3)",
        params![
            crate::clock::unix_now() as i64,
            checkpoint.after_seq.min(i64::MAX as u64) as i64,
            body
        ],
    )?;
    Ok(())
}

/// A page of kept checkpoints, wherever they are kept (beside the journal, or in a cluster's
/// stream).
#[derive(Debug, Default)]
pub struct CheckpointPage {
    /// Those that read, in the order they were taken.
    pub checkpoints: Vec<Checkpoint>,
    /// The id of the last one looked at, read or not, where the next page starts; `None`
    /// when there were no more.
    pub last_id: Option<i64>,
}

/// Those after row `after_id`, in the order they were taken, at most [`PAGE`].
pub(super) fn read(path: &Path, after_id: i64) -> rusqlite::Result<CheckpointPage> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let exists: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'track_checkpoints'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(CheckpointPage::default());
    }
    let mut stmt =
        conn.prepare("SELECT id, body FROM track_checkpoints WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let rows = stmt.query_map(params![after_id, PAGE as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut page = CheckpointPage::default();
    for row in rows {
        let (id, body) = row?;
        page.last_id = Some(id);
        // One that does not read (written by another version) is skipped, never guessed.
        if let Ok(checkpoint) = serde_json::from_str(&body) {
            page.checkpoints.push(checkpoint);
        }
    }
    Ok(page)
}

/// Drops those older than `cutoff` (Unix seconds) or from before the oldest signal kept.
pub(super) fn prune(conn: &Connection, cutoff: i64) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM track_checkpoints WHERE at < ?1
            OR after_seq < (SELECT COALESCE(MIN(seq), 0) FROM signals) - 1",
        params![cutoff],
    )?;
    Ok(())
}
