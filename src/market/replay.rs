//! The replay source: plays recorded upstream traffic as if it arrived live.
//!
//! Several files are merged by receive time (so BTC and ETH recordings of the same span
//! interleave as they did live, and consecutive files follow each other). Files are read on a
//! plain thread, never on the async runtime.

use std::collections::{BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::binance::{self, Parsed};
use super::recording::{Recorded, RecordingError, RecordingReader};
use super::{Gap, Malformed, Market, MarketEvent, MarketEventKind, Symbol};

pub use crate::config::Speed;

/// What to play and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub paths: Vec<PathBuf>,
    pub speed: Speed,
    /// Start again from the beginning after the end (strategies see a `Gap` first).
    pub looped: bool,
    /// Wait this long before playing (so clients can connect first).
    pub delay: Duration,
    /// Counts the replay as one connection while it plays, and its malformed lines.
    pub stats: std::sync::Arc<super::SourceStats>,
}

/// Opens every file now, so a bad path is a startup error rather than a silent empty stream.
pub fn check(paths: &[PathBuf]) -> Result<(), RecordingError> {
    for p in paths {
        RecordingReader::open(p)?;
    }
    Ok(())
}

/// The next message of one file, ordered by receive time (earliest first, then file order).
struct Head {
    recorded: Recorded,
    file: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: reverse for earliest first.
        (other.recorded.received_ns, other.file).cmp(&(self.recorded.received_ns, self.file))
    }
}

/// Plays the recordings into a bounded channel until the end (or forever when looped),
/// `stop`, or the receiver is dropped.
pub fn spawn(options: ReplayOptions, stop: CancellationToken) -> mpsc::Receiver<MarketEvent> {
    let (tx, rx) = mpsc::channel(4096);
    let spawned = std::thread::Builder::new()
        .name("sigcast-replay".into())
        .spawn(move || play(&options, &tx, &stop));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the replay thread");
    }
    rx
}

fn play(options: &ReplayOptions, tx: &mpsc::Sender<MarketEvent>, stop: &CancellationToken) {
    let wake = Instant::now() + options.delay;
    while Instant::now() < wake {
        if stop.is_cancelled() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20).min(wake - Instant::now()));
    }
    let _playing = (
        super::stats::Planned::new(&options.stats),
        super::stats::Up::new(&options.stats, false),
    );
    let mut malformed = Malformed::new("replay").counting(options.stats.clone());
    // Symbols seen, per market (spot, futures), for the Gap events of a loop.
    let mut symbols: [BTreeSet<Symbol>; 2] = Default::default();
    let mut round = 0u64;
    loop {
        if round > 0 {
            // A loop restarts every id sequence: to strategies that is a gap.
            let seen = [Market::Spot, Market::Futures]
                .into_iter()
                .flat_map(|m| symbols[m as usize].iter().map(move |s| (m, s)));
            for (market, symbol) in seen {
                let event = MarketEvent {
                    market,
                    symbol: symbol.clone(),
                    exchange_time_ms: 0,
                    received_at: SystemTime::now(),
                    kind: MarketEventKind::Gap(Gap {
                        stream: "replay loop",
                        after_id: 0,
                        resumed_at: 0,
                    }),
                };
                if tx.blocking_send(event).is_err() {
                    return;
                }
            }
        }
        match play_once(options, tx, stop, &mut malformed, &mut symbols) {
            Ok(true) if options.looped && !stop.is_cancelled() => round += 1,
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, "replay stopped");
                break;
            }
        }
    }
    tracing::info!(malformed = malformed.total(), "replay finished");
}

/// Plays every file once; `Ok(true)` when it reached the end, `Ok(false)` when told to stop.
fn play_once(
    options: &ReplayOptions,
    tx: &mpsc::Sender<MarketEvent>,
    stop: &CancellationToken,
    malformed: &mut Malformed,
    symbols: &mut [BTreeSet<Symbol>; 2],
) -> Result<bool, RecordingError> {
    let mut merged = Merged::open(&options.paths)?;
    let started = Instant::now();
    let mut first_ns = None;
    while let Some((received_ns, parsed)) = merged.next_parsed(malformed) {
        if stop.is_cancelled() {
            return Ok(false);
        }
        if let (Speed::Factor(factor), true) = (options.speed, received_ns > 0) {
            let base = *first_ns.get_or_insert(received_ns);
            let offset = (received_ns - base).max(0) as f64 / factor;
            let due = started + Duration::from_nanos(offset as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if let Some(event) = parsed {
            let seen = &mut symbols[event.market as usize];
            if !seen.contains(&event.symbol) {
                seen.insert(event.symbol.clone());
            }
            if tx.blocking_send(event).is_err() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Progress through a [`Merged`]'s files.
#[derive(Clone)]
pub struct Meter {
    counters: Vec<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    total: u64,
}

impl Meter {
    /// 0 to 1.
    pub fn fraction(&self) -> f64 {
        let read: u64 = self
            .counters
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        if self.total == 0 {
            1.0
        } else {
            (read as f64 / self.total as f64).min(1.0)
        }
    }
}

/// Several recordings merged by receive time, parsed into market events. Blocking file reads:
/// use it on a plain thread.
pub struct Merged {
    readers: Vec<RecordingReader>,
    heap: BinaryHeap<Head>,
    /// Total size of the files, for progress.
    total_bytes: u64,
    primed: bool,
}

impl Merged {
    pub fn open(paths: &[PathBuf]) -> Result<Self, RecordingError> {
        let readers = paths
            .iter()
            .map(|p| RecordingReader::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        let total_bytes = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(Self {
            readers,
            heap: BinaryHeap::new(),
            total_bytes,
            primed: false,
        })
    }

    /// How far through the files it is, readable while it is being iterated.
    pub fn meter(&self) -> Meter {
        Meter {
            counters: self
                .readers
                .iter()
                .map(RecordingReader::consumed_counter)
                .collect(),
            total: self.total_bytes,
        }
    }

    /// Its market events, in order (unreadable input counted in `malformed`).
    pub fn events(mut self, mut malformed: Malformed) -> impl Iterator<Item = MarketEvent> {
        std::iter::from_fn(move || {
            loop {
                match self.next_parsed(&mut malformed)? {
                    (_, Some(event)) => return Some(event),
                    (_, None) => continue,
                }
            }
        })
    }

    /// The next message: its receive time, and its event if it is one (snapshots and control
    /// replies carry none). Unreadable lines and messages are counted in `malformed`.
    pub fn next_parsed(&mut self, malformed: &mut Malformed) -> Option<(i64, Option<MarketEvent>)> {
        if !self.primed {
            self.primed = true;
            for (file, reader) in self.readers.iter_mut().enumerate() {
                if let Some(recorded) = next_valid(reader, malformed) {
                    self.heap.push(Head { recorded, file });
                }
            }
        }
        let Head { recorded, file } = self.heap.pop()?;
        if let Some(next) = next_valid(&mut self.readers[file], malformed) {
            self.heap.push(Head {
                recorded: next,
                file,
            });
        }
        let event = match binance::parse(recorded.market, &recorded.text, SystemTime::now()) {
            Ok(Parsed::Event(event)) => Some(event),
            Ok(_) => None,
            Err(e) => {
                malformed.record(&e);
                None
            }
        };
        Some((recorded.received_ns, event))
    }
}

/// The next readable message of a file; unreadable lines are counted and skipped.
fn next_valid(reader: &mut RecordingReader, malformed: &mut Malformed) -> Option<Recorded> {
    loop {
        match reader.next()? {
            Ok(r) => return Some(r),
            Err(e) => malformed.record(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn merges_files_by_receive_time_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let trade = |id: u64, sym: &str| {
            format!(
                r#"{{"stream":"{}@trade","data":{{"e":"trade","E":1,"s":"{sym}","t":{id},"p":"1.5","q":"2","T":1,"m":false,"M":true}}}}"#,
                sym.to_lowercase()
            )
        };
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        std::fs::write(
            &a,
            [
                super::super::recording::json_line(
                    super::super::Market::Spot,
                    10,
                    &trade(1, "BTCUSDT"),
                ),
                "garbage".to_string(),
                super::super::recording::json_line(
                    super::super::Market::Spot,
                    30,
                    &trade(2, "BTCUSDT"),
                ),
            ]
            .join("\n"),
        )
        .unwrap();
        std::fs::write(
            &b,
            super::super::recording::json_line(
                super::super::Market::Spot,
                20,
                &trade(7, "ETHUSDT"),
            ),
        )
        .unwrap();
        let mut rx = spawn(
            ReplayOptions {
                paths: vec![a, b],
                speed: Speed::Max,
                looped: false,
                delay: Duration::ZERO,
                stats: Default::default(),
            },
            CancellationToken::new(),
        );
        let mut ids = Vec::new();
        while let Some(e) = rx.recv().await {
            if let MarketEventKind::Trade(t) = e.kind {
                ids.push((e.symbol, t.id));
            }
        }
        assert_eq!(
            ids,
            vec![
                ("BTCUSDT".into(), 1),
                ("ETHUSDT".into(), 7),
                ("BTCUSDT".into(), 2)
            ]
        );
    }
}
