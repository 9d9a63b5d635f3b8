//! Strategies: deterministic, synchronous logic that turns [`MarketEvent`]s into [`Signal`]s.
//!
//! A strategy never touches the network or the clock: the same events give the same signals,
//! live or replayed. The [`Engine`] routes each event only to the instances that trade its symbol.

pub mod builtin;
pub mod common;
pub mod cooldown;
pub mod cursor;
pub mod definition;
pub mod exec;
pub mod indicators;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::market::{Interval, Kline, Market, MarketEvent, MarketEventKind};

/// Which way a signal points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// The contract's `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A trading signal, before it is numbered and serialized by the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub side: Side,
    pub symbol: crate::market::Symbol,
    pub price: f64,
    /// Unix seconds of the market moment the signal is about (exchange time).
    pub timestamp: i64,
    /// The strategy instance that emitted it.
    pub strategy: String,
    /// The candle interval it was computed on, e.g. `1s`.
    pub interval: String,
    /// A short human explanation.
    pub reason: String,
}

/// One strategy instance for one symbol.
pub trait Strategy: Send {
    /// Who the instance is (name, market, symbol, interval) and its signal gate.
    fn common(&self) -> &common::Common;
    /// The instance name, carried in each signal.
    fn name(&self) -> &str {
        &self.common().name
    }
    /// The market this instance trades on.
    fn market(&self) -> Market {
        self.common().market
    }
    /// The symbol this instance trades.
    fn symbol(&self) -> &str {
        &self.common().symbol
    }
    /// The upstream streams it needs; candle strategies need the symbol's aggTrades.
    /// Operators declare strategies, and the subscriptions follow from them.
    fn streams(&self) -> Vec<String> {
        vec![self.common().trade_stream()]
    }
    /// Closed candles of `common().interval` it needs before it may emit (0: none). The
    /// engine feeds that much history first where a history source exists; either way no
    /// signal comes before that many candles were seen.
    fn warmup(&self) -> usize {
        0
    }
    /// History, before live events: closed klines oldest first, then possibly the one still
    /// open (`closed == false`), which live trades continue. Never emits.
    fn on_history(&mut self, _kline: &Kline) {}
    /// Feeds one event; pushes any signals it causes onto `out`.
    fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>);
    /// The source lost data it could not backfill: drop indicator state and warm up again.
    fn on_gap(&mut self);
    /// The source reconnected; missed trades are backfilled before new ones, so by default
    /// nothing needs resetting.
    fn on_reconnect(&mut self) {}
    /// Signals that arrived on their own (plugins), pushed onto `out`.
    fn poll(&mut self, _out: &mut Vec<Signal>) {}
    /// The input ended (a backtest): wait for outstanding signals and push them onto `out`.
    fn finish(&mut self, _out: &mut Vec<Signal>) {}
    /// The service stops: closes the instance's input (a plugin's stdin) and returns the task
    /// to wait on until it has taken every event it was given.
    fn close(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// History an instance still needs: `candles` closed klines of `interval` for its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmupNeed {
    pub interval: Interval,
    pub candles: usize,
}

/// A built strategy instance and what identifies its definition, so a reload keeps the
/// instances (and their warm state) whose definition did not change.
pub struct Instance {
    /// The definition it came from, with its symbol, in canonical text.
    pub key: String,
    pub strategy: Box<dyn Strategy>,
    /// Its definition's `[strategy.ledger]`, checked: paper-trading rules of its own.
    pub ledger: Option<toml::Table>,
}

/// One instance inside the engine.
struct Slot {
    key: String,
    strategy: Box<dyn Strategy>,
    /// History was fed (or need not be) since the start or the last gap.
    fed: bool,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Instances kept as they were, warm state and all.
    pub kept: usize,
    pub added: usize,
    pub removed: usize,
}

/// The engine's warm-up, as whoever runs it last reported it (for readiness and metrics).
#[derive(Debug, Default)]
pub struct Warmup {
    pub instances: AtomicUsize,
    /// Instances not yet fed (see [`Engine::cold`]).
    pub cold: AtomicUsize,
}

impl Warmup {
    /// Every instance is fed, as of the last report.
    pub fn warm(&self) -> bool {
        // No instance (nothing reported yet: a running engine has at least one) is not warm.
        self.instances.load(Ordering::Relaxed) > 0 && self.cold.load(Ordering::Relaxed) == 0
    }
}

/// Runs many strategy instances, dispatching events by market and symbol.
#[derive(Default)]
pub struct Engine {
    slots: Vec<Slot>,
    /// Per market (spot, futures): symbol -> indices into `slots`, so an event touches only
    /// the instances that need it (and looking it up allocates nothing).
    by_symbol: [HashMap<String, Vec<usize>>; 2],
    /// Whether history arrives from outside ([`Engine::on_history`], the live REST source).
    /// Without it, an instance counts as fed on its first event, as it warms on the data.
    history_source: bool,
}

impl Engine {
    pub fn new(instances: Vec<Instance>) -> Self {
        let mut engine = Engine::default();
        engine.install(instances.into_iter().map(Slot::new).collect());
        engine
    }

    /// Says history will come through [`Engine::on_history`] (the live source).
    pub fn with_history_source(mut self) -> Self {
        self.history_source = true;
        self
    }

    /// Instances not yet fed: waiting for their history, or (without a history source) for
    /// their first event.
    pub fn cold(&self) -> usize {
        self.slots.iter().filter(|s| !s.fed).count()
    }

    /// Publishes the instance count and how many are cold.
    pub fn report(&self, to: &Warmup) {
        to.instances.store(self.len(), Ordering::Relaxed);
        to.cold.store(self.cold(), Ordering::Relaxed);
    }

    fn install(&mut self, slots: Vec<Slot>) {
        let mut by_symbol: [HashMap<String, Vec<usize>>; 2] = Default::default();
        for (i, slot) in slots.iter().enumerate() {
            let s = &slot.strategy;
            by_symbol[s.market() as usize]
                .entry(s.symbol().to_string())
                .or_default()
                .push(i);
        }
        self.slots = slots;
        self.by_symbol = by_symbol;
    }

    /// Swaps in a new set. An instance whose definition is unchanged carries on as it was;
    /// the others start cold (and get history before their first event, where there is any).
    pub fn replace(&mut self, instances: Vec<Instance>) -> Reloaded {
        let mut old: HashMap<String, Slot> = self
            .slots
            .drain(..)
            .map(|slot| (slot.key.clone(), slot))
            .collect();
        let mut report = Reloaded::default();
        let slots = instances
            .into_iter()
            .map(|instance| match old.remove(&instance.key) {
                Some(slot) => {
                    report.kept += 1;
                    slot
                }
                None => {
                    report.added += 1;
                    Slot::new(instance)
                }
            })
            .collect();
        report.removed = old.len();
        self.install(slots);
        report
    }

    /// Every upstream stream some instance needs, once each, sorted.
    pub fn streams(&self) -> Vec<(Market, String)> {
        let mut all: Vec<(Market, String)> = self
            .slots
            .iter()
            .flat_map(|slot| {
                let s = &slot.strategy;
                s.streams().into_iter().map(move |st| (s.market(), st))
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn indices(&self, market: Market, symbol: &str) -> &[usize] {
        self.by_symbol[market as usize]
            .get(symbol)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The candle intervals the symbol's instances build, once each.
    pub fn intervals(&self, market: Market, symbol: &str) -> Vec<Interval> {
        let mut all: Vec<Interval> = Vec::new();
        for &i in self.indices(market, symbol) {
            let interval = self.slots[i].strategy.common().interval;
            if !all.contains(&interval) {
                all.push(interval);
            }
        }
        all
    }

    /// The history the symbol's instances still need before their next event, one entry
    /// per interval (the most candles any of them needs).
    pub fn warmup_needs(&self, market: Market, symbol: &str) -> Vec<WarmupNeed> {
        let mut needs: Vec<WarmupNeed> = Vec::new();
        for &i in self.indices(market, symbol) {
            let slot = &self.slots[i];
            if slot.fed {
                continue;
            }
            let need = WarmupNeed {
                interval: slot.strategy.common().interval,
                candles: slot.strategy.warmup(),
            };
            match needs.iter_mut().find(|n| n.interval == need.interval) {
                Some(n) => n.candles = n.candles.max(need.candles),
                None => needs.push(need),
            }
        }
        needs
    }

    /// Feeds history klines (oldest first) to the symbol's instances still waiting for it.
    pub fn on_history(&mut self, market: Market, symbol: &str, klines: &[Kline]) {
        let indices = self.indices(market, symbol).to_vec();
        for i in indices {
            let slot = &mut self.slots[i];
            if !slot.fed {
                for k in klines {
                    slot.strategy.on_history(k);
                }
            }
        }
    }

    /// The symbol's history was fed (or cannot be had): its instances go live.
    pub fn mark_fed(&mut self, market: Market, symbol: &str) {
        let indices = self.indices(market, symbol).to_vec();
        for i in indices {
            self.slots[i].fed = true;
        }
    }

    /// Feeds one event to the instances of its symbol; pushes the signals onto `out` in order.
    pub fn on_event(&mut self, event: &MarketEvent, out: &mut Vec<Signal>) {
        let Some(indices) = self.by_symbol[event.market as usize].get(event.symbol.as_str()) else {
            return;
        };
        for &i in indices {
            let slot = &mut self.slots[i];
            match event.kind {
                MarketEventKind::Gap(_) => {
                    slot.strategy.on_gap();
                    slot.fed = slot.strategy.warmup() == 0;
                }
                MarketEventKind::Reconnected => slot.strategy.on_reconnect(),
                _ => {
                    slot.fed |= !self.history_source;
                    slot.strategy.on_event(event, out)
                }
            }
            slot.strategy.poll(out);
        }
    }

    /// Signals instances produced on their own since the last call (plugins).
    pub fn poll(&mut self, out: &mut Vec<Signal>) {
        for slot in &mut self.slots {
            slot.strategy.poll(out);
        }
    }

    /// The service stops: closes every instance's input; returns the tasks to wait on until
    /// each has taken every event it was given (plugins).
    pub fn close(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        self.slots
            .iter_mut()
            .filter_map(|slot| slot.strategy.close())
            .collect()
    }

    /// The input ended: collects what instances still had to say.
    pub fn finish(&mut self, out: &mut Vec<Signal>) {
        for slot in &mut self.slots {
            slot.strategy.finish(out);
        }
    }
}

impl Slot {
    fn new(instance: Instance) -> Self {
        Slot {
            fed: instance.strategy.warmup() == 0,
            key: instance.key,
            strategy: instance.strategy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::kline::KlineBuilder;
    use crate::strategy::testing::closes_from;

    const MA: &str = "[[strategy]]\nname = \"ma\"\nkind = \"ma_cross\"\nsymbol = \"BTCUSDT\"\ninterval = \"1s\"\n[strategy.params]\nfast = 2\nslow = 3\n";
    const RSI: &str =
        "[[strategy]]\nname = \"rsi\"\nkind = \"rsi\"\nsymbol = \"BTCUSDT\"\ninterval = \"1m\"\n";

    fn engine(text: &str) -> Engine {
        Engine::new(definition::from_text(text).unwrap())
    }

    /// Klines of the trades `closes_from(0, prices)` makes: the closed ones, then the open one.
    fn history(prices: &[f64]) -> Vec<Kline> {
        let mut builder = KlineBuilder::new(Interval::S1).unwrap();
        let mut klines: Vec<Kline> = closes_from(0, prices)
            .iter()
            .filter_map(|e| match &e.kind {
                MarketEventKind::Trade(t) => builder.push_trade(t),
                _ => None,
            })
            .collect();
        let mut open = builder.current().unwrap().clone();
        open.closed = false;
        klines.push(open);
        klines
    }

    fn feed(engine: &mut Engine, events: &[MarketEvent]) -> Vec<Signal> {
        let mut out = Vec::new();
        for e in events {
            engine.on_event(e, &mut out);
        }
        out
    }

    #[test]
    fn history_lets_an_instance_signal_on_its_first_live_candles() {
        // Candles 0-4 fall, candle 5 is open at 6.5; live, candle 6 closes at 12: a crossing.
        let live = closes_from(6, &[12., 13., 13.]);
        let mut cold = engine(MA);
        assert!(
            feed(&mut cold, &live).is_empty(),
            "without history two live candles are not enough"
        );

        let mut warm = engine(MA);
        assert_eq!(
            warm.warmup_needs(Market::Spot, "BTCUSDT"),
            vec![WarmupNeed {
                interval: Interval::S1,
                candles: 4
            }]
        );
        warm.on_history(
            Market::Spot,
            "BTCUSDT",
            &history(&[10., 9., 8., 7., 6., 6.5]),
        );
        warm.mark_fed(Market::Spot, "BTCUSDT");
        assert!(warm.warmup_needs(Market::Spot, "BTCUSDT").is_empty());
        // A live trade already inside the history is not counted twice.
        let replayed = closes_from(4, &[6.]);
        assert!(feed(&mut warm, &replayed).is_empty());
        let signals = feed(&mut warm, &live);
        assert_eq!(signals.len(), 1, "{signals:?}");
        assert_eq!(
            (signals[0].side, signals[0].price, signals[0].timestamp),
            (Side::Buy, 12.0, 7)
        );
    }

    #[test]
    fn a_gap_asks_for_history_again() {
        let mut e = engine(MA);
        e.mark_fed(Market::Spot, "BTCUSDT");
        let gap = MarketEvent {
            kind: MarketEventKind::Gap(crate::market::Gap {
                stream: "aggTrade",
                after_id: 1,
                resumed_at: 9,
            }),
            ..closes_from(0, &[1.])[0].clone()
        };
        feed(&mut e, &[gap]);
        assert_eq!(e.warmup_needs(Market::Spot, "BTCUSDT").len(), 1);
    }

    #[test]
    fn reload_keeps_unchanged_instances_and_their_state() {
        let mut e = engine(MA);
        e.mark_fed(Market::Spot, "BTCUSDT");
        let report = e.replace(definition::from_text(&format!("{MA}{RSI}")).unwrap());
        assert_eq!(
            report,
            Reloaded {
                kept: 1,
                added: 1,
                removed: 0
            }
        );
        // Only the new instance needs history.
        assert_eq!(
            e.warmup_needs(Market::Spot, "BTCUSDT"),
            vec![WarmupNeed {
                interval: Interval::M1,
                candles: 16
            }]
        );
        let changed = MA.replace("slow = 3", "slow = 4");
        let report = e.replace(definition::from_text(&changed).unwrap());
        assert_eq!(
            report,
            Reloaded {
                kept: 0,
                added: 1,
                removed: 2
            }
        );
    }
}
