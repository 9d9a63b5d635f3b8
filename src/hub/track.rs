//! The live track record's feed: every numbered signal and the market's prices into the
//! hub's ledger, and its rebuilding from the journal after a restart.

use std::collections::HashMap;

use super::history::HistoryError;
use super::{Hub, Published};
use crate::config::LedgerSettings;
use crate::ledger::{Checkpoint, Ledger};
use crate::strategy::Signal;

impl Hub {
    /// Hands a numbered signal to the track record, at the time it is about.
    pub(super) fn trade(&self, seq: u64, signal: &Signal) {
        let mut track = self.track.lock().unwrap_or_else(|p| p.into_inner());
        track.trade(signal, seq);
    }

    /// A market price at its market time: the latest price for `test` signals, and a mark
    /// for the track record. A cluster node also keeps it for the other nodes (see
    /// [`Hub::take_relayed_marks`]).
    pub fn mark(&self, symbol: &str, time_ms: i64, price: f64) {
        self.mark_track(symbol, time_ms, price);
        if let Some(relayed) = &self.relayed {
            let mut relayed = relayed.lock().unwrap_or_else(|p| p.into_inner());
            match relayed.get_mut(symbol) {
                Some(latest) => *latest = (time_ms, price),
                None => {
                    relayed.insert(symbol.to_string(), (time_ms, price));
                }
            }
        }
    }

    /// A price another node followed (cluster mode: the leader's): marks the track record
    /// and sets the latest price, and is not relayed again.
    pub fn mark_track(&self, symbol: &str, time_ms: i64, price: f64) {
        self.mark_price(symbol, price);
        let checkpoint = self
            .track
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mark_checked(symbol, time_ms, price);
        // A single node keeps what a restart needs to take the same samples.
        if let (Some(checkpoint), Some(journal)) = (checkpoint, self.journal()) {
            journal.keep_checkpoint(checkpoint);
        }
    }

    /// Cluster mode: each symbol's latest price and its time since the last call, for the
    /// nodes that do not follow the market.
    pub fn take_relayed_marks(&self) -> Vec<(String, i64, f64)> {
        let Some(relayed) = &self.relayed else {
            return Vec::new();
        };
        let mut relayed = relayed.lock().unwrap_or_else(|p| p.into_inner());
        relayed
            .drain()
            .map(|(symbol, (time_ms, price))| (symbol, time_ms, price))
            .collect()
    }

    /// How the track record trades: `defaults` for every strategy, `rules` for those whose
    /// definitions say (see [`crate::ledger::rules`]).
    pub fn set_track_rules(
        &self,
        defaults: LedgerSettings,
        rules: HashMap<String, LedgerSettings>,
    ) {
        let mut track = self.track.lock().unwrap_or_else(|p| p.into_inner());
        track.set_rules(defaults, rules);
    }

    /// The rules the track record trades a strategy with none of its own by.
    pub fn track_defaults(&self) -> LedgerSettings {
        self.track
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .defaults()
    }

    /// The live track record: every strategy's figures, per symbol, trades and equity.
    /// Computed from a copy taken under the lock: numbering takes the same lock for every
    /// signal, and a report's figures take far longer than the copy.
    pub fn performance(&self) -> crate::ledger::Report {
        let copy = self.track.lock().unwrap_or_else(|p| p.into_inner()).clone();
        copy.report()
    }

    /// Paper-trades the signals the journal (or the cluster's stream) holds again, in `seq`
    /// order, before anything new is numbered (at startup), so a restart keeps the record.
    /// A single node's checkpoints (`ledger::checkpoint`) are taken again in their places
    /// among the signals, so its equity samples are the ones it took live. Signals from
    /// before the first checkpoint (a journal older than checkpoints, or the stream) mark their
    /// symbol at their own price, the only price there is. Returns the signals replayed.
    pub async fn rebuild_track(&self) -> Result<u64, HistoryError> {
        let Some(history) = self.history() else {
            return Ok(0);
        };
        let mut checkpoints = Checkpoints::new(self.journal());
        let first = checkpoints.first_after_seq().await?;
        let upto = self.last_seq();
        let (mut after, mut replayed) = (0, 0);
        while after < upto {
            let (page, _) = history.read(after, upto).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            for p in &page {
                while let Some(c) = checkpoints.next_before(p.seq).await? {
                    self.track_lock().restore(&c);
                }
                let mut track = self.track_lock();
                let marked = first.is_some_and(|f| p.seq > f);
                let took = match super::contract::decode(p.frame.as_str()) {
                    Some((signal, _)) if marked && track.has_price(&signal.symbol) => {
                        track.trade(&signal, p.seq);
                        true
                    }
                    _ => replay_frame(&mut track, p.seq, p.frame.as_str()),
                };
                replayed += u64::from(took);
            }
        }
        while let Some(c) = checkpoints.next_before(u64::MAX).await? {
            self.track_lock().restore(&c);
        }
        Ok(replayed)
    }

    fn track_lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A single node's checkpoints, read a page at a time as the rebuild reaches them.
struct Checkpoints<'j> {
    journal: Option<&'j super::journal::Journal>,
    page: std::collections::VecDeque<Checkpoint>,
    after_id: i64,
    done: bool,
}

impl<'j> Checkpoints<'j> {
    fn new(journal: Option<&'j super::journal::Journal>) -> Self {
        Checkpoints {
            journal,
            page: Default::default(),
            after_id: 0,
            done: journal.is_none(),
        }
    }

    /// The first checkpoint's `after_seq`, `None` when there is none.
    async fn first_after_seq(&mut self) -> Result<Option<u64>, HistoryError> {
        self.fill().await?;
        Ok(self.page.front().map(|c| c.after_seq))
    }

    /// The next checkpoint when it was taken before `seq` was traded.
    async fn next_before(&mut self, seq: u64) -> Result<Option<Checkpoint>, HistoryError> {
        self.fill().await?;
        match self.page.front() {
            Some(c) if c.after_seq < seq => Ok(self.page.pop_front()),
            _ => Ok(None),
        }
    }

    async fn fill(&mut self) -> Result<(), HistoryError> {
        if !self.page.is_empty() || self.done {
            return Ok(());
        }
        let Some(journal) = self.journal else {
            return Ok(());
        };
        let page = journal
            .checkpoints(self.after_id)
            .await
            .map_err(|e| HistoryError(e.to_string()))?;
        match page.last() {
            Some((id, _)) => self.after_id = *id,
            None => self.done = true,
        }
        self.page.extend(page.into_iter().map(|(_, c)| c));
        Ok(())
    }
}

/// Paper-trades journaled signals into `ledger`, each marking its symbol at its own price
/// first (the journal holds no other prices); returns how many it took.
pub fn replay(ledger: &mut Ledger, page: &[Published]) -> u64 {
    let replayed = page
        .iter()
        .filter(|p| replay_frame(ledger, p.seq, p.frame.as_str()))
        .count();
    replayed as u64
}

/// Paper-trades one journaled frame numbered `seq` (its price marking its symbol first);
/// whether it was a signal.
pub fn replay_frame(ledger: &mut Ledger, seq: u64, frame: &str) -> bool {
    let Some(signal) = journaled(frame) else {
        return false;
    };
    ledger.mark(
        &signal.symbol,
        signal.timestamp.saturating_mul(1000),
        signal.price,
    );
    ledger.trade(&signal, seq);
    true
}

/// A journaled frame's signal (the contract shape, as the hub wrote it).
fn journaled(frame: &str) -> Option<Signal> {
    super::contract::decode(frame).map(|(signal, _)| signal)
}
