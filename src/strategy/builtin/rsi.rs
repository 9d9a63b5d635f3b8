//! RSI crossing its levels on closed candles: buy when it rises back above `oversold`, sell
//! when it falls back below `overbought`.

use serde::Deserialize;

use crate::strategy::Side;
use crate::strategy::common::{Candle, CandleLogic};
use crate::strategy::indicators::Rsi;

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
    params: RsiParams,
    rsi: Rsi,
    last: Option<f64>,
}

impl RsiLevels {
    pub fn new(params: RsiParams) -> Result<Self, String> {
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
            rsi: Rsi::new(params.period),
            last: None,
            params,
        })
    }
}

impl CandleLogic for RsiLevels {
    fn warmup(&self) -> usize {
        // The first RSI needs period + 1 closes; a crossing compares it with the next.
        self.params.period + 2
    }

    fn on_candle(&mut self, candle: &Candle) -> Option<(Side, String)> {
        let rsi = self.rsi.push(candle.close)?;
        let p = &self.params;
        match self.last.replace(rsi) {
            Some(prev) if prev < p.oversold && rsi >= p.oversold => Some((
                Side::Buy,
                format!("RSI({}) rose above {} to {rsi:.1}", p.period, p.oversold),
            )),
            Some(prev) if prev > p.overbought && rsi <= p.overbought => Some((
                Side::Sell,
                format!("RSI({}) fell below {} to {rsi:.1}", p.period, p.overbought),
            )),
            _ => None,
        }
    }

    fn reset(&mut self) {
        self.rsi.reset();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{closes, on_candles, run};

    #[test]
    fn buys_out_of_oversold_and_sells_out_of_overbought() {
        let mut s = on_candles(
            RsiLevels::new(RsiParams {
                period: 3,
                overbought: 70.0,
                oversold: 30.0,
            })
            .unwrap(),
        );
        let prices = [10., 9., 8., 7., 6., 8., 9., 10., 11., 12., 10., 8., 7., 7.];
        let sides: Vec<Side> = run(&mut s, &closes(&prices))
            .iter()
            .map(|s| s.side)
            .collect();
        assert_eq!(sides, vec![Side::Buy, Side::Sell]);
    }
}
