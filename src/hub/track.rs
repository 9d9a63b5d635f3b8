//! The live track record's feed: every numbered signal and the market's prices into the
//! hub's ledger, and its rebuilding from the journal after a restart.

use std::collections::HashMap;

use super::Hub;
use super::history::HistoryError;
use super::journal::CheckpointPage;
use crate::config::LedgerSettings;
use crate::ledger::{Checkpoint, Ledger, Rules};
use crate::market::Market;
use crate::strategy::Signal;

impl Hub {
    /// Hands a numbered signal to the track record, at the time it is about.
    pub(super) fn trade(&self, seq: u64, signal: &Signal) {
        let mut track = self.track.lock().unwrap_or_else(|p| p.into_inner());
        track.trade(signal, seq);
    }

    /// A market price at its market time: the latest price for `test` signals, and a mark
    /// for the track record. A cluster node also keeps it for the other nodes (see
    /// [`Hub::take_relayed`]).
    pub fn mark(&self, market: Market, symbol: &str, time_ms: i64, price: f64) {
        self.mark_track(market, symbol, time_ms, price);
        if let Some(relayed) = &self.relayed {
            let mut relayed = relayed.lock().unwrap_or_else(|p| p.into_inner());
            let relayed = &mut relayed.marks[market as usize];
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
    pub fn mark_track(&self, market: Market, symbol: &str, time_ms: i64, price: f64) {
        self.mark_price(symbol, price);
        let checkpoint = self
            .track
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mark_checked(market, symbol, time_ms, price);
        let Some(checkpoint) = checkpoint else {
            return;
        };
        // Kept for a restart to take the same samples: beside a single node's journal; a
        // cluster node hands it to the cluster, which keeps the leader's.
        if let Some(journal) = self.journal() {
            journal.keep_checkpoint(checkpoint);
        } else if let Some(relayed) = &self.relayed {
            let mut relayed = relayed.lock().unwrap_or_else(|p| p.into_inner());
            if relayed.checkpoints.len() < MAX_RELAYED_CHECKPOINTS {
                relayed.checkpoints.push(checkpoint);
            }
        }
    }

    /// Cluster mode: the prices and checkpoints since the last call.
    pub fn take_relayed(&self) -> Relayed {
        match &self.relayed {
            Some(relayed) => {
                std::mem::take(&mut *relayed.lock().unwrap_or_else(|p| p.into_inner()))
            }
            None => Relayed::default(),
        }
    }

    /// How the track record trades and marks each strategy (see [`crate::ledger::rules()`]).
    pub fn set_track_rules(&self, rules: Rules) {
        let mut track = self.track.lock().unwrap_or_else(|p| p.into_inner());
        track.set_rules(rules);
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
    /// order, among the checkpoints kept beside it (see [`Replay`]), before anything new is
    /// numbered (at startup), so a restart keeps the record. Returns the signals replayed.
    pub async fn rebuild_track(&self) -> Result<u64, HistoryError> {
        let Some(history) = self.history() else {
            return Ok(0);
        };
        let mut replay = Replay::default();
        let upto = self.last_seq();
        let mut after = 0;
        while after < upto {
            let (page, _) = history.read(after, upto).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            for p in &page {
                while !replay.restore_before(&mut self.track_lock(), p.seq) {
                    replay.add(checkpoints(history.as_ref(), replay.after_id()).await);
                }
                replay.signal(&mut self.track_lock(), p.seq, p.frame.as_str());
            }
        }
        while !replay.restore_before(&mut self.track_lock(), u64::MAX) {
            replay.add(checkpoints(history.as_ref(), replay.after_id()).await);
        }
        Ok(replay.replayed)
    }

    /// Every strategy's headline figures (for `/metrics`), as [`Hub::performance`] gives
    /// them. Computed under the lock: cheaper than the copy a whole report takes.
    pub fn track_headlines(&self) -> Vec<crate::ledger::Headline> {
        self.track_lock().headlines()
    }

    fn track_lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The next page of checkpoints; none when they cannot be read, so the rest of the record
/// is rebuilt from the signals' own prices rather than not at all.
async fn checkpoints(history: &dyn super::history::History, after_id: i64) -> CheckpointPage {
    history.checkpoints(after_id).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "track-record checkpoints unreadable; the curve from here is drawn from signal prices");
        CheckpointPage::default()
    })
}

/// Most checkpoints a cluster node holds between two takes (a second apart): a sample a
/// minute and each symbol's first price, so only a stalled cluster task reaches it.
const MAX_RELAYED_CHECKPOINTS: usize = 10_000;

/// What a cluster node's track record keeps for the other nodes until the cluster takes it.
#[derive(Debug, Default)]
pub struct Relayed {
    /// Each symbol's latest market time and price, by market (`Market as usize`): the
    /// leader's mark the other nodes' records.
    pub marks: [HashMap<String, (i64, f64)>; 2],
    /// The checkpoints taken (the leader's are kept in the cluster for rebuilds).
    pub checkpoints: Vec<Checkpoint>,
}

impl Relayed {
    /// Every mark as `(market, symbol, time, price)`.
    pub fn marks(self) -> impl Iterator<Item = (Market, String, i64, f64)> {
        let [spot, futures] = self.marks;
        let tag = |market: Market| {
            move |(symbol, (time_ms, price)): (String, (i64, f64))| (market, symbol, time_ms, price)
        };
        spot.into_iter()
            .map(tag(Market::Spot))
            .chain(futures.into_iter().map(tag(Market::Futures)))
    }
}

/// A record rebuilt from journaled signals and the checkpoints kept beside them
/// (`ledger::checkpoint`), each checkpoint taken again in its place among the signals, so the
/// equity samples are the ones taken live. Signals from before the first checkpoint (a
/// journal older than checkpoints, a cluster's stream, an export) mark their symbol at their
/// own price, the only price there is. Fed a page at a time by whoever reads the journal:
/// the server at startup ([`Hub::rebuild_track`]) and `sigcast performance --journal`.
#[derive(Debug, Default)]
pub struct Replay {
    /// Checkpoints read and not yet taken, in the order they were taken live.
    pending: std::collections::VecDeque<Checkpoint>,
    /// The row id of the last checkpoint read, where the next page starts.
    after_id: i64,
    /// Every checkpoint has been read.
    read_all: bool,
    /// The first checkpoint's `after_seq`: signals after it trade on the kept prices.
    first: Option<u64>,
    /// Signals paper-traded so far.
    pub replayed: u64,
}

impl Replay {
    /// Where the next page of checkpoints starts (a row id).
    pub fn after_id(&self) -> i64 {
        self.after_id
    }

    /// The next page of checkpoints.
    pub fn add(&mut self, page: CheckpointPage) {
        match page.last_id {
            Some(id) => self.after_id = id,
            None => self.read_all = true,
        }
        if self.first.is_none() {
            self.first = page.checkpoints.first().map(|c| c.after_seq);
        }
        self.pending.extend(page.checkpoints);
    }

    /// Takes again every checkpoint taken before `seq` was traded (`u64::MAX`: all the
    /// rest); `false` when it needs the next page of checkpoints ([`Replay::add`]) first.
    pub fn restore_before(&mut self, ledger: &mut Ledger, seq: u64) -> bool {
        loop {
            match self.pending.front() {
                Some(c) if c.after_seq < seq => {
                    ledger.restore(c);
                    self.pending.pop_front();
                }
                Some(_) => return true,
                None if self.read_all => return true,
                None => return false,
            }
        }
    }

    /// Paper-trades one journaled frame numbered `seq`: at the kept prices once checkpoints
    /// have begun, else (or for a symbol no checkpoint priced) marking at its own price.
    pub fn signal(&mut self, ledger: &mut Ledger, seq: u64, frame: &str) {
        let marked = self.first.is_some_and(|f| seq > f);
        let took = match super::contract::decode(frame) {
            Some((signal, _))
                if marked
                    && ledger
                        .market_for(&signal.strategy, &signal.symbol)
                        .is_some() =>
            {
                ledger.trade(&signal, seq);
                true
            }
            _ => replay_frame(ledger, seq, frame),
        };
        self.replayed += u64::from(took);
    }
}

/// Paper-trades one journaled frame numbered `seq` (its price marking its symbol first);
/// whether it was a signal.
pub fn replay_frame(ledger: &mut Ledger, seq: u64, frame: &str) -> bool {
    let Some(signal) = journaled(frame) else {
        return false;
    };
    ledger.mark_at_signal(&signal);
    ledger.trade(&signal, seq);
    true
}

/// A journaled frame's signal (the contract shape, as the hub wrote it).
fn journaled(frame: &str) -> Option<Signal> {
    super::contract::decode(frame).map(|(signal, _)| signal)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use tokio::sync::{mpsc, watch};

    use super::super::history::{History, HistoryError};
    use super::super::journal::Page;
    use super::super::{Published, contract};
    use super::*;
    use crate::strategy::Side;

    /// Ten signals, a buy and a sell in turn; its checkpoints cannot be read.
    struct Unreadable(Vec<Published>);

    impl History for Unreadable {
        fn read(&self, after: u64, upto: u64) -> BoxFuture<'_, Result<Page, HistoryError>> {
            let page = self
                .0
                .iter()
                .filter(|p| p.seq > after && p.seq <= upto)
                .cloned()
                .collect();
            Box::pin(async move { Ok((page, Some(1))) })
        }

        fn wait_readable(&self, _: u64) -> BoxFuture<'_, Result<(), HistoryError>> {
            Box::pin(async { Ok(()) })
        }

        fn checkpoints(&self, _: i64) -> BoxFuture<'_, Result<CheckpointPage, HistoryError>> {
            Box::pin(async { Err(HistoryError("the checkpoint stream is gone".into())) })
        }
    }

    /// Checkpoints that cannot be read leave the rebuild to the signals' own prices: every
    /// signal is still traded.
    #[tokio::test]
    async fn unreadable_checkpoints_still_rebuild_the_trades() {
        let signals: Vec<Published> = (1..=10u64)
            .map(|seq| {
                let signal = Signal {
                    side: if seq % 2 == 1 { Side::Buy } else { Side::Sell },
                    symbol: "BTCUSDT".into(),
                    price: 100.0 + seq as f64,
                    timestamp: 1_720_000_000 + seq as i64 * 60,
                    strategy: "s".into(),
                    interval: "1m".into(),
                    reason: String::new(),
                };
                let frame = contract::encode_seq(&signal, seq);
                Published::framed(seq, &signal, frame)
            })
            .collect();
        let (outbox, _) = mpsc::channel(1);
        let (_, keys) = watch::channel(Arc::default());
        let hub = Hub::clustered(vec![], 16, outbox, Arc::new(Unreadable(signals)), keys, 10);
        assert_eq!(hub.rebuild_track().await.unwrap(), 10);
        let report = hub.performance();
        assert_eq!(report.strategies[0].figures.closed_trades, 5);
    }
}
