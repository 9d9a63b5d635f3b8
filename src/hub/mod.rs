//! The hub: numbers each signal (`seq`), serializes it once, journals it and then fans the
//! same bytes out to every session.
//!
//! Sessions subscribe to one bounded broadcast ring of ready-made frames. Cloning a frame is
//! a reference-count bump, so a signal costs one serialization however many clients listen,
//! and a session that falls more than the ring's capacity behind learns so (`Lagged`) instead
//! of making the server buffer for it.
//!
//! In cluster mode the hub does not number: signals go out to the cluster's stream through
//! an outbox ([`Outgoing`]), and come back numbered by the stream ([`Hub::deliver`]), the same
//! `seq` on every node.

mod contract;
pub mod feed;
mod frame;
pub mod history;
pub mod inbound;
pub mod journal;
pub mod keys;
mod prices;
pub mod proof;
pub mod track;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use history::History;

use crate::ledger::Ledger;
use crate::strategy::{Side, Signal};

pub use contract::{decode, encode, encode_seq};
pub use frame::Frame;
use prices::Prices;

/// A numbered signal as sessions receive it, with what their filters look at.
#[derive(Debug, Clone)]
pub struct Published {
    pub seq: u64,
    pub symbol: crate::market::Symbol,
    pub strategy: Arc<str>,
    pub frame: Frame,
    /// When the hub numbered it: fan-out latency is measured from here.
    pub at: std::time::Instant,
    /// When it went into the ring (after the journal committed and sealed it): how long a
    /// session then takes to get to it tells whether the runtime is busy (coalescing), apart
    /// from the journal's own time.
    pub offered: std::time::Instant,
}

/// A signal on its way to the cluster's stream (cluster mode).
#[derive(Debug)]
pub struct Outgoing {
    pub signal: Signal,
    /// The stream stores a signal once per id within its duplicate window: a retry, or the
    /// same signal from two producers during a takeover, is not stored twice.
    pub id: String,
    /// Told the `seq` the stream gave it (the publish API answers with it).
    pub ack: Option<oneshot::Sender<u64>>,
}

/// Why a publish was not confirmed. Only [`PublishError::Pending`] may still be stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Not queued: it will not be stored.
    #[error("the signal stream is not keeping up: too many signals waiting to be stored")]
    Full,
    /// Queued, and not stored within the wait: the stream has not taken it yet (cluster
    /// mode) or the journal has not committed it (a stalled disk). It may be stored later:
    /// retry with the same key, which stores it once.
    #[error(
        "the signal was not stored within {within:?}; it may still be: retry with the same id {id:?} to learn its seq"
    )]
    Pending { id: String, within: Duration },
    /// Single node: the journal could not commit it (it was broadcast, but not stored).
    #[error("{0}")]
    NotStored(String),
}

/// How long a publish through the API waits for the cluster's stream to store it before it
/// is answered as pending.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

/// A publish through the API, numbered (or queued for the stream) and not yet durable.
pub struct Submitted {
    /// The publish key: the publisher's `id`, or one made for it; a retry that names it is
    /// answered with this publish's `seq`, and stores nothing new.
    pub id: String,
    state: SubmitState,
}

enum SubmitState {
    /// Single node: numbered `seq`; durable once the journal has committed it.
    Numbered { seq: u64, listeners: usize },
    /// Cluster mode: stored once the stream says so, with the `seq` it gave.
    Queued(oneshot::Receiver<u64>),
}

impl Published {
    /// `signal` numbered `seq`, serialized once.
    pub fn of(seq: u64, signal: &Signal) -> Published {
        Self::framed(seq, signal, encode_seq(signal, seq))
    }

    /// `signal` numbered `seq`, as `frame` (serialized, and sealed, where it was stored).
    pub fn framed(seq: u64, signal: &Signal, frame: Frame) -> Published {
        Published {
            seq,
            symbol: signal.symbol.clone(),
            strategy: Arc::from(signal.strategy.as_str()),
            frame,
            at: std::time::Instant::now(),
            offered: std::time::Instant::now(),
        }
    }
}

/// Fan-out point between the strategy engine and the client sessions.
pub struct Hub {
    /// The shared ring of frames; its capacity is how many signals a session may lag.
    tx: broadcast::Sender<Published>,
    /// Slots in the ring: the capacity asked for, rounded up to a power of two as tokio's
    /// broadcast does. A session this far behind has lost signals.
    ring: usize,
    /// The last `seq` given out. Held while numbering and handing the signal on (to the
    /// journal, which broadcasts it once committed, or straight to the ring), so both see
    /// signals in `seq` order (nothing inside waits).
    seq: Mutex<u64>,
    /// Single node: the publish keys given out and their `seq`, so a retried publish is
    /// answered with the first one's `seq` and stored once (see [`keys::Keys`]).
    keys: Mutex<keys::Keys>,
    /// Where signals are kept, which decides who numbers them and when they are durable.
    mode: Mode,
    /// Names this process in the keys it makes for publishes that came without one.
    instance: u64,
    /// Publishes without a key so far, for the keys made for them.
    published: std::sync::atomic::AtomicU64,
    /// Latest prices and the symbols `test` replies pick from.
    prices: RwLock<Prices>,
    /// Market-data topics, relayed beside the signals (never through the ring).
    feed: Arc<feed::Feed>,
    /// Signals published since start, by strategy, then buys and sells (for `/metrics`).
    emitted: Mutex<HashMap<String, [u64; 2]>>,
    /// The live track record: every numbered signal paper-traded, marked to the market
    /// prices the pipeline passes through [`Hub::mark`]. Fed under the numbering lock, so in
    /// `seq` order.
    track: Mutex<Ledger>,
    /// Cluster mode: what the track record passes to the other nodes until the cluster
    /// takes it (see `cluster::marks`).
    relayed: Option<Mutex<track::Relayed>>,
}

/// Where a hub's signals are kept.
enum Mode {
    /// Numbered here and offered at once; nothing kept, no resume (tools, benchmarks).
    Memory,
    /// A single node: numbered here, committed to the SQLite journal, then offered; resumes
    /// read the journal.
    Journal {
        journal: Arc<journal::Journal>,
        /// The same journal, as resumes read it.
        history: Arc<dyn History>,
    },
    /// A cluster node: sent to the stream, which numbers them; they come back through
    /// [`Hub::deliver`], and resumes read the stream.
    Cluster {
        outbox: mpsc::Sender<Outgoing>,
        history: Arc<dyn History>,
        /// The producers' public keys, as the cluster announces them.
        keys: watch::Receiver<Arc<proof::KeySet>>,
    },
}

impl Hub {
    /// A hub for `symbols` whose sessions may fall `capacity` signals behind.
    pub fn new(symbols: Vec<String>, capacity: usize) -> Self {
        Self::build(symbols, capacity, None, 0)
    }

    /// A cluster node's hub: signals published here go to `outbox`, and sessions get what
    /// the cluster's stream delivers ([`Hub::deliver`]) after `last_seq`; resumes read
    /// `history`; `keys` are the producers' public keys, which sign what the stream stores.
    pub fn clustered(
        symbols: Vec<String>,
        capacity: usize,
        outbox: mpsc::Sender<Outgoing>,
        history: Arc<dyn History>,
        keys: watch::Receiver<Arc<proof::KeySet>>,
        last_seq: u64,
    ) -> Self {
        let mut hub = Self::build(symbols, capacity, None, last_seq);
        hub.mode = Mode::Cluster {
            outbox,
            history,
            keys,
        };
        hub.relayed = Some(Mutex::default());
        hub
    }

    /// A hub that journals every signal; numbering carries on after `last_seq`.
    pub fn with_journal(
        symbols: Vec<String>,
        capacity: usize,
        journal: journal::Journal,
        last_seq: u64,
    ) -> Self {
        Self::build(symbols, capacity, Some(journal), last_seq)
    }

    fn build(
        symbols: Vec<String>,
        capacity: usize,
        journal: Option<journal::Journal>,
        last_seq: u64,
    ) -> Self {
        let ring = capacity.max(1).next_power_of_two();
        let (tx, _) = broadcast::channel(ring);
        if let Some(journal) = &journal {
            journal.deliver_to(tx.clone());
        }
        let keys = keys::Keys::new(journal.as_ref().map(|j| j.take_keys()).unwrap_or_default());
        let mode = match journal.map(Arc::new) {
            Some(journal) => Mode::Journal {
                history: journal.clone(),
                journal,
            },
            None => Mode::Memory,
        };
        Self {
            tx,
            ring,
            seq: Mutex::new(last_seq),
            keys: Mutex::new(keys),
            mode,
            instance: rand::random(),
            published: Default::default(),
            prices: RwLock::new(Prices {
                order: symbols,
                last: HashMap::new(),
            }),
            feed: Arc::new(feed::Feed::new()),
            emitted: Mutex::new(HashMap::new()),
            track: Mutex::new(Ledger::default()),
            relayed: None,
        }
    }

    /// Numbers `signal`, serializes it once and offers it to every session, after the journal
    /// has committed it when there is one; returns how many listen. In cluster mode it goes
    /// to the stream, named by its content, so the same signal from two producers is stored
    /// once.
    pub fn publish(&self, signal: &Signal) -> usize {
        let Mode::Cluster { outbox, .. } = &self.mode else {
            return self.publish_numbered(signal, None).1;
        };
        let id = format!(
            "{}|{}|{}|{}|{}",
            signal.strategy,
            signal.symbol,
            signal.side.as_str(),
            signal.timestamp,
            signal.price
        );
        let out = Outgoing {
            signal: signal.clone(),
            id,
            ack: None,
        };
        if outbox.try_send(out).is_err() {
            tracing::error!(strategy = %signal.strategy, symbol = %signal.symbol, "signal dropped: {}", PublishError::Full);
        }
        self.tx.receiver_count()
    }

    /// Takes a signal from a publisher (the publish API): numbers it (single node) or queues
    /// it for the stream (cluster mode), at once, so that publishes keep their order. `id`
    /// is the publisher's idempotency key: a publish whose `sub` and `id` came before gets
    /// the first one's `seq` and is not stored again. [`Hub::confirm`] waits until it is
    /// durable.
    pub fn submit(
        &self,
        signal: &Signal,
        sub: &str,
        id: Option<&str>,
    ) -> Result<Submitted, PublishError> {
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                let n = self
                    .published
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("{:016x}-{n}", self.instance)
            }
        };
        let key = keys::key(sub, &id);
        let Mode::Cluster { outbox, .. } = &self.mode else {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            let (seq, listeners) = match keys.get(&key) {
                Some(seq) => (seq, self.tx.receiver_count()),
                None => {
                    let (seq, listeners) = self.publish_numbered(signal, Some(&key));
                    let oldest = self.journal().map_or(0, |j| j.oldest_seq());
                    keys.insert(key, seq, oldest);
                    (seq, listeners)
                }
            };
            return Ok(Submitted {
                id,
                state: SubmitState::Numbered { seq, listeners },
            });
        };
        let (ack, confirmed) = oneshot::channel();
        let out = Outgoing {
            signal: signal.clone(),
            id: key,
            ack: Some(ack),
        };
        outbox.try_send(out).map_err(|_| PublishError::Full)?;
        Ok(Submitted {
            id,
            state: SubmitState::Queued(confirmed),
        })
    }

    /// Waits until a submitted publish is durable: committed to the journal (single node) or
    /// stored by the stream (cluster mode), at most `within`. Returns its
    /// `seq` and how many listen. An ack sent after this survives a crash.
    pub async fn confirm(
        &self,
        submitted: Submitted,
        within: Duration,
    ) -> Result<(u64, usize), PublishError> {
        match submitted.state {
            SubmitState::Numbered { seq, listeners } => {
                if let Some(journal) = self.journal() {
                    match tokio::time::timeout(within, journal.wait_committed(seq)).await {
                        Ok(committed) => {
                            committed.map_err(|e| PublishError::NotStored(e.to_string()))?
                        }
                        // The writer still holds it and commits it when the disk lets it.
                        Err(_) => {
                            return Err(PublishError::Pending {
                                id: submitted.id,
                                within,
                            });
                        }
                    }
                }
                Ok((seq, listeners))
            }
            SubmitState::Queued(confirmed) => match tokio::time::timeout(within, confirmed).await {
                Ok(Ok(seq)) => Ok((seq, self.tx.receiver_count())),
                // The outbox keeps offering it to the stream until it is stored.
                _ => Err(PublishError::Pending {
                    id: submitted.id,
                    within,
                }),
            },
        }
    }

    /// Cluster mode: offers a signal the stream numbered `seq` to every session, as `frame`
    /// (the sealed frame the stream stores); one at or below the last delivered is dropped.
    /// Returns how many listen.
    pub fn deliver(&self, seq: u64, signal: &Signal, frame: Frame) -> usize {
        let mut last = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        if seq <= *last {
            return 0;
        }
        *last = seq;
        self.count(signal);
        self.trade(seq, signal);
        self.tx
            .send(Published::framed(seq, signal, frame))
            .unwrap_or(0)
    }

    /// As [`Hub::publish`] on a single node, returning the `seq` given too; a publish key
    /// is journaled with the signal, in the same commit.
    fn publish_numbered(&self, signal: &Signal, key: Option<&str>) -> (u64, usize) {
        self.count(signal);
        let mut last = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *last += 1;
        let seq = *last;
        self.trade(seq, signal);
        let published = Published::of(seq, signal);
        match self.journal() {
            // Write-ahead: the journal's writer broadcasts it once it is committed.
            Some(journal) => {
                journal.append(crate::clock::unix_now() as i64, published, key);
                (seq, self.tx.receiver_count())
            }
            None => (seq, self.tx.send(published).unwrap_or(0)),
        }
    }

    /// Counts a signal for `/metrics`.
    fn count(&self, signal: &Signal) {
        {
            let mut emitted = self.emitted.lock().unwrap_or_else(|p| p.into_inner());
            let side = usize::from(signal.side == Side::Sell);
            match emitted.get_mut(signal.strategy.as_str()) {
                Some(counts) => counts[side] += 1,
                None => {
                    let mut counts = [0; 2];
                    counts[side] = 1;
                    emitted.insert(signal.strategy.clone(), counts);
                }
            }
        }
    }

    /// Signals published since start: (strategy, side, count), sorted.
    pub fn emitted(&self) -> Vec<(String, Side, u64)> {
        let emitted = self.emitted.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(String, Side, u64)> = emitted
            .iter()
            .flat_map(|(strategy, [buys, sells])| {
                [
                    (strategy.clone(), Side::Buy, *buys),
                    (strategy.clone(), Side::Sell, *sells),
                ]
            })
            .collect();
        all.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        all
    }

    /// The last `seq` given out.
    pub fn last_seq(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The SQLite journal, on a single node.
    pub fn journal(&self) -> Option<&journal::Journal> {
        match &self.mode {
            Mode::Journal { journal, .. } => Some(journal),
            Mode::Memory | Mode::Cluster { .. } => None,
        }
    }

    /// The public keys that verify this node's signals (`GET /v1/journal/key`): the
    /// journal's, or the cluster's producers'; `None` for a hub that keeps nothing.
    pub fn public_keys(&self) -> Option<Arc<proof::KeySet>> {
        match &self.mode {
            Mode::Journal { journal, .. } => Some(journal.public_keys()),
            Mode::Cluster { keys, .. } => Some(keys.borrow().clone()),
            Mode::Memory => None,
        }
    }

    /// Whether signals go through a cluster's stream.
    pub fn is_clustered(&self) -> bool {
        matches!(self.mode, Mode::Cluster { .. })
    }

    /// Where resumes read, when signals are kept.
    pub fn history(&self) -> Option<&Arc<dyn History>> {
        match &self.mode {
            Mode::Journal { history, .. } | Mode::Cluster { history, .. } => Some(history),
            Mode::Memory => None,
        }
    }

    /// The market-data topics sessions subscribe to.
    pub fn feed(&self) -> &Arc<feed::Feed> {
        &self.feed
    }

    /// A receiver of every signal published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }

    /// How many signals a receiver may have waiting before the ring overwrites the oldest
    /// it has not taken (its next `recv` then reports it lagged).
    pub fn ring_size(&self) -> usize {
        self.ring
    }

    /// Sessions currently subscribed.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests;
