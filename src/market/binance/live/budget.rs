//! The outgoing-message budget of one upstream connection.
//!
//! Binance closes a connection (1008, then bans) that sends more than 5 (spot) or 10
//! (futures) messages per second, pongs and control messages included. tungstenite answers
//! pings by itself, so one message per second is always left free for those pongs.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// A sliding one-second window of sent messages.
#[derive(Debug)]
pub struct Budget {
    /// Messages sigcast itself may send in any one-second window.
    per_second: usize,
    /// When the messages of the current window were sent.
    sent: VecDeque<Instant>,
}

/// Slack added to the window so clock granularity on either side never tips it over.
const MARGIN: Duration = Duration::from_millis(50);

impl Budget {
    /// A budget for a connection Binance limits to `limit` messages per second.
    pub fn new(limit: u32) -> Self {
        let per_second = (limit.saturating_sub(1)).max(1) as usize;
        Self {
            per_second,
            sent: VecDeque::with_capacity(per_second),
        }
    }

    /// Counts a message that goes out regardless of the budget: the pong tungstenite sends
    /// for every ping it reads.
    pub fn note_sent(&mut self) {
        self.sent.push_back(Instant::now());
    }

    /// Waits until one more message may be sent, and counts it.
    pub async fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            while self
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1) + MARGIN)
            {
                self.sent.pop_front();
            }
            if self.sent.len() < self.per_second {
                // Never more than the budget in flight, even counting noted pongs.
                self.sent.push_back(now);
                return;
            }
            let release = self.sent.len() - self.per_second;
            let oldest = self.sent[release];
            tokio::time::sleep_until(oldest + Duration::from_secs(1) + MARGIN).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_budget_in_any_second() {
        let mut b = Budget::new(5);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..20 {
            b.acquire().await;
            times.push(Instant::now().duration_since(start));
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 4,
                "{in_window} messages within a second of {t:?}"
            );
        }
        // 20 messages at 4 per second take about 4 seconds, not much more.
        assert!(times[19] < Duration::from_secs(5), "{:?}", times[19]);
    }

    #[tokio::test(start_paused = true)]
    async fn pongs_take_their_share() {
        let mut b = Budget::new(5);
        let start = Instant::now();
        b.note_sent();
        b.note_sent();
        for _ in 0..3 {
            b.acquire().await;
        }
        // Two pongs and two requests fill the window; the third request waits for it.
        assert!(Instant::now().duration_since(start) >= Duration::from_secs(1));
    }
}
