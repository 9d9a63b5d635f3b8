//! Donchian channel breakout on closed candles: buy when the close breaks above the highest
//! high of the previous `period` candles, sell when it breaks below their lowest low.

use serde::Deserialize;

use crate::strategy::Side;
use crate::strategy::common::{Candle, CandleLogic};
use crate::strategy::indicators::{RollingMax, RollingMin};

/// `[strategy.params]` of `kind = "donchian"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DonchianParams {
    pub period: usize,
}

impl Default for DonchianParams {
    fn default() -> Self {
        Self { period: 20 }
    }
}

/// The Donchian strategy for one symbol.
pub struct Donchian {
    period: usize,
    highs: RollingMax,
    lows: RollingMin,
    /// The channel of the previous `period` candles (not including the current one).
    channel: Option<(f64, f64)>,
}

impl Donchian {
    pub fn new(params: DonchianParams) -> Result<Self, String> {
        if params.period < 2 {
            return Err("params.period: must be at least 2".into());
        }
        Ok(Self {
            period: params.period,
            highs: RollingMax::new(params.period),
            lows: RollingMin::new(params.period),
            channel: None,
        })
    }
}

impl CandleLogic for Donchian {
    fn warmup(&self) -> usize {
        self.period + 1
    }

    fn on_candle(&mut self, candle: &Candle) -> Option<(Side, String)> {
        let signal = match self.channel {
            Some((upper, _)) if candle.close > upper => Some((
                Side::Buy,
                format!("closed above the {}-candle high {upper}", self.period),
            )),
            Some((_, lower)) if candle.close < lower => Some((
                Side::Sell,
                format!("closed below the {}-candle low {lower}", self.period),
            )),
            _ => None,
        };
        let upper = self.highs.push(candle.high);
        let lower = self.lows.push(candle.low);
        self.channel = upper.zip(lower);
        signal
    }

    fn reset(&mut self) {
        self.highs.reset();
        self.lows.reset();
        self.channel = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{closes, on_candles, run};

    #[test]
    fn breakouts_of_the_previous_channel() {
        let mut s = on_candles(Donchian::new(DonchianParams { period: 3 }).unwrap());
        let prices = [10., 11., 10.5, 10.8, 12., 11.5, 11., 9., 9.];
        let out = run(&mut s, &closes(&prices));
        let got: Vec<(Side, f64)> = out.iter().map(|s| (s.side, s.price)).collect();
        assert_eq!(got, vec![(Side::Buy, 12.0), (Side::Sell, 9.0)]);
    }
}
