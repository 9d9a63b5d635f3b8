//! RSI crossing its levels on closed candles: buy when it rises back above `oversold`, sell
//! when it falls back below `overbought`.

use serde::Deserialize;

use super::common::{Candles, Common};
use super::indicators::Rsi;
use super::{Side, Signal, Strategy};
use crate::market::MarketEvent;

/// `[strategy.params]` of `kind = "rsi"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RsiParams {
    pub period: usize,
    pub overbought: f64,
    pub oversold: f64,
}

impl Default for RsiParams {
    fn default() -> Self {
        Self {
            period: 14,
            overbought: 70.0,
            oversold: 30.0,
        }
    }
}

/// The RSI strategy for one symbol.
pub struct RsiLevels {
    common: Common,
    candles: Candles,
    params: RsiParams,
    rsi: Rsi,
    last: Option<f64>,
}

impl RsiLevels {
    pub fn new(common: Common, params: RsiParams) -> Result<Self, String> {
        if params.period < 2 {
            return Err("params.period: must be at least 2".into());
        }
        if !(0.0 < params.oversold
            && params.oversold < params.overbought
            && params.overbought < 100.0)
        {
            return Err(
                "params.oversold/params.overbought: need 0 < oversold < overbought < 100".into(),
            );
        }
        Ok(Self {
            candles: Candles::new(common.interval).map_err(|e| e.to_string())?,
            rsi: Rsi::new(params.period),
            last: None,
            common,
            params,
        })
    }
}

impl Strategy for RsiLevels {
    fn common(&self) -> &Common {
        &self.common
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let Some(candle) = self.candles.closed(event) else {
            return;
        };
        let Some(rsi) = self.rsi.push(candle.close) else {
            return;
        };
        let p = &self.params;
        let signal = match self.last.replace(rsi) {
            Some(prev) if prev < p.oversold && rsi >= p.oversold => Some((
                Side::Buy,
                format!("RSI({}) rose above {} to {rsi:.1}", p.period, p.oversold),
            )),
            Some(prev) if prev > p.overbought && rsi <= p.overbought => Some((
                Side::Sell,
                format!("RSI({}) fell below {} to {rsi:.1}", p.period, p.overbought),
            )),
            _ => None,
        };
        if let Some((side, reason)) = signal {
            out.extend(self.common.on_candle(side, &candle, reason));
        }
    }

    fn on_gap(&mut self) {
        self.candles.reset();
        self.rsi.reset();
        self.last = None;
        self.common.gate.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Interval, Market};
    use crate::strategy::testing::{closes, run};

    #[test]
    fn buys_out_of_oversold_and_sells_out_of_overbought() {
        let common = Common::new("r", Market::Spot, "BTCUSDT", Interval::S1, 0);
        let mut s = RsiLevels::new(
            common,
            RsiParams {
                period: 3,
                overbought: 70.0,
                oversold: 30.0,
            },
        )
        .unwrap();
        let prices = [10., 9., 8., 7., 6., 8., 9., 10., 11., 12., 10., 8., 7., 7.];
        let sides: Vec<Side> = run(&mut s, &closes(&prices))
            .iter()
            .map(|s| s.side)
            .collect();
        assert_eq!(sides, vec![Side::Buy, Side::Sell]);
    }
}
