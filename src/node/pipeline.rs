//! The market → strategy → hub pipeline of `serve`: the source, the engine with its warm-up
//! and reloads, and publishing into the hub.
//!
//! Warm-up: with the live source, the first event of a symbol whose instances need history
//! (and the first after a gap that could not be backfilled) waits while that history comes
//! from the REST klines endpoint; the symbol's later events queue behind it, other symbols
//! flow on. Replayed and synthetic data has no history source: instances warm on the data
//! itself, and emit nothing before their declared number of candles.
//!
//! Restarts: with the live source, where the strategies stand in each aggTrade stream is kept
//! in the data directory ([`Cursor`]). A restarted sigcast hands those positions to the
//! upstream, which fetches the trades made meanwhile; warm-up history then stops at the
//! candles the last run left open, and the fetched trades continue them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SourceKind};
use crate::hub::Hub;
use crate::hub::feed::{MarketTopic, Offered, Relay};
use crate::market::binance::live::{self, ResumePoint, Upstream, rest::Rest};
use crate::market::{Kline, Market, MarketEvent, SourceStats, replay, synthetic};
use crate::strategy::cursor::{Cursor, Position};
use crate::strategy::{Engine, Instance, Signal, Warmup, WarmupNeed};

/// How long fetching one symbol's history may take before it goes live without.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(20);
/// Events a symbol may queue while its history loads; beyond, it goes live without.
const MAX_QUEUED: usize = 100_000;
/// How often signals that plugins produced on their own are collected (and trade positions
/// handed to their writer).
const POLL_EVERY: Duration = Duration::from_millis(20);
/// At a stop, how long plugins may take to read the events already queued for them.
const PLUGIN_DRAIN: Duration = Duration::from_secs(3);

/// A running pipeline.
pub struct Pipeline {
    pub task: tokio::task::JoinHandle<()>,
    /// Strategy instances running at the start.
    pub instances: usize,
    /// Replaces the running strategy set (hot reload).
    pub reload: mpsc::Sender<Vec<Instance>>,
    /// The source's counters: connections, reconnects, gaps, events by kind.
    pub source: Arc<SourceStats>,
    /// The strategies' warm-up, reported as it changes.
    pub warmup: Arc<Warmup>,
}

/// Starts the source and the engine, publishing signals into `hub` until `stop`.
pub fn start(
    config: &Config,
    instances: Vec<Instance>,
    hub: Arc<Hub>,
    stop: CancellationToken,
) -> anyhow::Result<Pipeline> {
    start_reporting(
        config,
        instances,
        hub,
        stop,
        Default::default(),
        Default::default(),
        None,
    )
}

/// As [`start`], counting into `source` and reporting warm-up into `warmup` (a producer
/// keeps them across its terms as leader), with trade positions from `positions` (a cursor
/// and what it held) rather than the data directory's database.
pub fn start_reporting(
    config: &Config,
    instances: Vec<Instance>,
    hub: Arc<Hub>,
    stop: CancellationToken,
    source: Arc<SourceStats>,
    warmup: Arc<Warmup>,
    positions: Option<(Cursor, Vec<Position>)>,
) -> anyhow::Result<Pipeline> {
    let live = config.source.kind == SourceKind::Binance;
    hub.set_track_rules(crate::ledger::rules(&instances, &config.ledger));
    let mut engine = Engine::new(instances);
    if live {
        engine = engine.with_history_source();
    }
    let count = engine.len();
    engine.report(&warmup);
    let market_data = MarketData {
        relay: Relay::new(hub.feed().clone(), !live),
        wanted: hub.feed().wanted(),
        extra_symbols: config.market_data.symbols.clone(),
        live,
    };
    market_data.offer(&hub, &engine);
    let mut upstream = None;
    let mut cursor = Cursor::disabled();
    let mut resumes = HashMap::new();
    let events = match config.source.kind {
        SourceKind::Synthetic => {
            // The synthetic market is one endless, always-connected source.
            source.plan();
            source.connected(false);
            synthetic::spawn(
                config.source.symbols.clone(),
                config.source.seed,
                config.source.tick,
                stop.clone(),
            )
        }
        SourceKind::Replay => {
            // `serve` checked the recordings before it bound its ports; one that has gone
            // since stops the replay with a logged error.
            let speed = config.source.replay_speed;
            replay::spawn(
                replay::ReplayOptions {
                    paths: config.source.replay.clone(),
                    speed,
                    looped: config.source.replay_loop,
                    delay: config.source.replay_delay,
                    stats: source.clone(),
                },
                stop.clone(),
            )
        }
        SourceKind::Binance => {
            let streams = upstream_streams(&engine, &market_data.wanted.borrow());
            tracing::info!(
                streams = streams.len(),
                "subscribing to what the strategies and market-data clients need"
            );
            let (opened, saved) = match positions {
                Some(given) => given,
                None => Cursor::open(&config.data.journal_path())?,
            };
            cursor = opened;
            resumes = resumable(saved, config.binance.resume_within);
            let points: Vec<ResumePoint> = resumes
                .values()
                .map(|p: &Position| ResumePoint {
                    market: p.market,
                    symbol: p.symbol.clone(),
                    agg_id: p.agg_id,
                    last_trade_id: p.last_trade_id,
                })
                .collect();
            let (handle, events) = live::spawn(
                config.binance.clone(),
                &streams,
                points,
                source.clone(),
                stop.clone(),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            upstream = Some(handle);
            events
        }
    };
    let (reload, reloads) = mpsc::channel(4);
    let runner = Runner {
        upstream,
        engine,
        hub,
        warming: HashMap::new(),
        fetches: JoinSet::new(),
        cursor,
        resumes,
        out: Vec::new(),
        market_data,
        source: source.clone(),
        warmup: warmup.clone(),
    };
    let task = tokio::spawn(runner.run(events, reloads, stop));
    Ok(Pipeline {
        task,
        instances: count,
        reload,
        source,
        warmup,
    })
}

/// The positions young enough to resume from (see `binance.resume_within`), by symbol.
fn resumable(saved: Vec<Position>, within: Duration) -> HashMap<(Market, String), Position> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut resumes = HashMap::new();
    for p in saved {
        let age = Duration::from_millis(now_ms.saturating_sub(p.saved_at_ms).max(0) as u64);
        if age <= within {
            tracing::info!(symbol = %p.symbol, market = p.market.as_str(), agg_id = p.agg_id, stopped_for = ?age, "continuing after the last trade the strategies took");
            resumes.insert((p.market, p.symbol.clone()), p);
        } else {
            tracing::info!(symbol = %p.symbol, market = p.market.as_str(), stopped_for = ?age, "last trade too old to replay what followed (binance.resume_within); starting fresh");
        }
    }
    resumes
}

/// One event through the engine into the hub; `out` is scratch space.
pub fn pump(engine: &mut Engine, hub: &Hub, event: &MarketEvent, out: &mut Vec<Signal>) {
    if let Some(price) = event.price() {
        hub.mark(event.market, &event.symbol, event.market_time_ms(), price);
    }
    engine.on_event(event, out);
    publish(hub, out);
}

/// Publishes `signals` (and empties it).
fn publish(hub: &Hub, signals: &mut Vec<Signal>) {
    for signal in signals.drain(..) {
        let listeners = hub.publish(&signal);
        tracing::info!(
            strategy = %signal.strategy,
            symbol = %signal.symbol,
            side = signal.side.as_str(),
            price = signal.price,
            reason = %signal.reason,
            listeners,
            "signal"
        );
    }
}

/// A symbol's history, fetched.
struct History {
    key: (Market, String),
    klines: Result<Vec<Kline>, String>,
}

/// The pipeline task's state.
struct Runner {
    engine: Engine,
    hub: Arc<Hub>,
    /// The live upstream, whose subscriptions follow the strategy set.
    upstream: Option<Upstream>,
    /// Symbols whose history is loading, with the events that arrived meanwhile, in order.
    warming: HashMap<(Market, String), Vec<MarketEvent>>,
    fetches: JoinSet<History>,
    /// Where the strategies stand in each aggTrade stream, kept for a restart.
    cursor: Cursor,
    /// Positions an earlier run left, until their symbol's first event.
    resumes: HashMap<(Market, String), Position>,
    /// Scratch space for signals.
    out: Vec<Signal>,
    /// Market-data topics: relaying events, and what clients ask the upstream for.
    market_data: MarketData,
    /// Counts events by kind for the metrics.
    source: Arc<SourceStats>,
    /// Where the engine reports its warm-up, for readiness.
    warmup: Arc<Warmup>,
}

/// The pipeline's part in market-data topics.
struct MarketData {
    relay: Relay,
    /// The topics clients subscribe to; the live upstream follows them.
    wanted: watch::Receiver<Vec<MarketTopic>>,
    /// `market_data.symbols`: offered beyond the strategies' own (`*`: any).
    extra_symbols: Vec<String>,
    /// Whether the source is the live upstream, which subscribes on demand and so offers
    /// only some symbols; recordings and the synthetic market offer what they hold.
    live: bool,
}

impl MarketData {
    /// Tells the feed which symbols clients may ask for: the strategies' and the extra ones.
    fn offer(&self, hub: &Hub, engine: &Engine) {
        let any = !self.live || self.extra_symbols.iter().any(|s| s == "*");
        let mut symbols: std::collections::HashSet<(Market, String)> = engine
            .streams()
            .into_iter()
            .filter_map(|(m, stream)| {
                let symbol = stream.split('@').next()?.to_ascii_uppercase();
                Some((m, symbol))
            })
            .collect();
        for s in &self.extra_symbols {
            symbols.insert((Market::Spot, s.clone()));
            symbols.insert((Market::Futures, s.clone()));
        }
        hub.feed().set_offered(Offered { any, symbols });
    }
}

/// What the upstream subscribes to: the strategies' streams and the subscribed topics'.
fn upstream_streams(engine: &Engine, topics: &[MarketTopic]) -> Vec<(Market, String)> {
    let mut all = engine.streams();
    all.extend(topics.iter().map(|t| (t.market, t.stream())));
    all.sort();
    all.dedup();
    all
}

impl Runner {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<MarketEvent>,
        mut reloads: mpsc::Receiver<Vec<Instance>>,
        stop: CancellationToken,
    ) {
        self.on_wanted();
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => {
                        self.source.event(&event.kind);
                        self.on_event(event);
                    }
                    None => break,
                },
                Some(done) = self.fetches.join_next(), if !self.fetches.is_empty() => {
                    if let Ok(history) = done {
                        self.on_history(history);
                    }
                }
                Some(set) = reloads.recv() => self.reload(set),
                Ok(()) = self.market_data.wanted.changed() => self.on_wanted(),
                _ = poll.tick() => {
                    self.engine.poll(&mut self.out);
                    publish(&self.hub, &mut self.out);
                    self.engine.report(&self.warmup);
                    self.cursor.flush();
                }
            }
        }
        self.fetches.abort_all();
        // Plugins get what was queued for them, so the positions kept are what they saw.
        let plugins = self.engine.close();
        if tokio::time::timeout(PLUGIN_DRAIN, futures_util::future::join_all(plugins))
            .await
            .is_err()
        {
            tracing::warn!("plugins did not take their last events within {PLUGIN_DRAIN:?}");
        }
        self.cursor.close().await;
    }

    fn on_event(&mut self, event: MarketEvent) {
        // Market-data clients get the event at once, even while strategies wait for history.
        self.market_data.relay.on_event(&event);
        let key = (event.market, event.symbol.to_string());
        if let Some(queue) = self.warming.get_mut(&key) {
            queue.push(event);
            if queue.len() >= MAX_QUEUED {
                tracing::warn!(symbol = %key.1, "history is slow to load; going live without it");
                self.fetches.abort_all();
                self.on_history(History {
                    key,
                    klines: Err("too many events queued".into()),
                });
            }
            return;
        }
        let resume = self.resumes.remove(&key);
        // Warm-up history comes from the live upstream's REST client; other sources have none.
        if let Some(rest) = self.upstream.as_ref().map(Upstream::rest) {
            let needs = self.engine.warmup_needs(key.0, &key.1);
            if !needs.is_empty() {
                let (anchor_ms, open) = match resume {
                    Some(p) if continues(&p, &event) => (p.time_ms, p.open),
                    Some(p) => {
                        tracing::warn!(symbol = %p.symbol, agg_id = p.agg_id, "the trades after the last run's could not be had; warming up afresh");
                        (event.exchange_time_ms, Vec::new())
                    }
                    None => (event.exchange_time_ms, Vec::new()),
                };
                let rest = rest.clone();
                let fetch_key = key.clone();
                self.fetches.spawn(async move {
                    let klines = tokio::time::timeout(
                        HISTORY_TIMEOUT,
                        fetch(&rest, fetch_key.0, &fetch_key.1, &needs, anchor_ms, &open),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {HISTORY_TIMEOUT:?}")));
                    History {
                        key: fetch_key,
                        klines,
                    }
                });
                self.warming.insert(key, vec![event]);
                return;
            }
        }
        pump(&mut self.engine, &self.hub, &event, &mut self.out);
        let engine = &self.engine;
        self.cursor
            .note(&event, || engine.intervals(event.market, &event.symbol));
    }

    /// Feeds the history, then the events that waited for it.
    fn on_history(&mut self, history: History) {
        let (market, symbol) = &history.key;
        match &history.klines {
            Ok(klines) => {
                self.engine.on_history(*market, symbol, klines);
                let engine = &self.engine;
                self.cursor.seed(*market, symbol, klines, || {
                    engine.intervals(*market, symbol)
                });
                tracing::info!(%symbol, market = market.as_str(), candles = klines.len(), "strategies warmed up from REST history");
            }
            Err(e) => {
                tracing::warn!(%symbol, market = market.as_str(), error = %e, "no warm-up history; strategies warm on live candles first")
            }
        }
        self.engine.mark_fed(*market, symbol);
        for event in self.warming.remove(&history.key).unwrap_or_default() {
            self.on_event(event);
        }
    }

    fn reload(&mut self, set: Vec<Instance>) {
        let defaults = self.hub.track_defaults();
        self.hub
            .set_track_rules(crate::ledger::rules(&set, &defaults));
        let report = self.engine.replace(set);
        let engine = &self.engine;
        self.cursor
            .reload(|market, symbol| engine.intervals(market, symbol));
        tracing::info!(
            kept = report.kept,
            added = report.added,
            removed = report.removed,
            instances = self.engine.len(),
            "strategies reloaded"
        );
        self.market_data.offer(&self.hub, &self.engine);
        self.resubscribe();
    }

    /// Clients' market-data topics changed: build or subscribe what they now ask for.
    fn on_wanted(&mut self) {
        let topics = self.market_data.wanted.borrow_and_update().clone();
        self.market_data.relay.on_wanted(&topics);
        self.resubscribe();
    }

    /// Points the live upstream at what the strategies and the market-data topics need.
    fn resubscribe(&mut self) {
        if let Some(upstream) = &mut self.upstream {
            let topics = self.market_data.wanted.borrow().clone();
            upstream.update(&upstream_streams(&self.engine, &topics));
        }
    }
}

/// Whether `event` is the trade right after `position`: the upstream fetched what followed.
fn continues(position: &Position, event: &MarketEvent) -> bool {
    matches!(&event.kind, crate::market::MarketEventKind::AggTrade(t) if t.id == position.agg_id + 1)
}

/// The klines the needs ask for, up to the candle holding `anchor_ms`, which is passed on
/// open (`closed == false`) so live trades continue it. Where `open` holds that candle as an
/// earlier run left it, that one is passed instead of Binance's (which would also count the
/// trades fetched after it).
async fn fetch(
    rest: &Rest,
    market: Market,
    symbol: &str,
    needs: &[WarmupNeed],
    anchor_ms: i64,
    open: &[Kline],
) -> Result<Vec<Kline>, String> {
    let mut all = Vec::new();
    for need in needs {
        let Some(millis) = need.interval.fixed_millis() else {
            continue;
        };
        let open_ms = anchor_ms - anchor_ms.rem_euclid(millis);
        let start = open_ms - need.candles as i64 * millis;
        let kept = open
            .iter()
            .find(|k| k.interval == need.interval && k.open_time_ms == open_ms);
        let end = if kept.is_some() { open_ms - 1 } else { open_ms };
        let mut klines = rest
            .klines(market, symbol, need.interval, start, end)
            .await
            .map_err(|e| e.to_string())?;
        klines.retain(|k| k.open_time_ms <= end);
        for k in &mut klines {
            k.closed = k.open_time_ms < open_ms;
        }
        all.extend(klines);
        all.extend(kept.cloned());
    }
    Ok(all)
}
