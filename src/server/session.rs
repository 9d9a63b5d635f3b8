//! One client session: a single `select!` over client frames, hub frames and timers.
//!
//! Inner steps use `?` for transport errors; [`Session::run`] triages how the session ended
//! once, at its edge, into one log event.
//!
//! Over 500 lines (about 980): resume, publish, topics, coalescing and the test budget still
//! share this file; the house issue splits them into nouns beside the loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::command::{self, Command};
use super::endings::{Endings, Enrolled, Why};
use super::filter::{Filter, Topic};
use super::framing;
use super::gate::Gate;
use super::handshake::{Accepted, ClientTls, ClientWs};
use super::histogram::Local;
use super::stats::{DEPTH_BUCKETS, Ending, LATENCY_BUCKETS, Stats};
use super::wire::{self, Inbound, within};
use super::{MAX_BATCH, Shared, close_code};
use crate::auth::{Claims, Scope};
use crate::clock::unix_now;
use crate::hub::feed::{Feed, Inbox, MarketTopic};
use crate::hub::{Frame, Published};

/// How long a resume waits for the journal to catch up with the hub.
const RESUME_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// What the loop decided after one event.
enum Flow {
    Continue,
    /// The client closed (its close code and reason, when it sent a close frame);
    /// tungstenite has queued the reply.
    ClientClosed(Option<(u16, String)>),
    /// The server ends the session with this code and reason.
    Close(u16, String),
}

/// What woke a session from its quiet sources.
enum Quiet {
    Client(Option<Result<Message, WsError>>),
    PingTick,
}

/// How a session ended, for the one log event at its edge.
enum Ended {
    ByClient(Option<(u16, String)>),
    ByServer(u16, String),
    Transport(WsError),
}

/// A live, authenticated client.
pub struct Session {
    ws: ClientWs,
    peer: SocketAddr,
    /// The verified token's claims: `sub`/`jti` for logs, `exp` for the session deadline.
    /// Shared with the ending future rather than copied into it (200 bytes a session).
    claims: Arc<Claims>,
    shared: Arc<Shared>,
    /// This session's view of the hub's ring of frames.
    frames: broadcast::Receiver<Published>,
    /// The highest `seq` this client has been sent; ring frames at or below it are skipped,
    /// so the seam between resumed history and live signals neither loses nor doubles one.
    last_sent: u64,
    /// The first `seq` sent live, so a later resume sends only what the client lacks.
    first_live: Option<u64>,
    /// `X-Sigcast-Last-Seq` from the handshake: resume after it before anything else.
    resume_after: Option<u64>,
    /// The token's scope and the topics subscribed: which signals this client gets.
    filter: Filter,
    /// Market-data topics, created at the first such subscription (most sessions have none).
    market: Option<MarketSubs>,
    /// Set when the server ends this session: shutdown, token expiry or revocation.
    enrolled: Enrolled,
    /// This session's place under `server.max_connections`, released when it ends.
    _slot: super::Admission,
    /// Last time anything arrived from the client (data, ping or pong).
    last_heard: Instant,
    /// A write had to wait for the client's socket since the client was last heard: what we
    /// send piles up unread. A client silent for the idle timeout is then a slow consumer
    /// (its pong waits behind the backlog), not a vanished one.
    backed_up: bool,
    /// tungstenite may hold output of its own: a pong or close reply it queued when the
    /// client's frame arrived. Hub frames bypass tungstenite, so it is flushed before them,
    /// but only then: a flush through tungstenite costs as much as the frames' own work.
    owes_reply: bool,
    /// Signals were written since the last ping tick; a quiet session drops its coalescing
    /// timer at the tick.
    sent_since_tick: bool,
    /// The client's socket and the ping timer (rarely ready) are polled only after one of
    /// them woke the session, not on every signal (see `gate`).
    quiet: Gate,
    /// Rate limit for `test`.
    tests: TestBudget,
    /// How many `test` replies were sent, to rotate through symbols.
    tests_served: usize,
    /// Queue depth and fan-out latency seen here, not yet added to the shared histograms.
    observed: Observations,
    /// Cluster mode: publishes waiting for the stream to store them, answered in order as
    /// it does, while the session reads on (made at a publisher's first publish).
    confirming: Option<Box<Confirming>>,
    /// While `coalescing`, the next write of live signals waits until then (the last write
    /// plus `server.coalesce`): a signal that comes sooner is held, and what follows it piles
    /// up behind it, to go in the same TLS record and `send`.
    next_write: Option<std::time::Instant>,
    /// The runtime is busy: signals wait in its queue before this session gets to them, so
    /// its writes are coalesced (see `hold_back`).
    coalescing: bool,
    /// A signal held back until `next_write`, and its timer (made when first needed).
    hold: Option<Box<Hold>>,
}

/// A signal held back for coalescing, and the timer that releases it.
struct Hold {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    frame: Option<Published>,
}

/// The held signal, once its time has come; never when none is held.
async fn released(hold: &mut Option<Box<Hold>>) -> Published {
    match hold {
        Some(h) if h.frame.is_some() => {
            h.timer.as_mut().await;
            match h.frame.take() {
                Some(frame) => frame,
                None => std::future::pending().await,
            }
        }
        _ => std::future::pending().await,
    }
}

/// A session that gets to a signal this long after the hub numbered it shares a busy runtime.
const BUSY: Duration = Duration::from_millis(1);

/// The answer to a publish that was not confirmed: `publish_pending` with the key to retry
/// by when it may still be stored, `publish_failed` when it will not be.
fn publish_refusal(sub: &str, e: &crate::hub::PublishError) -> Message {
    match e {
        crate::hub::PublishError::Pending { id, .. } => {
            tracing::warn!(%sub, %id, error = %e, "publish pending");
            Message::text(
                serde_json::json!({"type": "publish_pending", "id": id, "message": e.to_string(), "timestamp": unix_now()})
                    .to_string(),
            )
        }
        _ => {
            tracing::warn!(%sub, error = %e, "publish not stored");
            error_reply("publish_failed", &e.to_string())
        }
    }
}

/// Publish acks on their way, oldest first.
type Confirming = FuturesOrdered<BoxFuture<'static, Message>>;

/// Bytes sent and not taken by a client that make its silence a backlog's (4000) rather
/// than a vanished peer's (4001): more than a moment's traffic in flight.
const BACKLOG: usize = 16 * 1024;

/// Publishes one session may have waiting for the stream; beyond, it is told to slow down.
const MAX_CONFIRMING: usize = 4096;

/// The next publish ack ready, or never when none waits.
async fn next_confirmed(confirming: &mut Option<Box<Confirming>>) -> Message {
    match confirming {
        Some(queue) if !queue.is_empty() => match queue.next().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        },
        _ => std::future::pending().await,
    }
}

/// A session's part of the queue-depth and fan-out-latency histograms.
#[derive(Default)]
struct Observations {
    depth: Local<{ DEPTH_BUCKETS.len() }>,
    latency: Local<{ LATENCY_BUCKETS.len() }>,
}

impl Observations {
    /// One write of live signals: how many more waited, and how long the oldest took.
    fn write(&mut self, stats: &Stats, waiting: usize, oldest: std::time::Instant) {
        let micros = oldest.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let full = self.depth.observe(&stats.queue_depth, waiting as u64)
            | self.latency.observe(&stats.fanout_latency, micros);
        if full {
            self.flush(stats);
        }
    }

    fn flush(&mut self, stats: &Stats) {
        stats.queue_depth.absorb(&mut self.depth);
        stats.fanout_latency.absorb(&mut self.latency);
    }
}

impl Session {
    pub fn new(
        accepted: Accepted,
        peer: SocketAddr,
        shared: Arc<Shared>,
        endings: &Arc<Endings>,
        slot: super::Admission,
    ) -> Self {
        let Accepted {
            ws,
            claims,
            last_seq,
        } = accepted;
        let s = &shared.settings;
        let claims = Arc::new(claims);
        Self {
            enrolled: endings.enroll(claims.clone(), &shared.revoked),
            frames: shared.hub.subscribe(),
            last_sent: 0,
            first_live: None,
            resume_after: last_seq,
            filter: Filter::new(Scope::of(&claims)),
            market: None,
            tests: TestBudget::new(s.test_burst, s.test_interval),
            ws,
            peer,
            claims,
            _slot: slot,
            last_heard: Instant::now(),
            backed_up: false,
            owes_reply: false,
            sent_since_tick: false,
            quiet: Gate::default(),
            tests_served: 0,
            observed: Observations::default(),
            confirming: None,
            next_write: None,
            coalescing: false,
            hold: None,
            shared,
        }
    }

    /// Serves the client until either side ends the session.
    ///
    /// Boxed: an async fn keeps its by-value arguments twice in its future (the argument and
    /// the local it is moved to), which for a 1.9 KB session was 1.9 KB of every idle
    /// session's memory; a box is copied twice instead.
    pub async fn run(mut self: Box<Self>) {
        tracing::info!(peer = %self.peer, sub = %self.claims.sub, jti = %self.claims.jti, "session opened");
        let stats = self.shared.clone();
        stats.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let served = match self.serve().await {
            // A write gave up waiting because the client lost signals meanwhile.
            Err(e) => wire::fell_behind(&e).map(slow_consumer).ok_or(e),
            served => served,
        };
        let ended = match served {
            Ok(Flow::ClientClosed(frame)) => Ended::ByClient(frame),
            Ok(Flow::Close(code, reason)) => {
                if code == close_code::SLOW_CONSUMER {
                    let total = self
                        .shared
                        .stats
                        .slow_consumers
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    tracing::warn!(peer = %self.peer, sub = %self.claims.sub, slow_consumers_total = total, "slow consumer cut off");
                }
                Box::pin(self.close(code, &reason)).await;
                Ended::ByServer(code, reason)
            }
            Ok(Flow::Continue) => Ended::ByClient(None),
            Err(e) => Ended::Transport(e),
        };
        wire::goodbye(self.ws.tls_mut()).await;
        stats.stats.sessions.fetch_sub(1, Ordering::Relaxed);
        stats.stats.ended(match &ended {
            Ended::ByClient(_) => Ending::Client,
            Ended::ByServer(code, _) => Ending::of_close(*code),
            Ended::Transport(_) => Ending::Network,
        });
        self.observed.flush(&stats.stats);
        let (peer, sub, jti) = (self.peer, &self.claims.sub, &self.claims.jti);
        match ended {
            Ended::ByClient(frame) => {
                let code = frame.as_ref().map(|f| f.0);
                // The client's own text: escaped, so it cannot forge log lines.
                let reason = frame.as_ref().map(|f| tracing::field::debug(&f.1));
                tracing::info!(%peer, %sub, %jti, code, reason, "session closed by client")
            }
            Ended::ByServer(code, reason) => {
                tracing::info!(%peer, %sub, %jti, code, %reason, "session closed by server")
            }
            Ended::Transport(e) if wire::dropped(&e) => {
                tracing::info!(%peer, %sub, %jti, error = %e, "session dropped by the network")
            }
            Ended::Transport(e) => {
                tracing::warn!(%peer, %sub, %jti, error = %e, "session ended by error")
            }
        }
    }

    async fn serve(&mut self) -> Result<Flow, WsError> {
        let mut ping = tokio::time::interval(self.shared.settings.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        if let Some(since) = self.resume_after.take() {
            // Boxed, here and below: rare and large, so idle sessions do not carry its state.
            let flow = Box::pin(self.resume(since)).await?;
            if !matches!(flow, Flow::Continue) {
                return Ok(flow);
            }
        }
        loop {
            let flow = tokio::select! {
                biased;
                // Shutdown, expiry and revocation are watched for every session by one task
                // (see `endings`); the session only checks its flag: it carries no timer.
                why = self.enrolled.ended() => ended_by_server(why),
                // The client's frames, then the ping tick. Both before the signals: a client
                // behind on them always has one waiting, and its pings and idle check must
                // still come on time.
                quiet = self.quiet.pass(|cx| {
                    if let Poll::Ready(message) = self.ws.poll_next_unpin(cx) {
                        return Poll::Ready(Quiet::Client(message));
                    }
                    ping.poll_tick(cx).map(|_| Quiet::PingTick)
                }) => match quiet {
                    Quiet::Client(message) => {
                        Box::pin(self.on_client(Inbound::classify(message)?)).await?
                    }
                    Quiet::PingTick => Box::pin(self.on_ping_tick()).await?,
                },
                // A publisher's ack before the signals (see `write_ready_acks`).
                reply = next_confirmed(&mut self.confirming) => {
                    Box::pin(self.write([reply])).await?;
                    Flow::Continue
                }
                // Boxed, as every write: a write's state lives only while it waits, so a
                // session waiting for its next signal carries none of it (a heap block per
                // write costs far less than the write's own syscall).
                frame = self.frames.recv(), if !self.holding() => {
                    self.write_ready_acks().await?;
                    match self.hold_back(frame) {
                        Some(frame) => Box::pin(self.on_frame(frame)).await?,
                        None => Flow::Continue,
                    }
                }
                frame = released(&mut self.hold) => Box::pin(self.on_frame(Ok(frame))).await?,
                () = market_ready(self.market.as_ref()) => Box::pin(self.on_market()).await?,
            };
            if !matches!(flow, Flow::Continue) {
                return Ok(flow);
            }
        }
    }

    /// Writes the acks of publishes that are durable by now. Called before a signal is
    /// written: the journal marks a signal committed before it hands it to the ring, so a
    /// publisher gets its ack before its signal's own broadcast.
    async fn write_ready_acks(&mut self) -> Result<(), WsError> {
        while let Some(reply) = self
            .confirming
            .as_mut()
            .filter(|queue| !queue.is_empty())
            .and_then(|queue| queue.next().now_or_never().flatten())
        {
            Box::pin(self.write([reply])).await?;
        }
        Ok(())
    }

    /// Handles one message (or protocol violation) from the client.
    async fn on_client(&mut self, inbound: Inbound) -> Result<Flow, WsError> {
        if !matches!(inbound, Inbound::Refused(..)) {
            self.last_heard = Instant::now();
            self.backed_up = false;
        }
        self.owes_reply = true;
        match inbound {
            Inbound::Text(text) => self.on_text(text.as_str().trim()).await,
            Inbound::Binary(_) => Ok(Flow::Close(
                close_code::UNSUPPORTED_DATA,
                "binary frames are not supported; send text".into(),
            )),
            Inbound::Control => Ok(Flow::Continue),
            Inbound::Closed(frame) => {
                wire::reply_close(&mut self.ws).await;
                Ok(Flow::ClientClosed(frame))
            }
            Inbound::Refused(code, reason) => Ok(Flow::Close(code, reason)),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<Flow, WsError> {
        let reply = match command::parse(text) {
            Command::Test => return self.on_test().await,
            Command::Resume(since) => return Box::pin(self.resume(since)).await,
            Command::Ping => Message::text(
                serde_json::json!({"type": "pong", "timestamp": unix_now()}).to_string(),
            ),
            Command::Subscribe(topic) => self.on_topic("subscribe", &topic),
            Command::Unsubscribe(topic) => self.on_topic("unsubscribe", &topic),
            Command::Publish { signal, id } => {
                match self.on_publish(signal.as_ref(), id.as_ref()) {
                    Some(reply) => reply,
                    None => return Ok(Flow::Continue),
                }
            }
            Command::Invalid(message) => error_reply("invalid_message", &message),
        };
        self.write([reply]).await?;
        Ok(Flow::Continue)
    }

    /// `test`: synthetic signals for this client alone, within its rate limit.
    async fn on_test(&mut self) -> Result<Flow, WsError> {
        if !self.tests.take(Instant::now()) {
            let interval = self.shared.settings.test_interval;
            let reply = error_reply(
                "rate_limited",
                &format!(
                    "too many test requests: one per {} after a burst of {}",
                    humantime::format_duration(interval),
                    self.shared.settings.test_burst
                ),
            );
            self.write([reply]).await?;
            return Ok(Flow::Continue);
        }
        let n = self.tests_served;
        self.tests_served += 1;
        // Only symbols and strategies the token may see: a test shows no other data.
        let scope = self.filter.scope();
        let strategy = match &scope.strategies {
            Some(list) if !list.is_empty() => list[n % list.len()].as_str(),
            _ => "test",
        };
        let allows = |symbol: &str| scope.allows_symbol(symbol);
        let allowed = scope
            .symbols
            .is_some()
            .then_some(&allows as &dyn Fn(&str) -> bool);
        let reply = match self
            .shared
            .hub
            .test_frames(n, unix_now() as i64, allowed, strategy)
        {
            Some(frames) => frames.map(Message::Text),
            None => {
                let symbols = scope.symbols.as_deref().unwrap_or_default().join(", ");
                let reply = error_reply(
                    "test_unavailable",
                    &format!("no symbol of this token's scope ({symbols}) is tracked here yet"),
                );
                return self.write([reply]).await.map(|()| Flow::Continue);
            }
        };
        self.write(reply).await?;
        Ok(Flow::Continue)
    }

    /// A publisher's signal: checked, numbered (or queued for the stream) at once, so
    /// publishes keep their order; answered with its `seq` once durable (`None` here: the
    /// session reads on meanwhile, and acks go out in order). A publish the stream has not
    /// stored in time is answered as pending, with the key to retry it by.
    fn on_publish(
        &mut self,
        body: Option<&serde_json::Value>,
        id: Option<&serde_json::Value>,
    ) -> Option<Message> {
        if !self.claims.is_publisher() {
            return Some(error_reply(
                "publish_denied",
                "this token may not publish; a publisher token may",
            ));
        }
        let Some(body) = body else {
            return Some(error_reply(
                "invalid_message",
                "publish: give the signal in \"signal\"",
            ));
        };
        let id = match id.map(|id| id.as_str().ok_or("id: expected a string".to_string())) {
            Some(Ok(id)) => match crate::hub::keys::check_id(id) {
                Ok(id) => Some(id),
                Err(e) => return Some(error_reply("invalid_message", &e)),
            },
            Some(Err(e)) => return Some(error_reply("invalid_message", &e)),
            None => None,
        };
        let signal = match crate::hub::inbound::parse(body, unix_now() as i64) {
            Ok(signal) => signal,
            Err(e) => return Some(error_reply("invalid_signal", &e)),
        };
        let queue = self.confirming.get_or_insert_with(Default::default);
        if queue.len() >= MAX_CONFIRMING {
            return Some(error_reply(
                "publish_failed",
                "too many publishes waiting to be stored; wait for their acks",
            ));
        }
        let (hub, sub) = (self.shared.hub.clone(), self.claims.sub.clone());
        let submitted = match hub.submit(&signal, &sub, id) {
            Ok(submitted) => submitted,
            Err(e) => return Some(publish_refusal(&sub, &e)),
        };
        queue.push_back(Box::pin(async move {
            let id = submitted.id.clone();
            match hub.confirm(submitted, crate::hub::CONFIRM_WITHIN).await {
                Ok((seq, listeners)) => {
                    tracing::info!(%sub, symbol = %signal.symbol, side = signal.side.as_str(), seq, listeners, "signal published");
                    Message::text(
                        serde_json::json!({"type": "publish_ack", "seq": seq, "id": id, "timestamp": unix_now()})
                            .to_string(),
                    )
                }
                Err(e) => publish_refusal(&sub, &e),
            }
        }));
        None
    }

    /// Applies a subscribe or unsubscribe; returns the ack or the error to send.
    fn on_topic(&mut self, kind: &str, text: &str) -> Message {
        let outcome = if MarketTopic::is_market(text) {
            match MarketTopic::parse(text) {
                Ok(topic) => self.on_market_topic(kind, topic),
                Err(e) => return error_reply("invalid_topic", &e),
            }
        } else {
            match self.on_signal_topic(kind, text) {
                Ok(outcome) => outcome,
                Err(e) => return error_reply("invalid_topic", &e),
            }
        };
        match outcome {
            Ok(()) => Message::text(
                serde_json::json!({"type": format!("{kind}_ack"), "topic": text, "timestamp": unix_now()})
                    .to_string(),
            ),
            Err(e) => error_reply("subscription_failed", &e),
        }
    }

    /// A market-data topic: checked against the token's scope and the per-session limit.
    fn on_market_topic(&mut self, kind: &str, topic: MarketTopic) -> Result<(), String> {
        let feed = self.shared.hub.feed();
        let subs = self.market.get_or_insert_with(|| MarketSubs {
            feed: feed.clone(),
            inbox: Arc::default(),
            topics: Vec::new(),
        });
        let held = subs.topics.contains(&topic);
        if kind != "subscribe" {
            if !held {
                return Err(format!("{topic}: not subscribed"));
            }
            subs.feed.unsubscribe(&subs.inbox, &topic);
            subs.topics.retain(|t| *t != topic);
            return Ok(());
        }
        if held {
            return Ok(());
        }
        if !self.filter.scope().allows_symbol(&topic.symbol) {
            return Err(format!(
                "{topic}: this token may not receive {}",
                topic.symbol
            ));
        }
        let max = self.shared.max_market_topics;
        if subs.topics.len() >= max {
            return Err(format!(
                "{topic}: a session may hold {max} market-data topics (market_data.max_topics)"
            ));
        }
        subs.feed.subscribe(&subs.inbox, &topic)?;
        subs.topics.push(topic);
        Ok(())
    }

    /// A signal topic; the outer error is a malformed topic, the inner a refused one.
    fn on_signal_topic(&mut self, kind: &str, text: &str) -> Result<Result<(), String>, String> {
        let topic = Topic::parse(text)?;
        Ok(if kind == "subscribe" {
            self.filter.subscribe(text, topic)
        } else if self.filter.unsubscribe(text) {
            Ok(())
        } else {
            Err(format!("{text}: not subscribed"))
        })
    }

    /// Writes the pending market-data frames, each the latest of its topic, in one flush.
    async fn on_market(&mut self) -> Result<Flow, WsError> {
        let frames = match &self.market {
            Some(m) => m.inbox.take(),
            None => return Ok(Flow::Continue),
        };
        if !frames.is_empty() {
            self.write_frames(&frames).await?;
        }
        Ok(Flow::Continue)
    }

    /// Sends every journaled signal after `since` that this client has not had, in order.
    /// Live signals keep queueing in the ring meanwhile and follow without a gap or a repeat.
    async fn resume(&mut self, since: u64) -> Result<Flow, WsError> {
        let hub = self.shared.hub.clone();
        let Some(journal) = hub.history().cloned() else {
            let reply = error_reply("resume_failed", "this server keeps no signal history");
            self.write([reply]).await?;
            return Ok(Flow::Continue);
        };
        // Subscribed before this read, so everything after `head` will come from the ring.
        let head = hub.last_seq();
        if since >= head {
            return Ok(Flow::Continue);
        }
        let flushed = tokio::time::timeout(RESUME_FLUSH_WAIT, journal.wait_readable(head)).await;
        if !matches!(flushed, Ok(Ok(()))) {
            let reply = error_reply("resume_failed", "the signal journal is not keeping up");
            self.write([reply]).await?;
            return Ok(Flow::Continue);
        }
        let mut after = since;
        let mut checked = false;
        loop {
            let (page, oldest) = match journal.read(after, head).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "resume read failed");
                    let reply = error_reply("resume_failed", "the signal journal cannot be read");
                    self.write([reply]).await?;
                    return Ok(Flow::Continue);
                }
            };
            if !checked {
                checked = true;
                let oldest = oldest.unwrap_or(head + 1);
                if oldest > since + 1 {
                    self.write([history_expired(since, oldest)]).await?;
                }
            }
            let Some(last) = page.last().map(|p| p.seq) else {
                break;
            };
            after = last;
            let (already_from, already_to) = (self.first_live.unwrap_or(u64::MAX), self.last_sent);
            // Collected first: the filter is borrowed from `self`, which the write needs.
            let filter = &self.filter;
            let missing: Vec<Frame> = page
                .into_iter()
                .filter(|p| (p.seq < already_from || p.seq > already_to) && filter.allows(p))
                .map(|p| p.frame)
                .collect();
            // A batch per write, as live signals go: a page corked whole is two copies of
            // it (plaintext and ciphertext) held until a slow client takes them.
            for batch in missing.chunks(MAX_BATCH) {
                self.write_frames(batch).await?;
                // Live signals wait in the ring meanwhile; once the ring has overwritten one
                // this client has not taken, the rest of its history cannot join the live
                // stream without a gap: it is a slow consumer now, not after its history.
                if let Some(missed) = behind(&self.frames, hub.ring_size())() {
                    return Ok(slow_consumer(missed));
                }
            }
            if after >= head {
                break;
            }
        }
        self.last_sent = self.last_sent.max(head);
        Ok(Flow::Continue)
    }

    /// Writes hub frames straight to TLS, corked: one plaintext of frames, one TLS record
    /// (or as few as it takes), one syscall, within the write timeout. tungstenite's own
    /// pending output (a pong it answered a ping with) is flushed first, to keep the order.
    async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), WsError> {
        if frames.is_empty() {
            return Ok(());
        }
        let write_timeout = self.shared.settings.write_timeout;
        let ws = &mut self.ws;
        let delivered = &self.shared.stats.delivered;
        let owes_reply = &mut self.owes_reply;
        let send = async move {
            if *owes_reply {
                ws.flush().await?;
                *owes_reply = false;
            }
            let tls = ws.tls_mut();
            framing::with_text_frames(frames, |plaintext| tls.queue(plaintext))?;
            std::future::poll_fn(|cx| tls.poll_send(cx)).await?;
            delivered.fetch_add(frames.len() as u64, Ordering::Relaxed);
            Ok(())
        };
        self.sent_since_tick = true;
        let behind = behind(&self.frames, self.shared.hub.ring_size());
        within(write_timeout, send, &mut self.backed_up, behind).await
    }

    /// Writes any number of messages and flushes once, within the write timeout.
    async fn write_all(&mut self, messages: impl Iterator<Item = Message>) -> Result<(), WsError> {
        let limit = self.shared.settings.write_timeout;
        let behind = behind(&self.frames, self.shared.hub.ring_size());
        let waited = &mut self.backed_up;
        let texts = wire::write_all(&mut self.ws, messages, limit, waited, behind).await?;
        self.owes_reply = false;
        let delivered = &self.shared.stats.delivered;
        delivered.fetch_add(texts, Ordering::Relaxed);
        Ok(())
    }

    /// Notes a live signal as handled; true when it is to be sent (the client does not have
    /// it from a resume, and its scope and topics take it).
    fn take_live(&mut self, p: &Published) -> bool {
        if p.seq <= self.last_sent {
            return false;
        }
        self.last_sent = p.seq;
        self.first_live.get_or_insert(p.seq);
        self.filter.allows(p)
    }

    /// A signal is held back (see `hold_back`): the ring is not read until it goes.
    fn holding(&self) -> bool {
        self.hold.as_ref().is_some_and(|h| h.frame.is_some())
    }

    /// Holds a live signal back while the runtime is busy and it came sooner than
    /// `server.coalesce` after this client's last write; gives it back to be sent now
    /// otherwise. Busy is judged afresh at each signal, by how long it waited for this
    /// session, so a session is held only while the runtime is behind.
    fn hold_back(
        &mut self,
        frame: Result<Published, RecvError>,
    ) -> Option<Result<Published, RecvError>> {
        let Ok(p) = &frame else {
            return Some(frame);
        };
        if self.shared.settings.coalesce.is_zero() {
            return Some(frame);
        }
        self.coalescing = p.at.elapsed() >= BUSY;
        let at = match self.next_write {
            Some(at) if self.coalescing && std::time::Instant::now() < at => at,
            _ => return Some(frame),
        };
        let deadline = tokio::time::Instant::from_std(at);
        let p = frame.ok()?;
        match &mut self.hold {
            Some(h) => {
                h.timer.as_mut().reset(deadline);
                h.frame = Some(p);
            }
            None => {
                self.hold = Some(Box::new(Hold {
                    timer: Box::pin(tokio::time::sleep_until(deadline)),
                    frame: Some(p),
                }))
            }
        }
        None
    }

    /// Delivers a frame from the hub, then drains what else is queued before one flush.
    async fn on_frame(&mut self, frame: Result<Published, RecvError>) -> Result<Flow, WsError> {
        let first = match frame {
            Ok(f) => f,
            Err(RecvError::Lagged(missed)) => return Ok(slow_consumer(missed)),
            Err(RecvError::Closed) => {
                return Ok(Flow::Close(
                    close_code::GOING_AWAY,
                    "signal feed stopped".into(),
                ));
            }
        };
        let oldest = first.at;
        let mut lagged = None;
        let mut batch = Vec::new();
        if self.take_live(&first) {
            batch.push(first.frame);
        }
        // Signals that were waiting behind the first: counted as they are drained, since
        // asking the ring (`Receiver::len`) takes the lock every publish takes too.
        let mut waiting = 0;
        for _ in 1..MAX_BATCH {
            match self.frames.try_recv() {
                Ok(p) => {
                    waiting += 1;
                    if self.take_live(&p) {
                        batch.push(p.frame);
                    }
                }
                Err(TryRecvError::Lagged(missed)) => {
                    lagged = Some(missed);
                    break;
                }
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return Ok(lagged.map(slow_consumer).unwrap_or(Flow::Continue));
        }
        if waiting == MAX_BATCH - 1 {
            // A full batch: more may wait behind it, and only the ring knows how many.
            waiting += self.frames.len();
        }
        self.write_frames(&batch).await?;
        self.next_write = self
            .coalescing
            .then(|| std::time::Instant::now() + self.shared.settings.coalesce);
        self.observed.write(&self.shared.stats, waiting, oldest);
        Ok(lagged.map(slow_consumer).unwrap_or(Flow::Continue))
    }

    async fn on_ping_tick(&mut self) -> Result<Flow, WsError> {
        self.observed.flush(&self.shared.stats);
        let idle = self.last_heard.elapsed();
        if idle >= self.shared.settings.idle_timeout {
            // Silent behind a backlog: its pong is somewhere in what it has not read.
            let unread = self.ws.tls().unread();
            if self.backed_up || unread >= BACKLOG {
                return Ok(Flow::Close(
                    close_code::SLOW_CONSUMER,
                    format!(
                        "slow consumer: nothing heard for {}s, {} KiB sent and not read",
                        idle.as_secs(),
                        unread / 1024
                    ),
                ));
            }
            return Ok(Flow::Close(
                close_code::IDLE_TIMEOUT,
                format!("nothing heard for {}s", idle.as_secs()),
            ));
        }
        self.write([Message::Ping(Default::default())]).await?;
        if !std::mem::take(&mut self.sent_since_tick) && !self.holding() {
            self.hold = None; // its timer too: made again when the session is busy again
        }
        Ok(Flow::Continue)
    }

    /// Writes messages and flushes once, within the write timeout.
    async fn write<const N: usize>(&mut self, messages: [Message; N]) -> Result<(), WsError> {
        self.write_all(messages.into_iter()).await
    }

    /// Sends a close frame and waits briefly for the client's reply.
    async fn close(&mut self, code: u16, reason: &str) {
        wire::close(&mut self.ws, code, reason).await;
    }
}

/// The close the server sends when it ends a session itself.
fn ended_by_server(why: Why) -> Flow {
    match why {
        Why::Shutdown => Flow::Close(close_code::GOING_AWAY, "server shutting down".into()),
        Why::Expired => Flow::Close(close_code::POLICY_VIOLATION, "token expired".into()),
        Why::Revoked => Flow::Close(close_code::POLICY_VIOLATION, crate::auth::REVOKED.into()),
    }
}

/// A session's market-data subscriptions; leaving the feed when the session ends.
struct MarketSubs {
    feed: Arc<Feed>,
    /// Where the feed leaves this session's frames, conflated.
    inbox: Arc<Inbox>,
    topics: Vec<MarketTopic>,
}

impl Drop for MarketSubs {
    fn drop(&mut self) {
        for topic in &self.topics {
            self.feed.unsubscribe(&self.inbox, topic);
        }
    }
}

/// Resolves when market-data frames are pending; never without subscriptions.
async fn market_ready(subs: Option<&MarketSubs>) {
    match subs {
        Some(subs) => subs.inbox.ready().await,
        None => std::future::pending().await,
    }
}

/// For a write that waits: how many signals the ring has overwritten that this session has
/// not taken, once it has.
fn behind(frames: &broadcast::Receiver<Published>, ring: usize) -> impl Fn() -> Option<u64> {
    move || {
        let waiting = frames.len();
        (waiting > ring).then(|| (waiting - ring) as u64)
    }
}

fn slow_consumer(missed: u64) -> Flow {
    Flow::Close(
        close_code::SLOW_CONSUMER,
        format!("slow consumer: fell {missed} signals behind"),
    )
}

/// `history_expired`: the client asked for signals older than the journal keeps.
fn history_expired(since: u64, oldest: u64) -> Message {
    let body = serde_json::json!({
        "type": "error",
        "error_code": "history_expired",
        "error_message": format!("signals after seq {since} are no longer kept; the oldest kept is {oldest}"),
        "oldest_seq": oldest,
        "timestamp": unix_now(),
    });
    Message::text(body.to_string())
}

/// The `error` message of the command protocol (reference 003), as a text frame.
fn error_reply(code: &str, message: &str) -> Message {
    let body = serde_json::json!({
        "type": "error",
        "error_code": code,
        "error_message": message,
        "timestamp": unix_now(),
    });
    Message::text(body.to_string())
}

/// Token bucket for `test` requests: `burst` at once, then one per `interval`.
struct TestBudget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TestBudget {
    fn new(burst: u32, interval: Duration) -> Self {
        Self {
            tokens: burst as f64,
            burst: burst as f64,
            per_second: 1.0 / interval.as_secs_f64().max(1e-3),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_budget_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TestBudget::new(3, Duration::from_secs(1));
        b.last = t0;
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        assert!(b.take(t0 + Duration::from_millis(1100)));
    }
}
