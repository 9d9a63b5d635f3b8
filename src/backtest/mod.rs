//! Backtests: the strategy engine over recorded data as fast as the machine allows, and what
//! following its signals would have done.
//!
//! The engine is the one `serve` runs, fed the same events in the same order, so a backtest
//! gives exactly the signals a replay through `serve` does.

mod chart;
pub mod report;
pub mod runner;
mod track;

use std::collections::BTreeMap;

use crate::ledger::{self, Ledger};
use crate::market::MarketEvent;
use crate::strategy::{Engine, Signal};

/// Horizons, in candle intervals, after which each signal's move is measured.
pub const HORIZONS: [i64; 3] = [1, 5, 15];

/// A symbol's prices over the run: the last trade of each second, in time order.
#[derive(Debug, Default, Clone)]
pub struct Prices {
    /// `(Unix ms of the second's last trade, price)`.
    pub points: Vec<(i64, f64)>,
}

impl Prices {
    fn push(&mut self, time_ms: i64, price: f64) {
        match self.points.last_mut() {
            Some(last) if last.0.div_euclid(1000) == time_ms.div_euclid(1000) => {
                *last = (time_ms.max(last.0), price)
            }
            _ => self.points.push((time_ms, price)),
        }
    }

    /// The last price at or before `time_ms`; `None` past the end of the data.
    pub fn at(&self, time_ms: i64) -> Option<f64> {
        let last = self.points.last()?;
        if time_ms > last.0 {
            return None;
        }
        let i = self.points.partition_point(|p| p.0 <= time_ms);
        i.checked_sub(1).map(|i| self.points[i].1)
    }
}

/// The window of a run, Unix ms; events before `from` only warm strategies up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Run {
    pub signals: Vec<Signal>,
    pub prices: BTreeMap<String, Prices>,
    pub events: u64,
    /// The signals paper-traded: the track record's figures, trades and equity curves.
    pub track: ledger::Report,
}

/// Drives `engine` over `events`, and `ledger` over the window's prices and signals (each
/// signal numbered from 1, as a fresh server's journal numbers them); `progress` is called
/// every 8192 events.
pub fn run(
    engine: &mut Engine,
    events: impl Iterator<Item = MarketEvent>,
    window: Window,
    mut ledger: Ledger,
    mut progress: impl FnMut(u64),
) -> Run {
    let mut run = Run::default();
    let mut out = Vec::new();
    for event in events {
        let time = event.market_time_ms();
        if window.to.is_some_and(|to| time > to) {
            break;
        }
        run.events += 1;
        if run.events % 8_192 == 0 {
            progress(run.events);
        }
        let in_window = window.from.is_none_or(|from| time >= from);
        if let Some(price) = event.price() {
            if in_window {
                ledger.mark(event.market, &event.symbol, time, price);
            }
            run.prices
                .entry(event.symbol.to_string())
                .or_default()
                .push(time, price);
        }
        engine.on_event(&event, &mut out);
        if !in_window {
            out.clear(); // warm-up before the window
        }
        for signal in out.drain(..) {
            let seq = run.signals.len() as u64 + 1;
            ledger.trade(&signal, seq);
            run.signals.push(signal);
        }
    }
    engine.finish(&mut out);
    for signal in out.drain(..) {
        let seq = run.signals.len() as u64 + 1;
        ledger.trade(&signal, seq);
        run.signals.push(signal);
    }
    run.track = ledger.report();
    progress(run.events);
    run
}

/// Measured moves after one horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Horizon {
    /// Intervals after the signal.
    pub intervals: i64,
    /// Signals with data that far ahead.
    pub measured: usize,
    /// Share of those that moved the signalled way.
    pub hit_rate: f64,
    /// Average move in the signalled direction, percent.
    pub avg_move_pct: f64,
}

/// One strategy's results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub strategy: String,
    pub interval: String,
    pub signals: usize,
    pub buys: usize,
    pub sells: usize,
    pub horizons: Vec<Horizon>,
    /// Following the signals, long after a buy and short after a sell, one unit of notional
    /// per symbol, no fees, marked to the last price: the sum of returns, percent.
    pub pnl_pct: f64,
    /// Positions opened or reversed.
    pub trades: usize,
}

/// Per-strategy summaries, sorted by strategy name.
pub fn summarize(run: &Run) -> Vec<Summary> {
    let mut by_strategy: BTreeMap<&str, Vec<&Signal>> = BTreeMap::new();
    for s in &run.signals {
        by_strategy.entry(&s.strategy).or_default().push(s);
    }
    by_strategy
        .into_iter()
        .map(|(name, signals)| summarize_one(name, &signals, &run.prices))
        .collect()
}

fn summarize_one(name: &str, signals: &[&Signal], prices: &BTreeMap<String, Prices>) -> Summary {
    let interval = signals[0].interval.clone();
    let interval_ms = interval
        .parse::<crate::market::Interval>()
        .ok()
        .and_then(|i| i.fixed_millis())
        .unwrap_or(60_000);
    let direction = |s: &Signal| if s.side.as_str() == "buy" { 1.0 } else { -1.0 };
    let horizons = HORIZONS
        .iter()
        .map(|&h| {
            let moves: Vec<f64> = signals
                .iter()
                .filter_map(|s| {
                    let later = prices
                        .get(s.symbol.as_str())?
                        .at(s.timestamp * 1000 + h * interval_ms)?;
                    Some(direction(s) * (later - s.price) / s.price * 100.0)
                })
                .collect();
            let n = moves.len();
            Horizon {
                intervals: h,
                measured: n,
                hit_rate: if n == 0 {
                    0.0
                } else {
                    moves.iter().filter(|m| **m > 0.0).count() as f64 / n as f64
                },
                avg_move_pct: if n == 0 {
                    0.0
                } else {
                    moves.iter().sum::<f64>() / n as f64
                },
            }
        })
        .collect();
    // Stop-and-reverse per symbol.
    let mut pnl = 0.0;
    let mut trades = 0;
    let mut positions: BTreeMap<&str, (f64, f64)> = BTreeMap::new(); // symbol -> (dir, entry)
    for s in signals {
        let dir = direction(s);
        if let Some((held, entry)) = positions.get(s.symbol.as_str()) {
            if *held == dir {
                continue;
            }
            pnl += held * (s.price - entry) / entry * 100.0;
        }
        positions.insert(&s.symbol, (dir, s.price));
        trades += 1;
    }
    for (symbol, (held, entry)) in positions {
        if let Some(last) = prices.get(symbol).and_then(|p| p.points.last()) {
            pnl += held * (last.1 - entry) / entry * 100.0;
        }
    }
    Summary {
        strategy: name.to_string(),
        interval,
        signals: signals.len(),
        buys: signals.iter().filter(|s| direction(s) > 0.0).count(),
        sells: signals.iter().filter(|s| direction(s) < 0.0).count(),
        horizons,
        pnl_pct: pnl,
        trades,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Side;

    fn signal(side: Side, price: f64, ts: i64) -> Signal {
        Signal {
            side,
            symbol: "BTCUSDT".into(),
            price,
            timestamp: ts,
            strategy: "s".into(),
            interval: "1s".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn hit_rates_moves_and_pnl() {
        let mut prices = Prices::default();
        for (sec, p) in [(0, 100.0), (1, 101.0), (5, 110.0), (10, 99.0), (20, 90.0)] {
            prices.push(sec * 1000, p);
        }
        assert_eq!(prices.at(4_000), Some(101.0));
        assert_eq!(prices.at(21_000), None, "past the data");
        let run = Run {
            signals: vec![signal(Side::Buy, 100.0, 0), signal(Side::Sell, 110.0, 5)],
            prices: [("BTCUSDT".to_string(), prices)].into(),
            events: 0,
            track: Default::default(),
        };
        let s = &summarize(&run)[0];
        assert_eq!((s.signals, s.buys, s.sells, s.trades), (2, 1, 1, 2));
        // After 1 s: buy 100 -> 101 (+1 %), sell 110 -> 110 (0 %, not a hit).
        assert_eq!(s.horizons[0].measured, 2);
        assert_eq!(s.horizons[0].hit_rate, 0.5);
        assert!((s.horizons[0].avg_move_pct - 0.5).abs() < 1e-9);
        // After 15 s: buy -> 99 (-1 %), sell at 5 -> 90 at 20 (+18.18 %).
        assert_eq!(s.horizons[2].measured, 2);
        // Long 100 -> 110 (+10 %), then short 110 -> 90 at the end (+18.18 %).
        assert!(
            (s.pnl_pct - (10.0 + 20.0 / 110.0 * 100.0)).abs() < 1e-9,
            "{}",
            s.pnl_pct
        );
    }
}
