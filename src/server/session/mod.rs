//! One client session: a single `select!` over client frames, hub frames and timers.
//!
//! Inner steps use `?` for transport errors; [`Session::run`] triages how the session ended
//! once, at its edge, into one log event.
//!
//! The loop's parts live beside it: [`delivery`], [`resume`], [`publish`], [`topics`],
//! [`coalesce`] and [`test_signals`].

mod coalesce;
mod delivery;
mod publish;
mod resume;
mod test_signals;
mod topics;
mod wake_gate;

use coalesce::{Hold, released};
use delivery::{Observations, behind};
use publish::{Confirming, next_confirmed};
use test_signals::TestBudget;
use topics::{MarketSubs, market_ready};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tokio::time::Instant;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::command::{self, Command};
use super::endings::{Endings, Enrolled, Why};
use super::filter::Filter;
use super::handshake::{Accepted, ClientTls, ClientWs};
use super::stats::Ending;
use super::wire::{self, Inbound};
use super::{Shared, close_code};
use crate::auth::{Claims, Scope};
use crate::clock::unix_now;
use crate::hub::Published;
use wake_gate::WakeGate;

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
    /// Last time anything arrived from the client (data, ping or pong). tokio's clock, as the
    /// ping timer it is checked at runs on, so a test on a paused clock sees idle time pass.
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
    /// them woke the session, not on every signal (see `wake_gate`).
    quiet: WakeGate,
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

/// Bytes sent and not taken by a client that make its silence a backlog's (4000) rather
/// than a vanished peer's (4001): more than a moment's traffic in flight.
const BACKLOG: usize = 16 * 1024;

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
            quiet: WakeGate::default(),
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

fn slow_consumer(missed: u64) -> Flow {
    Flow::Close(
        close_code::SLOW_CONSUMER,
        format!("slow consumer: fell {missed} signals behind"),
    )
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
