//! The live track record's feed: every numbered signal and the market's prices into the
//! hub's ledger, and its rebuilding from the journal after a restart.

use std::collections::HashMap;

use super::history::HistoryError;
use super::{Hub, Published};
use crate::config::LedgerSettings;
use crate::ledger::Ledger;
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
        let mut track = self.track.lock().unwrap_or_else(|p| p.into_inner());
        track.mark(symbol, time_ms, price);
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

    /// Paper-trades the signals the journal holds again, in `seq` order, before anything
    /// new is numbered (at startup), so a restart keeps the record's trades. The journal has
    /// no market prices between signals: each signal's price marks its symbol, so the equity
    /// curve before the restart is drawn from signal to signal. Returns the signals replayed.
    pub async fn rebuild_track(&self) -> Result<u64, HistoryError> {
        let Some(history) = self.history() else {
            return Ok(0);
        };
        let upto = self.last_seq();
        let (mut after, mut replayed) = (0, 0);
        while after < upto {
            let (page, _) = history.read(after, upto).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            let mut track = self.track.lock().unwrap_or_else(|p| p.into_inner());
            replayed += replay(&mut track, &page);
        }
        Ok(replayed)
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
