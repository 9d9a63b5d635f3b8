//! Bollinger bands on closed candles. `re-entry` (default): buy when the close comes back
//! inside from below the lower band, sell from above the upper one. `breakout`: buy when the
//! close breaks above the upper band, sell when it breaks below the lower one.

use serde::Deserialize;

use crate::strategy::Side;
use crate::strategy::common::{Candle, CandleLogic};
use crate::strategy::indicators::{Bands, Bollinger};

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
    params: BollingerParams,
    bands: Bollinger,
    /// The previous close and its bands.
    last: Option<(f64, Bands)>,
}

impl BollingerBands {
    pub fn new(params: BollingerParams) -> Result<Self, String> {
        if params.period < 2 {
            return Err("params.period: must be at least 2".into());
        }
        if !(params.deviations > 0.0 && params.deviations.is_finite()) {
            return Err("params.deviations: must be greater than zero".into());
        }
        Ok(Self {
            bands: Bollinger::new(params.period, params.deviations),
            last: None,
            params,
        })
    }
}

impl CandleLogic for BollingerBands {
    fn warmup(&self) -> usize {
        self.params.period + 1
    }

    fn on_candle(&mut self, candle: &Candle) -> Option<(Side, String)> {
        let bands = self.bands.push(candle.close)?;
        let close = candle.close;
        let p = (self.params.period, self.params.deviations);
        match (self.last.replace((close, bands)), self.params.mode) {
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
        }
    }

    fn reset(&mut self) {
        self.bands.reset();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::{closes, on_candles, run};

    fn sides(mode: BandMode, prices: &[f64]) -> Vec<Side> {
        let params = BollingerParams {
            period: 4,
            deviations: 1.0,
            mode,
        };
        let mut s = on_candles(BollingerBands::new(params).unwrap());
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
