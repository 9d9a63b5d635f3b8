//! One client session: a single `select!` over client frames, hub frames and timers.
//!
//! Inner steps use `?` for transport errors; [`Session::run`] triages how the session ended
//! once, at its edge, into one log event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::handshake::ClientWs;
use super::{MAX_BATCH, Shared, close_code};
use crate::auth::{Claims, unix_now};
use crate::hub::Frame;

/// How long a closing session waits for the client's close reply.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);

/// What the loop decided after one event.
enum Flow {
    Continue,
    /// The client sent its close frame; tungstenite has queued the reply.
    ClientClosed,
    /// The server ends the session with this code and reason.
    Close(u16, String),
}

/// How a session ended, for the one log event at its edge.
enum Ended {
    ByClient,
    ByServer(u16, String),
    Transport(WsError),
}

/// A live, authenticated client.
pub struct Session {
    ws: ClientWs,
    peer: SocketAddr,
    /// The verified token's claims: `sub`/`jti` for logs, `exp` for the session deadline.
    claims: Claims,
    shared: Arc<Shared>,
    /// This session's view of the hub's ring of frames.
    frames: broadcast::Receiver<Frame>,
    shutdown: CancellationToken,
    /// Last time anything arrived from the client (data, ping or pong).
    last_heard: Instant,
    /// Rate limit for `test`.
    tests: TestBudget,
    /// How many `test` replies were sent, to rotate through symbols.
    tests_served: usize,
}

impl Session {
    pub fn new(
        ws: ClientWs,
        peer: SocketAddr,
        claims: Claims,
        shared: Arc<Shared>,
        shutdown: CancellationToken,
    ) -> Self {
        let s = &shared.settings;
        Self {
            frames: shared.hub.subscribe(),
            tests: TestBudget::new(s.test_burst, s.test_interval),
            ws,
            peer,
            claims,
            shutdown,
            last_heard: Instant::now(),
            tests_served: 0,
            shared,
        }
    }

    /// Serves the client until either side ends the session.
    pub async fn run(mut self) {
        tracing::info!(peer = %self.peer, sub = %self.claims.sub, jti = %self.claims.jti, "session opened");
        let ended = match self.serve().await {
            Ok(Flow::ClientClosed) => Ended::ByClient,
            Ok(Flow::Close(code, reason)) => {
                self.close(code, &reason).await;
                Ended::ByServer(code, reason)
            }
            Ok(Flow::Continue) => Ended::ByClient,
            Err(e) => Ended::Transport(e),
        };
        let (peer, sub, jti) = (self.peer, &self.claims.sub, &self.claims.jti);
        match ended {
            Ended::ByClient => tracing::info!(%peer, %sub, %jti, "session closed by client"),
            Ended::ByServer(code, reason) => {
                tracing::info!(%peer, %sub, %jti, code, %reason, "session closed by server")
            }
            Ended::Transport(
                WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_),
            ) => tracing::info!(%peer, %sub, %jti, "session dropped by the network"),
            Ended::Transport(e) => {
                tracing::warn!(%peer, %sub, %jti, error = %e, "session ended by error")
            }
        }
    }

    async fn serve(&mut self) -> Result<Flow, WsError> {
        let expires = deadline(self.claims.exp);
        let mut ping = tokio::time::interval(self.shared.settings.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        loop {
            let flow = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Flow::Close(close_code::GOING_AWAY, "server shutting down".into()),
                _ = tokio::time::sleep_until(expires) => Flow::Close(close_code::POLICY_VIOLATION, "token expired".into()),
                message = self.ws.next() => match message {
                    None => return Ok(Flow::ClientClosed),
                    Some(message) => self.on_client(message).await?,
                },
                frame = self.frames.recv() => self.on_frame(frame).await?,
                _ = ping.tick() => self.on_ping_tick().await?,
            };
            if !matches!(flow, Flow::Continue) {
                return Ok(flow);
            }
        }
    }

    /// Handles one message (or read error) from the client.
    async fn on_client(&mut self, message: Result<Message, WsError>) -> Result<Flow, WsError> {
        let message = match message {
            Ok(m) => m,
            Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                return Ok(Flow::Close(
                    close_code::MESSAGE_TOO_BIG,
                    format!("message of {size} bytes is over the {max_size}-byte limit"),
                ));
            }
            Err(WsError::Utf8(_)) => {
                return Ok(Flow::Close(
                    close_code::INVALID_PAYLOAD,
                    "text is not UTF-8".into(),
                ));
            }
            Err(WsError::Protocol(e)) => {
                return Ok(Flow::Close(close_code::PROTOCOL_ERROR, e.to_string()));
            }
            Err(e) => return Err(e),
        };
        self.last_heard = Instant::now();
        match message {
            Message::Text(text) => self.on_text(text.as_str().trim()).await,
            Message::Binary(_) => Ok(Flow::Close(
                close_code::UNSUPPORTED_DATA,
                "binary frames are not supported; send text".into(),
            )),
            Message::Close(_) => {
                // tungstenite queued the close reply; send it before dropping the socket.
                let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, self.ws.flush()).await;
                Ok(Flow::ClientClosed)
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Flow::Continue),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<Flow, WsError> {
        if text == "test" {
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
            let frames = self
                .shared
                .hub
                .test_frames(self.tests_served, unix_now() as i64);
            self.tests_served += 1;
            self.write(frames.map(Message::Text)).await?;
            return Ok(Flow::Continue);
        }
        let shown: String = text.chars().take(32).collect();
        let reply = error_reply(
            "invalid_message",
            &format!("unknown command {shown:?}; send \"test\" for test signals"),
        );
        self.write([reply]).await?;
        Ok(Flow::Continue)
    }

    /// Delivers a frame from the hub, then drains what else is queued before one flush.
    async fn on_frame(&mut self, frame: Result<Frame, RecvError>) -> Result<Flow, WsError> {
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
        let write_timeout = self.shared.settings.write_timeout;
        let mut lagged = None;
        let batch = async {
            self.ws.feed(Message::Text(first)).await?;
            for _ in 1..MAX_BATCH {
                match self.frames.try_recv() {
                    Ok(f) => self.ws.feed(Message::Text(f)).await?,
                    Err(TryRecvError::Lagged(missed)) => {
                        lagged = Some(missed);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.ws.flush().await
        };
        tokio::time::timeout(write_timeout, batch)
            .await
            .map_err(|_| write_timed_out())??;
        Ok(lagged.map(slow_consumer).unwrap_or(Flow::Continue))
    }

    async fn on_ping_tick(&mut self) -> Result<Flow, WsError> {
        let idle = self.last_heard.elapsed();
        if idle >= self.shared.settings.idle_timeout {
            return Ok(Flow::Close(
                close_code::IDLE_TIMEOUT,
                format!("nothing heard for {}s", idle.as_secs()),
            ));
        }
        self.write([Message::Ping(Default::default())]).await?;
        Ok(Flow::Continue)
    }

    /// Writes messages and flushes once, within the write timeout.
    async fn write<const N: usize>(&mut self, messages: [Message; N]) -> Result<(), WsError> {
        let write_timeout = self.shared.settings.write_timeout;
        let ws = &mut self.ws;
        let send = async move {
            for m in messages {
                ws.feed(m).await?;
            }
            ws.flush().await
        };
        tokio::time::timeout(write_timeout, send)
            .await
            .map_err(|_| write_timed_out())?
    }

    /// Sends a close frame and waits briefly for the client's reply.
    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from(truncate(reason, 120)),
        };
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async move {
            if ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    }
}

fn slow_consumer(missed: u64) -> Flow {
    Flow::Close(
        close_code::SLOW_CONSUMER,
        format!("slow consumer: fell {missed} signals behind"),
    )
}

fn write_timed_out() -> WsError {
    WsError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "write to client timed out",
    ))
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

/// When the token expires, as a tokio instant.
fn deadline(exp: u64) -> tokio::time::Instant {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(exp).saturating_sub(now);
    // Cap far-future expiries so the instant arithmetic cannot overflow.
    tokio::time::Instant::now() + left.min(Duration::from_secs(100 * 365 * 86_400))
}

/// At most `max` bytes of `s`, cut on a character boundary (close reasons are limited to 123).
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
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

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
