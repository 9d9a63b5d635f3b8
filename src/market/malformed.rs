//! Counting bad upstream messages, and logging them at a rate limit so a flood cannot drown
//! the logs or slow the stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SourceStats;

/// Counts malformed or unknown upstream messages for one source.
#[derive(Debug)]
pub struct Malformed {
    /// Who is counting, e.g. `replay` or `spot#3`; appears in the log line.
    source: String,
    /// Every malformed message ever seen.
    total: u64,
    /// Seen since the last log line.
    unlogged: u64,
    last_log: Option<Instant>,
    /// At most one log line per this interval.
    every: Duration,
    /// Where the count is also kept for metrics, when someone watches.
    stats: Option<Arc<SourceStats>>,
}

impl Malformed {
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            total: 0,
            unlogged: 0,
            last_log: None,
            every: Duration::from_secs(10),
            stats: None,
        }
    }

    /// Also counts into `stats` (the source's metrics).
    pub fn counting(mut self, stats: Arc<SourceStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Counts one bad message; logs it unless a line was logged within the interval.
    pub fn record(&mut self, error: &dyn std::fmt::Display) {
        self.total += 1;
        if let Some(stats) = &self.stats {
            stats.malformed();
        }
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= self.every)
        {
            tracing::warn!(
                source = %self.source,
                total = self.total,
                since_last_log = self.unlogged,
                %error,
                "malformed upstream message skipped"
            );
            self.unlogged = 0;
            self.last_log = Some(now);
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_logs_rarely() {
        let mut m = Malformed::new("t");
        for _ in 0..1000 {
            m.record(&"bad");
        }
        assert_eq!(m.total(), 1000);
        assert_eq!(m.unlogged, 999, "one line logged, the rest counted");
    }
}
