//! Rolling highest and lowest values (TA-Lib `MAX` and `MIN`), for Donchian channels.

use std::collections::VecDeque;

/// The highest of the last `period` values, in amortized O(1) (a monotonic queue).
#[derive(Debug, Clone)]
pub struct RollingMax(Extreme);

/// The lowest of the last `period` values.
#[derive(Debug, Clone)]
pub struct RollingMin(Extreme);

#[derive(Debug, Clone)]
struct Extreme {
    period: usize,
    seen: usize,
    /// `(index, value)`, values decreasing (for max) from the front.
    queue: VecDeque<(usize, f64)>,
}

impl Extreme {
    fn new(period: usize) -> Self {
        assert!(period > 0, "window period must be positive");
        Self {
            period,
            seen: 0,
            queue: VecDeque::new(),
        }
    }

    fn push(&mut self, value: f64, better: impl Fn(f64, f64) -> bool) -> Option<f64> {
        let index = self.seen;
        self.seen += 1;
        while self.queue.back().is_some_and(|(_, v)| !better(*v, value)) {
            self.queue.pop_back();
        }
        self.queue.push_back((index, value));
        while self
            .queue
            .front()
            .is_some_and(|(i, _)| *i + self.period <= index)
        {
            self.queue.pop_front();
        }
        (self.seen >= self.period).then(|| self.queue.front().map(|(_, v)| *v).unwrap_or(value))
    }
}

impl RollingMax {
    pub fn new(period: usize) -> Self {
        Self(Extreme::new(period))
    }

    pub fn push(&mut self, value: f64) -> Option<f64> {
        self.0.push(value, |kept, new| kept > new)
    }

    pub fn reset(&mut self) {
        self.0 = Extreme::new(self.0.period);
    }
}

impl RollingMin {
    pub fn new(period: usize) -> Self {
        Self(Extreme::new(period))
    }

    pub fn push(&mut self, value: f64) -> Option<f64> {
        self.0.push(value, |kept, new| kept < new)
    }

    pub fn reset(&mut self) {
        self.0 = Extreme::new(self.0.period);
    }
}
