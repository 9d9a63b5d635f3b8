//! The `test` command: synthetic signals for one client alone, within a token bucket.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::{Flow, Session, error_reply};
use crate::clock::unix_now;
use crate::server::wire;

/// Token bucket for `test` requests: `burst` at once, then one per `interval`.
pub(super) struct TestBudget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TestBudget {
    pub(super) fn new(burst: u32, interval: Duration) -> Self {
        Self {
            tokens: burst as f64,
            burst: burst as f64,
            per_second: 1.0 / interval.as_secs_f64().max(1e-3),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Session {
    /// `test`: synthetic signals for this client alone, within its rate limit.
    pub(super) async fn on_test(&mut self) -> Result<Flow, WsError> {
        if !self.tests.take(Instant::now()) {
            let interval = self.shared.settings.test_interval;
            let reply = error_reply(
                "rate_limited",
                &format!(
                    "too many test requests: one per {} after a burst of {}",
                    humantime::format_duration(interval),
                    self.shared.settings.test_burst
                ),
            );
            self.write([reply]).await?;
            return Ok(Flow::Continue);
        }
        let n = self.tests_served;
        self.tests_served += 1;
        // Only symbols and strategies the token may see: a test shows no other data.
        let scope = self.filter.scope();
        let strategy = match &scope.strategies {
            Some(list) if !list.is_empty() => list[n % list.len()].as_str(),
            _ => "test",
        };
        let allows = |symbol: &str| scope.allows_symbol(symbol);
        let allowed = scope
            .symbols
            .is_some()
            .then_some(&allows as &dyn Fn(&str) -> bool);
        let reply = match self
            .shared
            .hub
            .test_frames(n, unix_now() as i64, allowed, strategy)
        {
            Some(frames) => frames.map(|frame| wire::text(&frame)),
            None => {
                let symbols = scope.symbols.as_deref().unwrap_or_default().join(", ");
                let reply = error_reply(
                    "test_unavailable",
                    &format!("no symbol of this token's scope ({symbols}) is tracked here yet"),
                );
                return self.write([reply]).await.map(|()| Flow::Continue);
            }
        };
        self.write(reply).await?;
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_budget_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TestBudget::new(3, Duration::from_secs(1));
        b.last = t0;
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        assert!(b.take(t0 + Duration::from_millis(1100)));
    }
}
