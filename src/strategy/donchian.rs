//! Donchian channel breakout on closed candles: buy when the close breaks above the highest
//! high of the previous `period` candles, sell when it breaks below their lowest low.

use serde::Deserialize;

use super::common::{Candles, Common};
use super::indicators::{RollingMax, RollingMin};
use super::{Side, Signal, Strategy};
use crate::market::MarketEvent;

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
    common: Common,
    candles: Candles,
    period: usize,
    highs: RollingMax,
    lows: RollingMin,
    /// The channel of the previous `period` candles (not including the current one).
    channel: Option<(f64, f64)>,
}

impl Donchian {
    pub fn new(common: Common, params: DonchianParams) -> Result<Self, String> {
        if params.period < 2 {
            return Err("params.period: must be at least 2".into());
        }
        Ok(Self {
            candles: Candles::new(common.interval).map_err(|e| e.to_string())?,
            period: params.period,
            highs: RollingMax::new(params.period),
            lows: RollingMin::new(params.period),
            channel: None,
            common,
        })
    }
}

impl Strategy for Donchian {
    fn common(&self) -> &Common {
        &self.common
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let Some(candle) = self.candles.closed(event) else {
            return;
        };
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
        if let Some((side, reason)) = signal {
            out.extend(self.common.on_candle(side, &candle, reason));
        }
    }

    fn on_gap(&mut self) {
        self.candles.reset();
        self.highs.reset();
        self.lows.reset();
        self.channel = None;
        self.common.gate.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Interval, Market};
    use crate::strategy::testing::{closes, run};

    #[test]
    fn breakouts_of_the_previous_channel() {
        let common = Common::new("d", Market::Spot, "BTCUSDT", Interval::S1, 0);
        let mut s = Donchian::new(common, DonchianParams { period: 3 }).unwrap();
        let prices = [10., 11., 10.5, 10.8, 12., 11.5, 11., 9., 9.];
        let out = run(&mut s, &closes(&prices));
        let got: Vec<(Side, f64)> = out.iter().map(|s| (s.side, s.price)).collect();
        assert_eq!(got, vec![(Side::Buy, 12.0), (Side::Sell, 9.0)]);
    }
}
