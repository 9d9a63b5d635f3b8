//! The data directory's SQLite database (`<data.dir>/sigcast.db`), shared by the signal
//! journal and the token registry: opened the same way by both.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// How long a statement waits for another writer (the CLI beside a running server).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating its directory and file if needed) in WAL mode, so readers never block the
/// journal's writer.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| rusqlite::Error::InvalidPath(format!("{}: {e}", dir.display()).into()))?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}
