//! Bollinger bands (TA-Lib `BBANDS` with an SMA middle): the middle band plus and minus
//! `deviations` times the population standard deviation of the last `period` values.

use std::collections::VecDeque;

/// The three bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub upper: f64,
    pub middle: f64,
    pub lower: f64,
}

/// Bollinger bands over a sliding window.
#[derive(Debug, Clone)]
pub struct Bollinger {
    period: usize,
    deviations: f64,
    window: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl Bollinger {
    pub fn new(period: usize, deviations: f64) -> Self {
        assert!(period > 0, "Bollinger period must be positive");
        Self {
            period,
            deviations,
            window: VecDeque::with_capacity(period + 1),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    /// Adds a value; the bands once `period` values are in.
    pub fn push(&mut self, value: f64) -> Option<Bands> {
        self.window.push_back(value);
        self.sum += value;
        self.sum_sq += value * value;
        if self.window.len() > self.period {
            let old = self.window.pop_front().unwrap_or(0.0);
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        if self.window.len() < self.period {
            return None;
        }
        let n = self.period as f64;
        let mean = self.sum / n;
        // As TA-Lib: E[x^2] - E[x]^2, and no deviation when rounding makes it negative.
        let variance = self.sum_sq / n - mean * mean;
        let sd = if variance > 0.0 { variance.sqrt() } else { 0.0 };
        Some(Bands {
            upper: mean + self.deviations * sd,
            middle: mean,
            lower: mean - self.deviations * sd,
        })
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.period, self.deviations);
    }
}
