//! One shard: a set of streams on one combined-stream connection, kept alive for good.
//!
//! The shard connects and subscribes (within the message budget, each `SUBSCRIBE` id checked
//! against its reply), reads, answers pings (tungstenite does, with the same payload), watches
//! every stream's silence, rotates to a fresh connection before Binance's 24 h cut (or on
//! `serverShutdown`) with an overlap the sequencer de-duplicates, and reconnects with backoff
//! and jitter. Every event passes the [`Sequencer`]; gaps are filled by [`backfill`].
//!
//! About 610 lines: the connection, its subscriptions, its lifetime and its resume fetches
//! share one loop's state; the fetches of missed trades are `backfill.rs` beside it.

mod backfill;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::ResumePoint;
use super::budget::Budget;
use super::rest::Rest;
use super::sequence::{Admit, Sequencer};
use super::transport::{self, Upstream};
use crate::config::BinanceSettings;
use crate::market::binance::{Parsed, parse};
use crate::market::stats::{Planned, Up};
use crate::market::{Malformed, Market, MarketEvent, MarketEventKind, SourceStats};

/// How long a connect or a subscribe reply may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the old connection keeps being read after a rotation switched to the new one
/// (shorter for very short rotation periods).
const ROTATION_OVERLAP: Duration = Duration::from_secs(3);

fn overlap(settings: &BinanceSettings) -> Duration {
    ROTATION_OVERLAP.min(settings.rotate_after / 4)
}

/// What one shard subscribes to, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSpec {
    /// For logs: `spot#0`, `futures-market#1`, ...
    pub name: String,
    pub market: Market,
    /// Combined-stream endpoint, e.g. `wss://stream.binance.com:9443/stream`.
    pub url: String,
    pub streams: Vec<String>,
}

/// A change to a running shard's streams (a strategy reload), made on the live connection
/// with `SUBSCRIBE` / `UNSUBSCRIBE` and kept for every later connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

/// Why a connection attempt failed or a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum ShardError {
    #[error(transparent)]
    Connect(#[from] transport::ConnectError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("subscribe refused: code {code}: {message}")]
    Refused { code: i64, message: String },
    #[error("connection failed: {0}")]
    Ws(String),
}

/// A subscribed connection.
pub(super) struct Conn {
    pub(super) ws: Upstream,
    pub(super) budget: Budget,
    opened: Instant,
    /// Messages that arrived while subscribing, handled first.
    pub(super) pending: VecDeque<String>,
}

/// A rotation's replacement connection, being made while the current one keeps serving.
type Connecting = Pin<Box<dyn Future<Output = Result<Conn, ShardError>> + Send>>;

/// How a connection's service ended.
enum End {
    Stop,
    Reconnect(String),
}

/// The shard task's state.
pub struct Shard {
    spec: Arc<ShardSpec>,
    settings: Arc<BinanceSettings>,
    rest: Rest,
    out: mpsc::Sender<MarketEvent>,
    sequencer: Sequencer,
    malformed: Malformed,
    /// The upstream's counters: connections, gaps, malformed messages.
    stats: Arc<SourceStats>,
    /// Request ids, unique across this shard's connections.
    ids: Arc<AtomicI64>,
    /// Last time each stream delivered something, for the watchdog.
    heard: HashMap<String, Instant>,
    /// Stream changes from reloads.
    changes: mpsc::UnboundedReceiver<Change>,
    /// Set when an earlier run's positions seeded the sequencer: the first connection then
    /// fetches the trades made while sigcast was stopped.
    resuming: bool,
}

impl Shard {
    pub fn new(
        spec: ShardSpec,
        settings: Arc<BinanceSettings>,
        rest: Rest,
        out: mpsc::Sender<MarketEvent>,
        changes: mpsc::UnboundedReceiver<Change>,
        stats: Arc<SourceStats>,
    ) -> Self {
        Self {
            malformed: Malformed::new(spec.name.clone()).counting(stats.clone()),
            stats,
            spec: Arc::new(spec),
            settings,
            rest,
            out,
            sequencer: Sequencer::default(),
            ids: Arc::new(AtomicI64::new(1)),
            heard: HashMap::new(),
            changes,
            resuming: false,
        }
    }

    /// Continues each of `points`' aggTrade streams after the trade an earlier run of sigcast
    /// stopped at: the first connection fetches what was traded meanwhile, in order.
    pub fn resume(mut self, points: &[ResumePoint]) -> Self {
        for p in points {
            self.sequencer
                .resume_at(&p.symbol, p.agg_id, p.last_trade_id);
            self.resuming = true;
        }
        self
    }

    /// Records a change in the spec (used by every later connection) and the watchdog;
    /// returns the request to send on a live connection, if any.
    fn absorb(&mut self, change: Change) -> Option<(&'static str, Vec<String>)> {
        let mut spec = (*self.spec).clone();
        let (method, streams) = match change {
            Change::Subscribe(add) => {
                let add: Vec<String> = add
                    .into_iter()
                    .filter(|s| !spec.streams.contains(s))
                    .collect();
                let now = Instant::now();
                for s in &add {
                    self.heard.insert(s.clone(), now);
                }
                spec.streams.extend(add.iter().cloned());
                ("SUBSCRIBE", add)
            }
            Change::Unsubscribe(drop) => {
                spec.streams.retain(|s| !drop.contains(s));
                for s in &drop {
                    self.heard.remove(s);
                }
                ("UNSUBSCRIBE", drop)
            }
        };
        tracing::info!(shard = %spec.name, method, streams = ?streams, total = spec.streams.len(), "upstream subscriptions changed");
        self.spec = Arc::new(spec);
        (!streams.is_empty()).then_some((method, streams))
    }

    /// Applies a change on the live connection, within the message budget.
    async fn apply(&mut self, conn: &mut Conn, change: Change) -> Result<(), ShardError> {
        let Some((method, streams)) = self.absorb(change) else {
            return Ok(());
        };
        for batch in streams.chunks(self.settings.subscribe_batch.max(1)) {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            let request = serde_json::json!({"method": method, "params": batch, "id": id});
            conn.budget.acquire().await;
            conn.ws
                .send(Message::text(request.to_string()))
                .await
                .map_err(|e| ShardError::Ws(e.to_string()))?;
        }
        Ok(())
    }

    /// Takes changes that arrived while no connection was up into the spec.
    fn absorb_pending(&mut self) {
        while let Ok(change) = self.changes.try_recv() {
            self.absorb(change);
        }
    }

    /// Keeps the shard connected until `stop`, or until `max_attempts` failures in a row.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut connected_before = false;
        let stats = self.stats.clone();
        let _planned = Planned::new(&stats);
        loop {
            self.absorb_pending();
            let attempt = connect(self.spec.clone(), self.settings.clone(), self.ids.clone());
            let conn = tokio::select! {
                _ = stop.cancelled() => return,
                c = attempt => c,
            };
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    failures += 1;
                    let max = self.settings.max_attempts;
                    if max > 0 && failures >= max {
                        tracing::error!(shard = %self.spec.name, failures, error = %e, "upstream unreachable; giving up");
                        return;
                    }
                    let delay = backoff(&self.settings, failures);
                    tracing::warn!(shard = %self.spec.name, failures, error = %e, retry_in = ?delay, "upstream connect failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            failures = 0;
            let up = Up::new(&stats, connected_before);
            tracing::info!(shard = %self.spec.name, streams = self.spec.streams.len(), reconnect = connected_before, "upstream connected and subscribed");
            if connected_before && !self.announce_reconnect().await {
                return;
            }
            let resuming = std::mem::take(&mut self.resuming);
            if (connected_before || resuming) && !self.catch_up(connected_before).await {
                return;
            }
            connected_before = true;
            let end = self.serve(conn, &stop).await;
            drop(up);
            match end {
                End::Stop => return,
                End::Reconnect(reason) => {
                    tracing::warn!(shard = %self.spec.name, %reason, "upstream connection lost; reconnecting");
                    let delay = backoff(&self.settings, 1);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Tells strategies every symbol of this shard reconnected (backfill follows).
    async fn announce_reconnect(&mut self) -> bool {
        let mut symbols: Vec<String> = self.spec.streams.iter().map(|s| symbol_of(s)).collect();
        symbols.sort();
        symbols.dedup();
        for symbol in symbols {
            let event = MarketEvent {
                market: self.spec.market,
                symbol: symbol.into(),
                exchange_time_ms: now_ms(),
                received_at: SystemTime::now(),
                kind: MarketEventKind::Reconnected,
            };
            if self.out.send(event).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn serve(&mut self, mut conn: Conn, stop: &CancellationToken) -> End {
        let settings = self.settings.clone();
        let start = Instant::now();
        for s in &self.spec.streams {
            self.heard.insert(s.clone(), start);
        }
        let mut rotate_at = conn.opened + settings.rotate_after;
        let mut next: Option<Connecting> = None;
        let mut old: Option<Conn> = None;
        let mut old_until = start;
        let mut watchdog =
            tokio::time::interval((settings.watchdog / 4).max(Duration::from_millis(20)));
        let mut pending = std::mem::take(&mut conn.pending);
        // The new connection's messages during a rotation overlap.
        let mut held: VecDeque<String> = VecDeque::new();
        loop {
            while let Some(text) = pending.pop_front() {
                match self.on_text(&text).await {
                    Step::Stop => return End::Stop,
                    Step::Rotate => rotate_at = Instant::now(),
                    Step::Continue => {}
                }
            }
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = conn.ws.close(None).await;
                    return End::Stop;
                }
                message = conn.ws.next() => match message {
                    // During a rotation's overlap the new connection's messages wait until
                    // the old one is done, so nothing overtakes what the old still delivers.
                    Some(Ok(Message::Text(text))) if old.is_some() => held.push_back(text.as_str().to_owned()),
                    Some(Ok(Message::Text(text))) => pending.push_back(text.as_str().to_owned()),
                    // tungstenite answers with a pong carrying the same payload; count it.
                    Some(Ok(Message::Ping(_))) => conn.budget.note_sent(),
                    Some(Ok(Message::Close(frame))) => {
                        return End::Reconnect(format!("closed by Binance: {}", describe_close(frame)));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::Reconnect(e.to_string()),
                    None => return End::Reconnect("connection ended".into()),
                },
                message = next_message(&mut old), if old.is_some() => match message {
                    Some(text) => pending.push_back(text),
                    None => {
                        old = None;
                        pending.append(&mut held);
                    }
                },
                _ = tokio::time::sleep_until(old_until), if old.is_some() => {
                    if let Some(mut o) = old.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), o.ws.close(None)).await;
                    }
                    // What the new connection delivered meanwhile; the sequencer drops what the
                    // old one already passed on.
                    pending.append(&mut held);
                    tracing::info!(shard = %self.spec.name, "rotation complete: old connection closed");
                }
                result = async { next.as_mut().expect("guarded").await }, if next.is_some() => {
                    next = None;
                    match result {
                        Ok(mut fresh) => {
                            self.stats.rotated();
                            held.extend(fresh.pending.drain(..));
                            rotate_at = fresh.opened + settings.rotate_after;
                            old = Some(std::mem::replace(&mut conn, fresh));
                            old_until = Instant::now() + overlap(&settings);
                            tracing::info!(shard = %self.spec.name, "rotation: new connection subscribed; overlapping");
                        }
                        Err(e) => {
                            tracing::warn!(shard = %self.spec.name, error = %e, "rotation connect failed; retrying");
                            rotate_at = Instant::now() + settings.backoff_initial;
                        }
                    }
                }
                _ = tokio::time::sleep_until(rotate_at), if next.is_none() && old.is_none() => {
                    tracing::info!(shard = %self.spec.name, "rotating the upstream connection");
                    next = Some(Box::pin(connect(self.spec.clone(), settings.clone(), self.ids.clone())));
                }
                Some(change) = self.changes.recv() => {
                    if let Err(e) = self.apply(&mut conn, change).await {
                        return End::Reconnect(e.to_string());
                    }
                    // A replacement connecting with the old stream list starts over.
                    if next.take().is_some() {
                        rotate_at = Instant::now();
                    }
                }
                _ = watchdog.tick() => {
                    let now = Instant::now();
                    if let Some((stream, at)) = self.heard.iter().find(|(_, at)| now.duration_since(**at) > settings.watchdog) {
                        return End::Reconnect(format!("watchdog: {stream} silent for {:?}", now.duration_since(*at)));
                    }
                }
            }
        }
    }

    /// Handles one text message from any of the shard's connections.
    async fn on_text(&mut self, text: &str) -> Step {
        if let Some(stream) = stream_name(text) {
            if let Some(at) = self.heard.get_mut(stream) {
                *at = Instant::now();
            }
        }
        match parse(self.spec.market, text, SystemTime::now()) {
            Ok(Parsed::Event(event)) => {
                if self.admit(event).await {
                    Step::Continue
                } else {
                    Step::Stop
                }
            }
            Ok(Parsed::ServerShutdown { .. }) => {
                tracing::info!(shard = %self.spec.name, "serverShutdown announced");
                Step::Rotate
            }
            Ok(Parsed::Error { id, code, message }) => {
                tracing::warn!(shard = %self.spec.name, ?id, code, %message, "Binance error reply");
                Step::Continue
            }
            Ok(Parsed::Reply { .. } | Parsed::DepthSnapshot { .. }) => Step::Continue,
            Err(e) => {
                self.malformed.record(&e);
                Step::Continue
            }
        }
    }

    /// Passes one event through the sequencer; false once nobody listens any more.
    async fn admit(&mut self, event: MarketEvent) -> bool {
        match self.sequencer.admit(&event) {
            Admit::Emit => self.out.send(event).await.is_ok(),
            Admit::Duplicate => true,
            Admit::Gap(gap) => {
                self.stats.gap_detected();
                tracing::warn!(shard = %self.spec.name, symbol = %event.symbol, stream = gap.stream, after = gap.after_id, resumed = gap.resumed_at, "gap that cannot be backfilled");
                self.out.send(gap_event(&event, gap)).await.is_ok()
                    && self.out.send(event).await.is_ok()
            }
            Admit::BackfillTrades { from_id, before_id } => {
                self.stats.gap_detected();
                self.backfill_trades(event, from_id, before_id).await
            }
            Admit::BackfillKlines {
                interval,
                from_open_ms,
                before_open_ms,
            } => {
                self.stats.gap_detected();
                self.backfill_klines(event, interval, from_open_ms, before_open_ms)
                    .await
            }
        }
    }
}

/// What handling a message asks of the loop.
enum Step {
    Continue,
    Rotate,
    Stop,
}

/// Connects and subscribes to every stream of the shard.
pub(super) async fn connect(
    spec: Arc<ShardSpec>,
    settings: Arc<BinanceSettings>,
    ids: Arc<AtomicI64>,
) -> Result<Conn, ShardError> {
    let proxy = (!settings.proxy.is_empty()).then_some(settings.proxy.as_str());
    let ws = tokio::time::timeout(CONNECT_TIMEOUT, transport::connect(&spec.url, proxy))
        .await
        .map_err(|_| ShardError::Timeout(CONNECT_TIMEOUT))??;
    let limit = match spec.market {
        Market::Spot => settings.spot_message_rate,
        Market::Futures => settings.futures_message_rate,
    };
    let mut conn = Conn {
        ws,
        budget: Budget::new(limit),
        opened: Instant::now(),
        pending: VecDeque::new(),
    };
    for batch in spec.streams.chunks(settings.subscribe_batch.max(1)) {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::json!({"method": "SUBSCRIBE", "params": batch, "id": id});
        conn.budget.acquire().await;
        conn.ws
            .send(Message::text(request.to_string()))
            .await
            .map_err(|e| ShardError::Ws(e.to_string()))?;
        tokio::time::timeout(CONNECT_TIMEOUT, await_reply(&mut conn, spec.market, id))
            .await
            .map_err(|_| ShardError::Timeout(CONNECT_TIMEOUT))??;
    }
    Ok(conn)
}

/// Reads until the reply with `id`; stream messages that arrive first are kept.
async fn await_reply(conn: &mut Conn, market: Market, id: i64) -> Result<(), ShardError> {
    loop {
        let message = conn
            .ws
            .next()
            .await
            .ok_or_else(|| ShardError::Ws("closed while subscribing".into()))?
            .map_err(|e| ShardError::Ws(e.to_string()))?;
        let text = match message {
            Message::Text(t) => t,
            Message::Ping(_) => {
                conn.budget.note_sent();
                continue;
            }
            Message::Close(frame) => {
                return Err(ShardError::Ws(format!(
                    "closed while subscribing: {}",
                    describe_close(frame)
                )));
            }
            _ => continue,
        };
        if !text.as_str().starts_with("{\"stream\"") {
            match parse(market, text.as_str(), SystemTime::now()) {
                Ok(Parsed::Reply { id: Some(got), .. }) if got == id => return Ok(()),
                Ok(Parsed::Error {
                    id: Some(got),
                    code,
                    message,
                }) if got == id => return Err(ShardError::Refused { code, message }),
                Ok(Parsed::Reply { id: got, .. }) => {
                    tracing::warn!(expected = id, ?got, "reply with an unexpected id ignored");
                    continue;
                }
                _ => {}
            }
        }
        conn.pending.push_back(text.as_str().to_owned());
    }
}

/// The next text message of the old connection during a rotation; `None` when it ended.
async fn next_message(old: &mut Option<Conn>) -> Option<String> {
    let conn = old.as_mut()?;
    loop {
        match conn.ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The delay before reconnect attempt `n` (1-based): exponential, capped, with jitter.
pub(super) fn backoff(settings: &BinanceSettings, n: u32) -> Duration {
    let base = settings.backoff_initial.as_secs_f64()
        * settings
            .backoff_factor
            .powi(n.saturating_sub(1).min(30) as i32);
    let capped = base.min(settings.backoff_max.as_secs_f64());
    // "Equal jitter": half fixed, half random, so reconnecting clients spread out.
    let jittered = capped * (0.5 + rand::random::<f64>() * 0.5);
    Duration::from_secs_f64(jittered)
}

/// `btcusdt@aggTrade` -> `BTCUSDT`; `btcusdt_perpetual@continuousKline_1m` -> `BTCUSDT`.
pub(super) fn symbol_of(stream: &str) -> String {
    let head = stream.split('@').next().unwrap_or(stream);
    head.split('_').next().unwrap_or(head).to_uppercase()
}

/// The stream name of a combined-stream message, without parsing it (Binance puts it first).
fn stream_name(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("{\"stream\":\"")?;
    rest.split('"').next()
}

fn gap_event(event: &MarketEvent, gap: crate::market::Gap) -> MarketEvent {
    MarketEvent {
        market: event.market,
        symbol: event.symbol.clone(),
        exchange_time_ms: event.exchange_time_ms,
        received_at: SystemTime::now(),
        kind: MarketEventKind::Gap(gap),
    }
}

fn describe_close(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(f) => format!("{} {}", u16::from(f.code), f.reason.as_str()),
        None => "no close frame".into(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(symbol_of("btcusdt@aggTrade"), "BTCUSDT");
        assert_eq!(symbol_of("btcusdt_perpetual@continuousKline_1m"), "BTCUSDT");
        assert_eq!(
            stream_name(r#"{"stream":"ethusdt@depth@100ms","data":{}}"#),
            Some("ethusdt@depth@100ms")
        );
        assert_eq!(stream_name(r#"{"result":null,"id":1}"#), None);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let s = BinanceSettings::default();
        for n in 1..=12 {
            let d = backoff(&s, n).as_secs_f64();
            let full = (2f64.powi(n as i32 - 1)).min(60.0);
            assert!(
                d >= full * 0.5 - 1e-9 && d <= full + 1e-9,
                "attempt {n}: {d}"
            );
        }
    }
}
