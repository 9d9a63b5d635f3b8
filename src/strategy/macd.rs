//! MACD crossing its signal line on closed candles: buy when MACD crosses above, sell when it
//! crosses below.

use serde::Deserialize;

use super::common::{Candles, Common};
use super::indicators::Macd;
use super::{Side, Signal, Strategy};
use crate::market::MarketEvent;

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
    common: Common,
    candles: Candles,
    params: MacdParams,
    macd: Macd,
    above: Option<bool>,
}

impl MacdCross {
    pub fn new(common: Common, params: MacdParams) -> Result<Self, String> {
        if params.fast == 0 || params.slow <= params.fast || params.signal == 0 {
            return Err(
                "params.fast/params.slow/params.signal: need 0 < fast < slow and signal > 0".into(),
            );
        }
        Ok(Self {
            candles: Candles::new(common.interval).map_err(|e| e.to_string())?,
            macd: Macd::new(params.fast, params.slow, params.signal),
            above: None,
            common,
            params,
        })
    }
}

impl Strategy for MacdCross {
    fn common(&self) -> &Common {
        &self.common
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let Some(candle) = self.candles.closed(event) else {
            return;
        };
        let Some(m) = self.macd.push(candle.close) else {
            return;
        };
        if m.macd == m.signal {
            return;
        }
        let above = m.macd > m.signal;
        if self.above.replace(above).is_some_and(|was| was != above) {
            let (side, dir) = if above {
                (Side::Buy, "above")
            } else {
                (Side::Sell, "below")
            };
            let p = &self.params;
            let reason = format!(
                "MACD({},{},{}) crossed {dir} its signal",
                p.fast, p.slow, p.signal
            );
            out.extend(self.common.on_candle(side, &candle, reason));
        }
    }

    fn on_gap(&mut self) {
        self.candles.reset();
        self.macd.reset();
        self.above = None;
        self.common.gate.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Interval, Market};
    use crate::strategy::testing::{closes, run};

    #[test]
    fn crosses_after_warm_up_only() {
        let common = Common::new("m", Market::Spot, "BTCUSDT", Interval::S1, 0);
        let mut s = MacdCross::new(
            common,
            MacdParams {
                fast: 2,
                slow: 4,
                signal: 2,
            },
        )
        .unwrap();
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
