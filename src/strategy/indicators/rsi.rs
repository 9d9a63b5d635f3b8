//! Relative strength index (TA-Lib `RSI`) with Wilder's smoothing: the first average gain
//! and loss are plain means of `period` changes, then `avg = (avg * (period - 1) + x) / period`.

/// Wilder's RSI, 0 to 100 (0 when nothing moved at all, as TA-Lib).
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    previous: Option<f64>,
    changes: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    pub fn new(period: usize) -> Self {
        assert!(period > 0, "RSI period must be positive");
        Self {
            period,
            previous: None,
            changes: 0,
            gain: 0.0,
            loss: 0.0,
        }
    }

    /// Adds a value; the RSI once `period` changes (`period + 1` values) are in.
    pub fn push(&mut self, value: f64) -> Option<f64> {
        let previous = self.previous.replace(value)?;
        let change = value - previous;
        let (up, down) = if change > 0.0 {
            (change, 0.0)
        } else {
            (0.0, -change)
        };
        let n = self.period as f64;
        self.changes += 1;
        if self.changes <= self.period {
            self.gain += up;
            self.loss += down;
            if self.changes < self.period {
                return None;
            }
            self.gain /= n;
            self.loss /= n;
        } else {
            self.gain = (self.gain * (n - 1.0) + up) / n;
            self.loss = (self.loss * (n - 1.0) + down) / n;
        }
        let total = self.gain + self.loss;
        Some(if total.abs() < 1e-14 {
            0.0
        } else {
            100.0 * self.gain / total
        })
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.period);
    }
}
