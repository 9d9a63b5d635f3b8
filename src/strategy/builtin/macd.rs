//! MACD crossing its signal line on closed candles: buy when MACD crosses above, sell when it
//! crosses below.

use serde::Deserialize;

use crate::strategy::Side;
use crate::strategy::common::{Candle, CandleLogic};
use crate::strategy::indicators::Macd;

/// `[strategy.params]` of `kind = "macd"` (TA-Lib's 12/26/9 by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MacdParams {
    pub fast: usize,
    pub slow: usize,
    pub signal: usize,
}

impl Default for MacdParams {
    fn default() -> Self {
        Self {
            fast: 12,
            slow: 26,
            signal: 9,
        }
    }
}

/// The MACD strategy for one symbol.
pub struct MacdCross {
    params: MacdParams,
    macd: Macd,
    above: Option<bool>,
}

impl MacdCross {
    pub fn new(params: MacdParams) -> Result<Self, String> {
        if params.fast == 0 || params.slow <= params.fast || params.signal == 0 {
            return Err(
                "params.fast/params.slow/params.signal: need 0 < fast < slow and signal > 0".into(),
            );
        }
        Ok(Self {
            macd: Macd::new(params.fast, params.slow, params.signal),
            above: None,
            params,
        })
    }
}

impl CandleLogic for MacdCross {
    fn warmup(&self) -> usize {
        // The first signal-line value comes on candle slow + signal - 1; a crossing needs one more.
        self.params.slow + self.params.signal
    }

    fn on_candle(&mut self, candle: &Candle) -> Option<(Side, String)> {
        let m = self.macd.push(candle.close)?;
        if m.macd == m.signal {
            return None;
        }
        let above = m.macd > m.signal;
        if self.above.replace(above).is_none_or(|was| was == above) {
            return None;
        }
        let (side, dir) = if above {
            (Side::Buy, "above")
        } else {
            (Side::Sell, "below")
        };
        let p = &self.params;
        Some((
            side,
            format!(
                "MACD({},{},{}) crossed {dir} its signal",
                p.fast, p.slow, p.signal
            ),
        ))
    }

    fn reset(&mut self) {
        self.macd.reset();
        self.above = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{closes, on_candles, run};

    #[test]
    fn crosses_after_warm_up_only() {
        let mut s = on_candles(
            MacdCross::new(MacdParams {
                fast: 2,
                slow: 4,
                signal: 2,
            })
            .unwrap(),
        );
        // An accelerating fall (MACD stays below its signal), a rally, a fall.
        let prices = [
            100., 99., 97., 94., 90., 85., 79., 72., 64., 55., 60., 66., 73., 81., 90., 100., 111.,
            105., 98., 90., 81., 71., 60., 60.,
        ];
        let out = run(&mut s, &closes(&prices));
        let sides: Vec<Side> = out.iter().map(|s| s.side).collect();
        assert_eq!(sides, vec![Side::Buy, Side::Sell]);
        assert!(
            out[0].timestamp >= 5,
            "not before slow + signal - 1 candles"
        );
    }
}
