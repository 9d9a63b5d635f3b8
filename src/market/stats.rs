//! What the market source counts about itself: connections, reconnects, gaps, messages and
//! malformed input, read by the admin listener's metrics and readiness.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::MarketEventKind;

/// The event kinds counted, as their `kind` label (Binance's stream names).
pub const KINDS: [&str; 8] = [
    "trade",
    "aggTrade",
    "kline",
    "bookTicker",
    "ticker",
    "depth",
    "reconnected",
    "gap",
];

/// Counters one market source shares with whoever observes it. Relaxed atomics: each is a
/// figure of its own, read now and then.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Connections the source means to hold open (live shards; 1 for a replay or the
    /// synthetic market while it plays).
    planned: AtomicI64,
    /// Of those, connected and subscribed now.
    connected: AtomicI64,
    /// Successful connects: first ones, reconnects and rotations' new connections.
    connects: AtomicU64,
    /// Connects that followed a lost connection.
    reconnects: AtomicU64,
    /// Holes found in an id or candle sequence.
    gaps_detected: AtomicU64,
    /// Of those, filled from the REST history so strategies saw nothing missing.
    gaps_backfilled: AtomicU64,
    /// Messages skipped because they did not parse or were of an unknown stream.
    malformed: AtomicU64,
    /// Events handed on, by [`KINDS`].
    events: [AtomicU64; KINDS.len()],
}

/// A point-in-time copy of [`SourceStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSnapshot {
    pub planned: i64,
    pub connected: i64,
    pub connects: u64,
    pub reconnects: u64,
    pub gaps_detected: u64,
    pub gaps_backfilled: u64,
    pub malformed: u64,
    /// Events by kind, in [`KINDS`] order.
    pub events: [u64; KINDS.len()],
}

impl SourceStats {
    /// One more connection the source keeps up (a shard starts, a replay begins).
    pub fn plan(&self) {
        self.planned.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection the source no longer keeps (a shard stops, a replay ends).
    pub fn unplan(&self) {
        self.planned.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection is up and subscribed; `again` when it replaces a lost one.
    pub fn connected(&self, again: bool) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
        if again {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A rotation's fresh connection is subscribed: a connect, though the connection it
    /// replaces was not lost (it closes after the overlap), so `connected` does not change.
    pub fn rotated(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection went down.
    pub fn disconnected(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn gap_detected(&self) {
        self.gaps_detected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gap_backfilled(&self) {
        self.gaps_backfilled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one event by its kind.
    pub fn event(&self, kind: &MarketEventKind) {
        let i = match kind {
            MarketEventKind::Trade(_) => 0,
            MarketEventKind::AggTrade(_) => 1,
            MarketEventKind::Kline(_) => 2,
            MarketEventKind::BookTicker(_) => 3,
            MarketEventKind::Ticker(_) => 4,
            MarketEventKind::Depth(_) => 5,
            MarketEventKind::Reconnected => 6,
            MarketEventKind::Gap(_) => 7,
        };
        self.events[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Every connection the source plans is up (and there is at least one).
    pub fn all_connected(&self) -> bool {
        let planned = self.planned.load(Ordering::Relaxed);
        planned > 0 && self.connected.load(Ordering::Relaxed) >= planned
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        SourceSnapshot {
            planned: self.planned.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            gaps_detected: self.gaps_detected.load(Ordering::Relaxed),
            gaps_backfilled: self.gaps_backfilled.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            events: std::array::from_fn(|i| self.events[i].load(Ordering::Relaxed)),
        }
    }
}

/// Holds one planned connection for as long as it lives, so every way out of a source's
/// task gives it back.
pub struct Planned<'a>(&'a SourceStats);

impl<'a> Planned<'a> {
    pub fn new(stats: &'a SourceStats) -> Self {
        stats.plan();
        Planned(stats)
    }
}

impl Drop for Planned<'_> {
    fn drop(&mut self) {
        self.0.unplan();
    }
}

/// Marks a connection up for as long as it lives.
pub struct Up<'a>(&'a SourceStats);

impl<'a> Up<'a> {
    pub fn new(stats: &'a SourceStats, again: bool) -> Self {
        stats.connected(again);
        Up(stats)
    }
}

impl Drop for Up<'_> {
    fn drop(&mut self) {
        self.0.disconnected();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_give_back_what_they_hold() {
        let stats = SourceStats::default();
        assert!(!stats.all_connected(), "nothing planned is not connected");
        let plan = Planned::new(&stats);
        assert!(!stats.all_connected());
        {
            let _up = Up::new(&stats, false);
            assert!(stats.all_connected());
        }
        let _up = Up::new(&stats, true);
        let s = stats.snapshot();
        assert_eq!(
            (s.planned, s.connected, s.connects, s.reconnects),
            (1, 1, 2, 1)
        );
        drop(plan);
        assert_eq!(stats.snapshot().planned, 0);
    }

    #[test]
    fn events_count_by_kind() {
        let stats = SourceStats::default();
        stats.event(&MarketEventKind::Reconnected);
        stats.event(&MarketEventKind::Reconnected);
        let s = stats.snapshot();
        assert_eq!(
            s.events[KINDS.iter().position(|k| *k == "reconnected").unwrap()],
            2
        );
        assert_eq!(s.events.iter().sum::<u64>(), 2);
    }
}
