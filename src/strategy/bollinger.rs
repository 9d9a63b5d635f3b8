//! Bollinger bands on closed candles. `re-entry` (default): buy when the close comes back
//! inside from below the lower band, sell from above the upper one. `breakout`: buy when the
//! close breaks above the upper band, sell when it breaks below the lower one.

use serde::Deserialize;

use super::common::{Candles, Common};
use super::indicators::{Bands, Bollinger};
use super::{Side, Signal, Strategy};
use crate::market::MarketEvent;

/// Which band event signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BandMode {
    #[default]
    ReEntry,
    Breakout,
}

/// `[strategy.params]` of `kind = "bollinger"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BollingerParams {
    pub period: usize,
    pub deviations: f64,
    pub mode: BandMode,
}

impl Default for BollingerParams {
    fn default() -> Self {
        Self {
            period: 20,
            deviations: 2.0,
            mode: BandMode::ReEntry,
        }
    }
}

/// The Bollinger strategy for one symbol.
pub struct BollingerBands {
    common: Common,
    candles: Candles,
    params: BollingerParams,
    bands: Bollinger,
    /// The previous close and its bands.
    last: Option<(f64, Bands)>,
}

impl BollingerBands {
    pub fn new(common: Common, params: BollingerParams) -> Result<Self, String> {
        if params.period < 2 {
            return Err("params.period: must be at least 2".into());
        }
        if !(params.deviations > 0.0 && params.deviations.is_finite()) {
            return Err("params.deviations: must be greater than zero".into());
        }
        Ok(Self {
            candles: Candles::new(common.interval).map_err(|e| e.to_string())?,
            bands: Bollinger::new(params.period, params.deviations),
            last: None,
            common,
            params,
        })
    }
}

impl Strategy for BollingerBands {
    fn common(&self) -> &Common {
        &self.common
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let Some(candle) = self.candles.closed(event) else {
            return;
        };
        let Some(bands) = self.bands.push(candle.close) else {
            return;
        };
        let close = candle.close;
        let p = (self.params.period, self.params.deviations);
        let signal = match (self.last.replace((close, bands)), self.params.mode) {
            (Some((prev, b)), BandMode::ReEntry) if prev < b.lower && close >= bands.lower => {
                Some((
                    Side::Buy,
                    format!("closed back inside the lower band ({}, {})", p.0, p.1),
                ))
            }
            (Some((prev, b)), BandMode::ReEntry) if prev > b.upper && close <= bands.upper => {
                Some((
                    Side::Sell,
                    format!("closed back inside the upper band ({}, {})", p.0, p.1),
                ))
            }
            (Some((prev, b)), BandMode::Breakout) if prev <= b.upper && close > bands.upper => {
                Some((
                    Side::Buy,
                    format!("broke above the upper band ({}, {})", p.0, p.1),
                ))
            }
            (Some((prev, b)), BandMode::Breakout) if prev >= b.lower && close < bands.lower => {
                Some((
                    Side::Sell,
                    format!("broke below the lower band ({}, {})", p.0, p.1),
                ))
            }
            _ => None,
        };
        if let Some((side, reason)) = signal {
            out.extend(self.common.on_candle(side, &candle, reason));
        }
    }

    fn on_gap(&mut self) {
        self.candles.reset();
        self.bands.reset();
        self.last = None;
        self.common.gate.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Interval, Market};
    use crate::strategy::testing::{closes, run};

    fn sides(mode: BandMode, prices: &[f64]) -> Vec<Side> {
        let common = Common::new("b", Market::Spot, "BTCUSDT", Interval::S1, 0);
        let params = BollingerParams {
            period: 4,
            deviations: 1.0,
            mode,
        };
        let mut s = BollingerBands::new(common, params).unwrap();
        run(&mut s, &closes(prices))
            .iter()
            .map(|s| s.side)
            .collect()
    }

    #[test]
    fn re_entry_and_breakout() {
        let dip = [10., 10.5, 10., 10.5, 10., 6., 10., 10.3, 10.];
        assert_eq!(sides(BandMode::ReEntry, &dip), vec![Side::Buy]);
        assert_eq!(sides(BandMode::Breakout, &dip), vec![Side::Sell]);
    }
}
