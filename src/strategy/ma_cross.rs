//! Moving-average crossover on closed candles: buy when the fast average crosses above the slow.

use super::indicators::{Ema, Sma};
use super::{Side, Signal, Strategy};
use rust_decimal::prelude::ToPrimitive;

use crate::market::kline::KlineBuilder;
use crate::market::{Interval, Market, MarketEvent, MarketEventKind};

/// Which moving average to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    Sma,
    Ema,
}

/// The configured average over closes, from the shared indicators.
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

    /// Adds a value; returns the average once `period` values are in.
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

/// Settings of one crossover instance.
#[derive(Debug, Clone)]
pub struct MaCrossParams {
    pub name: String,
    pub market: Market,
    pub symbol: String,
    /// Candle interval (one of Binance's fixed ones, `1s` to `1d`); carried in signals.
    pub interval: Interval,
    pub fast: usize,
    pub slow: usize,
    pub average: Average,
}

/// The crossover strategy for one symbol.
pub struct MaCross {
    params: MaCrossParams,
    /// Candles built from trades in exact decimals, as Binance builds its klines.
    candles: KlineBuilder,
    fast: MovingAverage,
    slow: MovingAverage,
    /// Sign of (fast - slow) at the last closed candle; a change of sign is a crossover.
    above: Option<bool>,
}

impl MaCross {
    /// Fails for intervals without a fixed length (`3d`, `1w`, `1M`).
    pub fn new(params: MaCrossParams) -> Result<Self, crate::market::kline::UnsupportedInterval> {
        Ok(Self {
            candles: KlineBuilder::new(params.interval)?,
            fast: MovingAverage::new(params.average, params.fast),
            slow: MovingAverage::new(params.average, params.slow),
            above: None,
            params,
        })
    }
}

impl Strategy for MaCross {
    fn name(&self) -> &str {
        &self.params.name
    }

    fn market(&self) -> Market {
        self.params.market
    }

    fn symbol(&self) -> &str {
        &self.params.symbol
    }

    fn streams(&self) -> Vec<String> {
        vec![format!("{}@aggTrade", self.params.symbol.to_lowercase())]
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let closed = match &event.kind {
            MarketEventKind::Trade(t) => self.candles.push_trade(t),
            MarketEventKind::AggTrade(t) => self.candles.push_agg(t),
            _ => return,
        };
        let Some(candle) = closed else {
            return;
        };
        let Some(close) = candle.close.to_f64() else {
            return;
        };
        let (Some(fast), Some(slow)) = (self.fast.push(close), self.slow.push(close)) else {
            return; // still warming up: no signal from a half-filled average
        };
        if fast == slow {
            return;
        }
        let above = fast > slow;
        let crossed = self.above.is_some_and(|was| was != above);
        self.above = Some(above);
        if !crossed {
            return;
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
        out.push(Signal {
            side,
            symbol: self.params.symbol.clone(),
            price: close,
            // The candle's end: Binance's close time is its last millisecond.
            timestamp: (candle.close_time_ms + 1).div_euclid(1000),
            strategy: self.params.name.clone(),
            interval: self.params.interval.as_str().to_string(),
            reason: format!(
                "{avg}({}) crossed {dir} {avg}({})",
                self.params.fast, self.params.slow
            ),
        });
    }

    fn on_gap(&mut self) {
        self.candles.reset();
        self.fast.reset();
        self.slow.reset();
        self.above = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::market::{Decimal, Trade};

    fn trade(t_ms: i64, price: f64) -> MarketEvent {
        MarketEvent {
            market: Market::Spot,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: t_ms,
            received_at: SystemTime::UNIX_EPOCH,
            kind: MarketEventKind::Trade(Trade {
                id: 0,
                price: Decimal::try_from(price).unwrap(),
                quantity: Decimal::ONE,
                time_ms: t_ms,
                buyer_is_maker: false,
            }),
        }
    }

    fn run(average: Average, closes: &[f64]) -> Vec<Signal> {
        let mut s = MaCross::new(MaCrossParams {
            name: "t".into(),
            market: Market::Spot,
            symbol: "BTCUSDT".into(),
            interval: Interval::S1,
            fast: 2,
            slow: 3,
            average,
        })
        .unwrap();
        let mut out = Vec::new();
        for (i, &p) in closes.iter().enumerate() {
            s.on_event(&trade(i as i64 * 1000, p), &mut out);
        }
        out
    }

    #[test]
    fn emits_buy_then_sell_on_crossings() {
        // A trade at second i closes candle i-1, so closes lag by one trade.
        let out = run(
            Average::Sma,
            &[10., 9., 8., 7., 9., 12., 13., 9., 6., 5., 5.],
        );
        let sides: Vec<_> = out.iter().map(|s| s.side).collect();
        assert_eq!(sides, vec![Side::Buy, Side::Sell]);
        assert_eq!(out[0].price, 12.0);
        assert_eq!(out[0].timestamp, 6);
        assert_eq!(out[0].reason, "SMA(2) crossed above SMA(3)");
    }

    #[test]
    fn no_signal_while_warming_up() {
        assert!(run(Average::Ema, &[1., 100., 1.]).is_empty());
    }

    #[test]
    fn ema_is_seeded_with_sma() {
        let mut ma = MovingAverage::new(Average::Ema, 3);
        assert_eq!(ma.push(1.0), None);
        assert_eq!(ma.push(2.0), None);
        assert_eq!(ma.push(3.0), Some(2.0));
        assert_eq!(ma.push(6.0), Some(4.0));
    }
}
