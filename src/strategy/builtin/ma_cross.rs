//! Moving-average crossover on closed candles: buy when the fast average crosses above the
//! slow one, sell when it crosses below.

use serde::Deserialize;

use crate::strategy::Side;
use crate::strategy::common::{Candle, CandleLogic};
use crate::strategy::indicators::{Ema, Sma};

/// Which moving average to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    #[default]
    Sma,
    Ema,
}

/// `[strategy.params]` of `kind = "ma_cross"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaCrossParams {
    /// Fast average period, in candles.
    pub fast: usize,
    /// Slow average period, in candles (greater than `fast`).
    pub slow: usize,
    pub average: Average,
}

impl Default for MaCrossParams {
    fn default() -> Self {
        Self {
            fast: 9,
            slow: 21,
            average: Average::Sma,
        }
    }
}

/// The configured average over closes.
#[derive(Debug, Clone)]
enum MovingAverage {
    Simple(Sma),
    Exponential(Ema),
}

impl MovingAverage {
    fn new(kind: Average, period: usize) -> Self {
        match kind {
            Average::Sma => MovingAverage::Simple(Sma::new(period)),
            Average::Ema => MovingAverage::Exponential(Ema::new(period)),
        }
    }

    fn push(&mut self, value: f64) -> Option<f64> {
        match self {
            MovingAverage::Simple(a) => a.push(value),
            MovingAverage::Exponential(a) => a.push(value),
        }
    }

    fn reset(&mut self) {
        match self {
            MovingAverage::Simple(a) => a.reset(),
            MovingAverage::Exponential(a) => a.reset(),
        }
    }
}

/// The crossover strategy for one symbol.
pub struct MaCross {
    params: MaCrossParams,
    fast: MovingAverage,
    slow: MovingAverage,
    /// Whether fast was above slow at the last closed candle; a change is a crossover.
    above: Option<bool>,
}

impl MaCross {
    pub fn new(params: MaCrossParams) -> Result<Self, String> {
        if params.fast == 0 || params.slow <= params.fast {
            return Err("params.fast/params.slow: need 0 < fast < slow".into());
        }
        Ok(Self {
            fast: MovingAverage::new(params.average, params.fast),
            slow: MovingAverage::new(params.average, params.slow),
            above: None,
            params,
        })
    }
}

impl CandleLogic for MaCross {
    fn warmup(&self) -> usize {
        // The slow average is full on candle `slow`; a crossing compares it with the next.
        self.params.slow + 1
    }

    fn on_candle(&mut self, candle: &Candle) -> Option<(Side, String)> {
        let (Some(fast), Some(slow)) = (self.fast.push(candle.close), self.slow.push(candle.close))
        else {
            return None; // still warming up: no signal from a half-filled average
        };
        if fast == slow {
            return None;
        }
        let above = fast > slow;
        let crossed = self.above.is_some_and(|was| was != above);
        self.above = Some(above);
        if !crossed {
            return None;
        }
        let (side, dir) = if above {
            (Side::Buy, "above")
        } else {
            (Side::Sell, "below")
        };
        let avg = match self.params.average {
            Average::Sma => "SMA",
            Average::Ema => "EMA",
        };
        let reason = format!(
            "{avg}({}) crossed {dir} {avg}({})",
            self.params.fast, self.params.slow
        );
        Some((side, reason))
    }

    fn reset(&mut self) {
        self.fast.reset();
        self.slow.reset();
        self.above = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::common::OnCandles;
    use crate::strategy::testing::{closes, on_candles, run};

    fn strategy(average: Average) -> OnCandles<MaCross> {
        on_candles(
            MaCross::new(MaCrossParams {
                fast: 2,
                slow: 3,
                average,
            })
            .unwrap(),
        )
    }

    #[test]
    fn emits_buy_then_sell_on_crossings() {
        // A trade at second i closes candle i-1.
        let out = run(
            &mut strategy(Average::Sma),
            &closes(&[10., 9., 8., 7., 9., 12., 13., 9., 6., 5., 5.]),
        );
        let sides: Vec<_> = out.iter().map(|s| s.side).collect();
        assert_eq!(sides, vec![Side::Buy, Side::Sell]);
        assert_eq!(out[0].price, 12.0);
        assert_eq!(out[0].timestamp, 6);
        assert_eq!(out[0].reason, "SMA(2) crossed above SMA(3)");
    }

    #[test]
    fn no_signal_while_warming_up() {
        assert!(run(&mut strategy(Average::Ema), &closes(&[1., 100., 1.])).is_empty());
    }

    #[test]
    fn bad_params_name_the_key() {
        let err = MaCross::new(MaCrossParams {
            fast: 5,
            slow: 5,
            average: Average::Sma,
        })
        .err()
        .unwrap();
        assert!(err.contains("params.fast"), "{err}");
    }
}
