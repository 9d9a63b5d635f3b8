//! What every built-in strategy instance shares: who it is, its signal gate, and for candle
//! strategies the candles (built from trades with the exact [`KlineBuilder`]) and warm-up.

use rust_decimal::prelude::ToPrimitive;

use super::cooldown::Cooldown;
use super::{Side, Signal, Strategy};
use crate::market::kline::{KlineBuilder, UnsupportedInterval};
use crate::market::{Interval, Kline, Market, MarketEvent, MarketEventKind};

/// Identity and gating of one strategy instance.
#[derive(Debug, Clone)]
pub struct Common {
    pub name: String,
    pub market: Market,
    pub symbol: crate::market::Symbol,
    pub interval: Interval,
    pub cooldown: Cooldown,
}

impl Common {
    pub fn new(
        name: &str,
        market: Market,
        symbol: &str,
        interval: Interval,
        cooldown_ms: i64,
    ) -> Self {
        Self {
            name: name.to_string(),
            market,
            symbol: symbol.into(),
            interval,
            cooldown: Cooldown::new(cooldown_ms),
        }
    }

    /// The `aggTrade` stream candle-driven strategies need.
    pub fn trade_stream(&self) -> String {
        format!("{}@aggTrade", self.symbol.to_lowercase())
    }

    /// A signal at `price` for the moment `end_ms`, if the gate lets it through.
    pub fn signal(
        &mut self,
        side: Side,
        price: f64,
        end_ms: i64,
        reason: String,
    ) -> Option<Signal> {
        self.cooldown.allow(side, end_ms).then(|| Signal {
            side,
            symbol: self.symbol.clone(),
            price,
            timestamp: end_ms.div_euclid(1000),
            strategy: self.name.clone(),
            interval: self.interval.as_str().to_string(),
            reason,
        })
    }
}

/// A closed candle, in `f64` for indicators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// The first millisecond after the candle (its signals carry this time).
    pub end_ms: i64,
}

/// The logic of a strategy that works on closed candles only. [`OnCandles`] gives it candles,
/// history, warm-up and gating, so each built-in is just its indicator and its rule.
pub trait CandleLogic: Send {
    /// Closed candles needed before the rule can judge, counting the one a first signal could
    /// come on (indicator lookback plus the candle a crossing compares with). No signal goes
    /// out before that many candles were seen.
    fn warmup(&self) -> usize;
    /// Takes one closed candle; returns a signal side and its reason when the rule fires.
    fn on_candle(&mut self, candle: &Candle) -> Option<(Side, String)>;
    /// Forgets all indicator state.
    fn reset(&mut self);
}

/// A candle strategy instance: trades become closed candles, candles go to the logic, and
/// what the logic fires goes out when the instance is warm and the gate allows it.
pub struct OnCandles<L> {
    common: Common,
    builder: KlineBuilder,
    /// Closed candles fed since the last reset (history included).
    seen: usize,
    /// Trades before this time (ms) are already in the history fed; live ones are skipped.
    history_end_ms: i64,
    logic: L,
}

impl<L: CandleLogic> OnCandles<L> {
    pub fn new(common: Common, logic: L) -> Result<Self, UnsupportedInterval> {
        Ok(Self {
            builder: KlineBuilder::new(common.interval)?,
            common,
            seen: 0,
            history_end_ms: i64::MIN,
            logic,
        })
    }

    /// One closed candle through the logic; `live` is false for history, which only warms.
    fn candle(&mut self, kline: &Kline, live: bool, out: &mut Vec<Signal>) {
        let Some(candle) = to_candle(kline) else {
            return;
        };
        self.seen += 1;
        let fired = self.logic.on_candle(&candle);
        // No signal from a half-warmed indicator, and none from history.
        if let (Some((side, reason)), true) = (fired, live && self.seen >= self.logic.warmup()) {
            out.extend(
                self.common
                    .signal(side, candle.close, candle.end_ms, reason),
            );
        }
    }
}

impl<L: CandleLogic> Strategy for OnCandles<L> {
    fn common(&self) -> &Common {
        &self.common
    }

    fn warmup(&self) -> usize {
        self.logic.warmup()
    }

    fn on_history(&mut self, kline: &Kline) {
        if kline.interval != self.common.interval {
            return;
        }
        if kline.closed {
            self.candle(kline, false, &mut Vec::new());
            self.history_end_ms = kline.close_time_ms.saturating_add(1);
        } else {
            // The candle still open when history was taken: live trades continue it (its
            // high and low take the max and min, so a trade counted twice changes neither).
            self.builder.seed(kline.clone());
            self.history_end_ms = kline.open_time_ms;
        }
    }

    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        // Trades before `history_end_ms` are already in the history this instance was fed.
        let closed = match &event.kind {
            MarketEventKind::Trade(t) if t.time_ms >= self.history_end_ms => {
                self.builder.push_trade(t)
            }
            MarketEventKind::AggTrade(t) if t.time_ms >= self.history_end_ms => {
                self.builder.push_agg(t)
            }
            _ => None,
        };
        if let Some(kline) = closed {
            self.candle(&kline, true, out);
        }
    }

    fn on_gap(&mut self) {
        self.builder.reset();
        self.logic.reset();
        self.common.cooldown.reset();
        self.seen = 0;
        self.history_end_ms = i64::MIN;
    }
}

fn to_candle(k: &Kline) -> Option<Candle> {
    Some(Candle {
        high: k.high.to_f64()?,
        low: k.low.to_f64()?,
        close: k.close.to_f64()?,
        end_ms: k.close_time_ms.saturating_add(1),
    })
}
