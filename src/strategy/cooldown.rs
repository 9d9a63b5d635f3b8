//! Signal gating per strategy instance: a cooldown after each signal, and no repeat of the
//! side just signalled (a second `buy` before any `sell` is a duplicate).

use super::Side;

/// Decides whether a signal may go out.
#[derive(Debug, Clone)]
pub struct Cooldown {
    cooldown_ms: i64,
    /// The last signal that went out: its side and time (exchange time, ms).
    last: Option<(Side, i64)>,
}

impl Cooldown {
    pub fn new(cooldown_ms: i64) -> Self {
        Self {
            cooldown_ms,
            last: None,
        }
    }

    /// True (and remembered) when a `side` signal at `time_ms` may go out.
    pub fn allow(&mut self, side: Side, time_ms: i64) -> bool {
        if let Some((last_side, at)) = self.last {
            if last_side == side || time_ms - at < self.cooldown_ms {
                return false;
            }
        }
        self.last = Some((side, time_ms));
        true
    }

    /// Forgets the last signal (after a gap the instance starts over).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_cooldown() {
        let mut g = Cooldown::new(10_000);
        assert!(g.allow(Side::Buy, 0));
        assert!(!g.allow(Side::Buy, 60_000), "a second buy is a duplicate");
        assert!(!g.allow(Side::Sell, 5_000), "inside the cooldown");
        assert!(g.allow(Side::Sell, 10_000));
        assert!(g.allow(Side::Buy, 20_000));
    }
}
