//! MACD (TA-Lib `MACD`, 12/26/9 by default): fast EMA minus slow EMA, its signal EMA and
//! the histogram.
//!
//! As TA-Lib does, both EMAs start on the same value: the slow one is seeded with the SMA of
//! the first `slow` values, the fast one with the SMA of the `fast` values ending there (not
//! the first `fast`). The signal EMA is seeded with the SMA of the first `signal` MACD values,
//! and nothing is output before the signal exists.

use std::collections::VecDeque;

use super::Ema;

/// One MACD reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdOutput {
    pub macd: f64,
    pub signal: f64,
    pub histogram: f64,
}

/// MACD with its signal line.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: usize,
    slow: usize,
    signal_period: usize,
    /// The first `slow` values, for the seeds.
    warmup: VecDeque<f64>,
    emas: Option<(Ema, Ema)>,
    signal: Ema,
}

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        assert!(
            0 < fast && fast < slow && signal > 0,
            "MACD needs 0 < fast < slow and signal > 0"
        );
        Self {
            fast,
            slow,
            signal_period: signal,
            warmup: VecDeque::with_capacity(slow),
            emas: None,
            signal: Ema::new(signal),
        }
    }

    /// Adds a value; a reading once the signal line exists (`slow + signal - 1` values).
    pub fn push(&mut self, value: f64) -> Option<MacdOutput> {
        let macd = match &mut self.emas {
            Some((fast, slow)) => fast.push(value)? - slow.push(value)?,
            None => {
                self.warmup.push_back(value);
                if self.warmup.len() < self.slow {
                    return None;
                }
                let slow_seed = self.warmup.iter().sum::<f64>() / self.slow as f64;
                let fast_seed =
                    self.warmup.iter().skip(self.slow - self.fast).sum::<f64>() / self.fast as f64;
                self.warmup.clear();
                self.emas = Some((
                    Ema::seeded(self.fast, fast_seed),
                    Ema::seeded(self.slow, slow_seed),
                ));
                fast_seed - slow_seed
            }
        };
        let signal = self.signal.push(macd)?;
        Some(MacdOutput {
            macd,
            signal,
            histogram: macd - signal,
        })
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.fast, self.slow, self.signal_period);
    }
}
