//! The journal: every broadcast signal, by `seq`, in an embedded SQLite database (WAL mode),
//! so a client can resume after a disconnect or a server restart.
//!
//! Write-ahead: a signal is committed before any client is sent it. Publishing never waits
//! on the disk: signals go to a dedicated writer thread that commits them in batches (one
//! transaction per batch), then hands the batch to the broadcast ring and announces how far
//! it has flushed. So every signal a client ever received can be resumed, and after a crash
//! numbering carries on above every `seq` anyone saw. Commits do not fsync (WAL with
//! `synchronous = NORMAL`: a commit survives a crash of sigcast, not of the machine);
//! checkpoints, which do, run on a thread of their own so they never delay a broadcast.
//! Readers (resumes) use their own connections on the blocking pool. Retention by age and
//! count is applied by the writer between batches.
//!
//! Once given the journal key ([`Journal::sign_with`]), the writer seals each signal before
//! committing it (`hub::proof`): the chain runs in `seq` order on the one thread that
//! writes, so what is journaled, broadcast and resumed are the same signed bytes.
//!
//! The track record's checkpoints are kept in the same database, by the same writer
//! (`checkpoints.rs`), and pruned with the signals.
//!
//! About 590 lines: the writer, the checkpointer and the readers share one database file and
//! one schema, and each needs the others' invariants (write-ahead, pruning below the newest
//! row, the chain's last hash) in view; its tests live in `tests.rs`.

mod checkpoints;

pub use checkpoints::CheckpointPage;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::{broadcast, watch};

use super::proof::{self, Chain};
use super::{Frame, Published};

/// Most signals one writer transaction takes.
const BATCH: usize = 4096;
/// How often retention is applied.
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Attempts at committing a batch before it is broadcast unjournaled.
const WRITE_ATTEMPTS: u32 = 3;
/// Resume reads running at once. Each holds a SQLite connection and a blocking-pool thread
/// while it runs; after a restart every client resumes together, and without a bound a
/// reconnect storm of 2,000 clients tripled sigcast's memory (the soak test). Reads take
/// milliseconds, so the others wait briefly.
const READERS: usize = 4;
/// Rows one resume read returns at most: a resuming session holds one page until its client
/// has taken it (about 300 bytes a signal), so a reconnect storm of slow clients costs
/// `PAGE x 300 B` each.
pub const PAGE: usize = 512;

/// A page of journaled signals, and the oldest `seq` the journal holds.
pub type Page = (Vec<Published>, Option<u64>);

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("journal {path}: cannot start its writer thread: {source}")]
    Writer {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal: the writer has stopped")]
    Stopped,
    #[error("journal: signal {0} could not be committed")]
    NotStored(u64),
}

/// How much history to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Signals older than this are deleted.
    pub max_age: Duration,
    /// At most this many signals are kept.
    pub max_count: u64,
}

/// One signal to write.
struct Entry {
    at_unix: i64,
    signal: Published,
    /// The publish key of a publisher's signal (see `hub::keys`), committed with it.
    key: Option<String>,
}

/// What the writer thread is told.
enum Command {
    Append(Entry),
    /// Where committed signals are broadcast from now on.
    DeliverTo(broadcast::Sender<Published>),
    /// Seal every signal from now on with this key (at start, and after a rotation).
    SignWith(proof::Signer),
    /// Keep one of the track record's checkpoints.
    Checkpoint(crate::ledger::Checkpoint),
}

/// The journal's footprint, measured by the checkpoint thread every second.
#[derive(Debug, Default)]
pub struct Footprint {
    /// Database file plus write-ahead log, in bytes.
    pub bytes: AtomicU64,
    /// The oldest `seq` kept (0 while empty): resumes from before it get `history_expired`.
    pub oldest_seq: AtomicU64,
}

/// Batches whose commit failed lately, remembered so that a publisher waiting on one is told
/// its signal was not stored; a waiter is answered within moments, so a few suffice.
const FAILED_KEPT: usize = 64;

/// The `seq` ranges (first, last) of batches that could not be committed, newest last.
type Failed = Arc<std::sync::Mutex<std::collections::VecDeque<(u64, u64)>>>;

/// Handle on the journal; cheap to share behind the hub.
pub struct Journal {
    path: PathBuf,
    /// Size on disk and oldest signal kept, for the metrics.
    footprint: Arc<Footprint>,
    writer: std_mpsc::Sender<Command>,
    /// The highest `seq` the writer is done with: committed, or given up on (`failed`).
    flushed: watch::Receiver<u64>,
    /// Batches the writer gave up on, so [`Journal::wait_committed`] never acks one.
    failed: Failed,
    /// The publish keys the journal held at open, until the hub takes them.
    keys: std::sync::Mutex<HashMap<String, u64>>,
    /// Places for resume reads ([`READERS`]).
    readers: Arc<tokio::sync::Semaphore>,
    /// The keys that signed, for those who verify.
    public: std::sync::RwLock<Arc<proof::KeySet>>,
}

impl Journal {
    /// Opens (or creates) the database at `path` and starts its writer. Returns the journal
    /// and the last `seq` it holds, so numbering carries on across restarts.
    pub fn open(path: &Path, retention: Retention) -> Result<(Journal, u64), JournalError> {
        let sql = |source| JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = crate::db::open(path).map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // Checkpoints fsync; the checkpoint thread does them instead of the commit path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS signals (
                seq INTEGER PRIMARY KEY,
                at INTEGER NOT NULL,
                symbol TEXT NOT NULL,
                strategy TEXT NOT NULL,
                frame TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS signals_at ON signals(at);
            CREATE TABLE IF NOT EXISTS publish_keys (
                key TEXT PRIMARY KEY,
                seq INTEGER NOT NULL
            ) WITHOUT ROWID;",
        )
        .map_err(sql)?;
        conn.execute_batch(checkpoints::SCHEMA).map_err(sql)?;
        let keys = load_keys(&conn).map_err(sql)?;
        let last: u64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM signals", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql)? as u64;
        let (writer, entries) = std_mpsc::channel();
        let (flushed_tx, flushed) = watch::channel(last);
        let checkpoints = crate::db::open(path).map_err(sql)?;
        let thread_error = |source| JournalError::Writer {
            path: path.to_path_buf(),
            source,
        };
        let owned = path.to_path_buf();
        let failed = Failed::default();
        let failures = failed.clone();
        std::thread::Builder::new()
            .name("sigcast-journal".into())
            .spawn(move || write_loop(conn, &owned, entries, flushed_tx, &failures, retention))
            .map_err(thread_error)?;
        let owned = path.to_path_buf();
        let writer_alive = flushed.clone();
        let footprint = Arc::new(Footprint::default());
        measure(&checkpoints, path, &footprint);
        let measured = footprint.clone();
        std::thread::Builder::new()
            .name("sigcast-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoints, &owned, writer_alive, &measured))
            .map_err(thread_error)?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                footprint,
                writer,
                flushed,
                failed,
                keys: std::sync::Mutex::new(keys),
                readers: Arc::new(tokio::sync::Semaphore::new(READERS)),
                public: Default::default(),
            },
            last,
        ))
    }

    /// Queues a signal for writing, with its publish key if it has one, and for
    /// broadcasting once written; never blocks.
    pub fn append(&self, at_unix: i64, signal: Published, key: Option<&str>) {
        let seq = signal.seq;
        let key = key.map(str::to_string);
        if self
            .writer
            .send(Command::Append(Entry {
                at_unix,
                signal,
                key,
            }))
            .is_err()
        {
            tracing::error!(seq, "journal writer stopped; signal not journaled");
        }
    }

    /// Seals every signal appended from now on with `signer`'s key, chained to the last
    /// signal journaled; `keys` are the public keys to publish (current and retired).
    pub fn sign_with(&self, signer: proof::Signer, keys: proof::KeySet) {
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        let _ = self.writer.send(Command::SignWith(signer));
    }

    /// The public keys of the signed signals (`GET /v1/journal/key`); none until signing.
    pub fn public_keys(&self) -> Arc<proof::KeySet> {
        self.public
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keeps a track record checkpoint beside the signals; never blocks.
    pub fn keep_checkpoint(&self, checkpoint: crate::ledger::Checkpoint) {
        let _ = self.writer.send(Command::Checkpoint(checkpoint));
    }

    /// The track record's checkpoints after row `after_id`, in order, at most [`PAGE`], each
    /// with its row id. Runs on the blocking pool.
    pub async fn checkpoints(&self, after_id: i64) -> Result<CheckpointPage, JournalError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_checkpoints_file(&path, after_id))
            .await
            .map_err(|_| JournalError::Stopped)?
    }

    /// Broadcasts every signal written from now on on `ring`.
    pub fn deliver_to(&self, ring: broadcast::Sender<Published>) {
        let _ = self.writer.send(Command::DeliverTo(ring));
    }

    /// Waits until every `seq` up to `seq` is on disk.
    pub async fn wait_flushed(&self, seq: u64) -> Result<(), JournalError> {
        let mut flushed = self.flushed.clone();
        flushed
            .wait_for(|f| *f >= seq)
            .await
            .map(|_| ())
            .map_err(|_| JournalError::Stopped)
    }

    /// Waits until `seq` is committed to disk: what a publisher's ack promises. An error
    /// when the writer gave up on its batch (the signal went out unjournaled) or stopped.
    pub async fn wait_committed(&self, seq: u64) -> Result<(), JournalError> {
        self.wait_flushed(seq).await?;
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&seq))
        {
            return Err(JournalError::NotStored(seq));
        }
        Ok(())
    }

    /// The publish keys of the signals the journal held when it was opened, with their
    /// `seq` (once: the hub keeps them from then on).
    pub fn take_keys(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The oldest `seq` kept, as of the last measurement (0 while empty).
    pub fn oldest_seq(&self) -> u64 {
        self.footprint.oldest_seq.load(Ordering::Relaxed)
    }

    /// Size on disk and oldest signal kept, as of the last measurement.
    pub fn footprint(&self) -> &Footprint {
        &self.footprint
    }

    /// The highest `seq` on disk.
    pub fn flushed(&self) -> u64 {
        *self.flushed.borrow()
    }

    /// Signals with `after < seq <= upto`, in order, at most [`PAGE`], and the oldest `seq`
    /// the journal still holds (`None` when it is empty). Runs on the blocking pool.
    pub async fn read(&self, after: u64, upto: u64) -> Result<Page, JournalError> {
        let _place = self
            .readers
            .acquire()
            .await
            .map_err(|_| JournalError::Stopped)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_page(&path, after, upto))
            .await
            .map_err(|_| JournalError::Stopped)?
    }
}

/// As [`Journal::read`], from a journal file no server need hold open (`sigcast
/// performance --journal`): read-only, on the calling thread.
pub fn read_file(path: &Path, after: u64, upto: u64) -> Result<Page, JournalError> {
    read_page(path, after, upto)
}

/// The track record's checkpoints in the journal at `path` after row `after_id`, in the order
/// they were taken, at most a page, each with its row id (offline, as [`read_file`]).
pub fn read_checkpoints_file(path: &Path, after_id: i64) -> Result<CheckpointPage, JournalError> {
    checkpoints::read(path, after_id).map_err(|source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}

fn read_page(path: &Path, after: u64, upto: u64) -> Result<Page, JournalError> {
    let sql = |source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let oldest: Option<i64> = conn
        .query_row("SELECT MIN(seq) FROM signals", [], |r| r.get(0))
        .map_err(sql)?;
    let mut stmt = conn
        .prepare(
            "SELECT seq, symbol, strategy, frame FROM signals
             WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map(params![after as i64, upto as i64, PAGE as i64], |r| {
            Ok(Published {
                seq: r.get::<_, i64>(0)? as u64,
                symbol: r.get::<_, String>(1)?.into(),
                strategy: Arc::from(r.get::<_, String>(2)?),
                frame: Frame::from(r.get::<_, String>(3)?),
                at: std::time::Instant::now(),
                offered: std::time::Instant::now(),
            })
        })
        .map_err(sql)?;
    let mut page = Vec::new();
    for row in rows {
        page.push(row.map_err(sql)?);
    }
    Ok((page, oldest.map(|s| s as u64)))
}

fn write_loop(
    mut conn: Connection,
    path: &Path,
    commands: std_mpsc::Receiver<Command>,
    flushed: watch::Sender<u64>,
    failed: &Failed,
    retention: Retention,
) {
    let mut last_prune = Instant::now();
    let mut ring: Option<broadcast::Sender<Published>> = None;
    let mut chain: Option<Chain> = None;
    let mut batch = Vec::new();
    while let Ok(first) = commands.recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(mut e) => {
                    if let Some(chain) = &mut chain
                        && let Some(sealed) = chain.seal(e.signal.frame.as_str())
                    {
                        e.signal.frame = Frame::from(sealed);
                    }
                    batch.push(e);
                }
                Command::DeliverTo(r) => ring = Some(r),
                Command::SignWith(signer) => {
                    let prev = match &chain {
                        Some(chain) => chain.prev,
                        None => last_hash(&conn, &batch),
                    };
                    tracing::info!(kid = signer.kid(), "journal signing with key");
                    chain = Some(Chain {
                        prev,
                        signer: Arc::new(signer),
                    });
                }
                Command::Checkpoint(c) => {
                    if let Err(e) = checkpoints::insert(&conn, &c) {
                        tracing::warn!(path = %path.display(), error = %e, "track record checkpoint not kept");
                    }
                }
            }
            if batch.len() < BATCH {
                next = commands.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let top = batch.last().map(|e| e.signal.seq).unwrap_or(0);
        let mut attempt = 1;
        while let Err(e) = write_batch(&mut conn, &batch) {
            if attempt == WRITE_ATTEMPTS {
                // Live clients come first: the batch goes out unjournaled (not resumable).
                tracing::error!(path = %path.display(), error = %e, signals = batch.len(), first_seq = batch[0].signal.seq, "journal write failed; broadcasting without journaling");
                let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
                if failed.len() == FAILED_KEPT {
                    failed.pop_front();
                }
                failed.push_back((batch[0].signal.seq, top));
                break;
            }
            tracing::warn!(path = %path.display(), error = %e, attempt, "journal write failed; retrying");
            attempt += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        flushed.send_replace(top);
        if let Some(ring) = &ring {
            for mut e in batch.drain(..) {
                e.signal.offered = Instant::now();
                let _ = ring.send(e.signal);
            }
        }
        batch.clear();
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(e) = prune(&conn, retention) {
                tracing::warn!(path = %path.display(), error = %e, "journal retention failed");
            }
        }
    }
    // Every sender is gone (shutdown): apply retention once more and stop.
    let _ = prune(&conn, retention);
}

/// The chain hash after the newest signal: in the batch being gathered, else the last one
/// committed (a new chain starts after a journal that has none).
fn last_hash(conn: &Connection, batch: &[Entry]) -> proof::Hash {
    if let Some(e) = batch.last() {
        return proof::hash_after(e.signal.frame.as_str());
    }
    conn.query_row(
        "SELECT frame FROM signals ORDER BY seq DESC LIMIT 1",
        [],
        |r| r.get::<_, String>(0),
    )
    .map_or(proof::GENESIS, |frame| proof::hash_after(&frame))
}

/// Moves the WAL into the database file every second, until the writer stops. PASSIVE:
/// it never blocks the writer, which is what keeps fsyncs off the broadcast path.
fn checkpoint_loop(
    conn: Connection,
    path: &Path,
    writer: watch::Receiver<u64>,
    footprint: &Footprint,
) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if writer.has_changed().is_err() {
            break; // the writer is gone
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(path = %path.display(), error = %e, "journal checkpoint failed");
        }
        measure(&conn, path, footprint);
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Records the journal's size on disk and its oldest `seq`.
fn measure(conn: &Connection, path: &Path, footprint: &Footprint) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let bytes: u64 = [path.as_os_str(), wal.as_os_str()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    footprint.bytes.store(bytes, Ordering::Relaxed);
    // MIN over the primary key: one index lookup, whatever the table's size.
    if let Ok(oldest) = conn.query_row("SELECT COALESCE(MIN(seq), 0) FROM signals", [], |r| {
        r.get::<_, i64>(0)
    }) {
        footprint.oldest_seq.store(oldest as u64, Ordering::Relaxed);
    }
}

fn write_batch(conn: &mut Connection, batch: &[Entry]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO signals (seq, at, symbol, strategy, frame)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut keep_key =
            tx.prepare_cached("INSERT OR REPLACE INTO publish_keys (key, seq) VALUES (?1, ?2)")?;
        for e in batch {
            let s = &e.signal;
            insert.execute(params![
                s.seq as i64,
                e.at_unix,
                &*s.symbol,
                &*s.strategy,
                s.frame.as_str()
            ])?;
            if let Some(key) = &e.key {
                keep_key.execute(params![key, s.seq as i64])?;
            }
        }
    }
    tx.commit()
}

/// Applies retention now (the writer also does every few seconds).
pub fn prune_file(path: &Path, retention: Retention) -> Result<(), JournalError> {
    let conn = Connection::open(path).map_err(|source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    })?;
    prune(&conn, retention).map_err(|source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}

fn prune(conn: &Connection, retention: Retention) -> rusqlite::Result<()> {
    let now = crate::clock::unix_now() as i64;
    let cutoff = now.saturating_sub(retention.max_age.as_secs().min(i64::MAX as u64) as i64);
    // The newest row always stays: numbering carries on from it after a restart.
    conn.execute(
        "DELETE FROM signals WHERE at < ?1 AND seq < (SELECT MAX(seq) FROM signals)",
        params![cutoff],
    )?;
    conn.execute(
        "DELETE FROM signals WHERE seq <= (SELECT MAX(seq) FROM signals) - ?1",
        params![retention.max_count.min(i64::MAX as u64) as i64],
    )?;
    checkpoints::prune(conn, cutoff)?;
    // A publish key lives as long as its signal.
    conn.execute(
        "DELETE FROM publish_keys WHERE seq < (SELECT COALESCE(MIN(seq), 0) FROM signals)",
        [],
    )?;
    Ok(())
}

/// The publish keys of the signals held, with their `seq`.
fn load_keys(conn: &Connection) -> rusqlite::Result<HashMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT key, seq FROM publish_keys
         WHERE seq >= (SELECT COALESCE(MIN(seq), 0) FROM signals)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests;
