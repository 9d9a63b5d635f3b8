//! Exponential moving average (TA-Lib `EMA`): `k = 2 / (period + 1)`, seeded with the SMA of
//! the first `period` values.

/// An exponential moving average.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    k: f64,
    /// Values gathered for the seed, until `period` are in.
    seed_sum: f64,
    seen: usize,
    value: Option<f64>,
}

impl Ema {
    pub fn new(period: usize) -> Self {
        assert!(period > 0, "EMA period must be positive");
        Self {
            period,
            k: 2.0 / (period as f64 + 1.0),
            seed_sum: 0.0,
            seen: 0,
            value: None,
        }
    }

    /// Starts from an already computed seed (MACD seeds its EMAs itself, as TA-Lib does).
    pub fn seeded(period: usize, seed: f64) -> Self {
        let mut e = Self::new(period);
        e.seen = period;
        e.value = Some(seed);
        e
    }

    /// Adds a value; the average once `period` values are in.
    pub fn push(&mut self, value: f64) -> Option<f64> {
        match self.value {
            Some(prev) => {
                let next = (value - prev) * self.k + prev;
                self.value = Some(next);
            }
            None => {
                self.seed_sum += value;
                self.seen += 1;
                if self.seen == self.period {
                    self.value = Some(self.seed_sum / self.period as f64);
                }
            }
        }
        self.value
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.period);
    }
}
