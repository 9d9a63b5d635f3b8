//! A session's WebSocket I/O: tungstenite's settings, what a client frame means (or which
//! close code it earns), buffered writes within a timeout, and the closing handshake.
//!
//! Generic over the byte stream, so the conformance echo (`examples/echo.rs`, driven by the
//! Autobahn cases over plain TCP) runs exactly the code sessions run over TLS.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::hub::Frame;

/// A hub frame as a text message, for the writes that go through tungstenite (most frames
/// go straight to TLS instead: `framing.rs`). The bytes are shared, not copied; they are
/// checked as UTF-8 once here, which a frame made from a string always is.
pub fn text(frame: &Frame) -> Message {
    Message::Text(Utf8Bytes::try_from(frame.bytes()).unwrap_or_default())
}

use super::close_code;
use crate::config::ServerSettings;

/// How long a closing session waits for the other side of the closing handshake.
pub const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);

/// tungstenite settings: a small read buffer (not the 128 KiB default), the configured
/// message limit, and a write buffer that lets a batch of replies share one TLS record
/// and has room for a message as large as a client may send.
pub fn ws_config(s: &ServerSettings) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(s.read_buffer_size)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size((256 * 1024).max(s.max_message_size + 16 * 1024))
        .max_message_size(Some(s.max_message_size))
        .max_frame_size(Some(s.max_message_size))
}

/// What one read from the client amounts to.
#[derive(Debug)]
pub enum Inbound {
    /// A complete, valid UTF-8 text message.
    Text(Utf8Bytes),
    /// A complete binary message (sessions refuse it with 1003; the echo returns it).
    Binary(Bytes),
    /// A ping or pong: proof of life, already answered by tungstenite.
    Control,
    /// The client closed (its code and reason, if it sent a close frame); tungstenite has
    /// queued the reply, which [`reply_close`] sends.
    Closed(Option<(u16, String)>),
    /// The client broke a rule: the session closes with this code and reason.
    Refused(u16, String),
}

impl Inbound {
    /// What the client's next message (`ws.next()`, which is safe to cancel) amounts to.
    /// Transport failures are `Err`; protocol violations become [`Inbound::Refused`] with
    /// their close code. On [`Inbound::Closed`], call [`reply_close`].
    pub fn classify(message: Option<Result<Message, WsError>>) -> Result<Inbound, WsError> {
        let message = match message {
            None => return Ok(Inbound::Closed(None)),
            Some(Ok(m)) => m,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                return Ok(Inbound::Refused(
                    close_code::MESSAGE_TOO_BIG,
                    format!("message of {size} bytes is over the {max_size}-byte limit"),
                ));
            }
            Some(Err(WsError::Utf8(_))) => {
                return Ok(Inbound::Refused(
                    close_code::INVALID_PAYLOAD,
                    "text is not UTF-8".into(),
                ));
            }
            // The socket ended without a close frame: the network's doing, not a protocol
            // violation to answer.
            Some(Err(e @ WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                return Err(e);
            }
            Some(Err(WsError::Protocol(e))) => {
                return Ok(Inbound::Refused(close_code::PROTOCOL_ERROR, e.to_string()));
            }
            Some(Err(e)) => return Err(e),
        };
        Ok(match message {
            Message::Text(text) => Inbound::Text(text),
            Message::Binary(data) => Inbound::Binary(data),
            Message::Close(frame) => {
                Inbound::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
        })
    }
}

/// Whether a session's transport error is the connection going away (the peer reset or
/// closed it, or a write timed out) rather than a fault worth a warning.
pub fn dropped(e: &WsError) -> bool {
    matches!(
        e,
        WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Io(_)
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    )
}

/// Sends the close reply tungstenite queued when the client's close frame arrived, before
/// the socket is dropped.
pub async fn reply_close<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, ws.flush()).await;
}

/// Writes `messages` and flushes once, failed as timed out after `limit` or as
/// [`FellBehind`] once `behind` says so. Returns how many were text messages (deliveries,
/// for the counters); `waited` as [`within`] sets it.
pub async fn write_all<S>(
    ws: &mut WebSocketStream<S>,
    messages: impl Iterator<Item = Message>,
    limit: Duration,
    waited: &mut bool,
    behind: impl Fn() -> Option<u64>,
) -> Result<u64, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(
        limit,
        async move {
            let mut texts = 0;
            for m in messages {
                texts += u64::from(m.is_text());
                ws.feed(m).await?;
            }
            ws.flush().await?;
            Ok(texts)
        },
        waited,
        behind,
    )
    .await
}

/// How often a write that waits asks whether its client has lost signals meanwhile.
const BEHIND_CHECK: Duration = Duration::from_secs(1);

/// Why a write that waited was given up: while it waited, the client's signals ring
/// overwrote this many it had not taken. The session closes it as a slow consumer then,
/// rather than after the write timeout: the write cannot make up what is lost.
#[derive(Debug, thiserror::Error)]
#[error("fell {0} signals behind while a write waited")]
pub struct FellBehind(pub u64);

/// How many signals behind, if `e` is a write given up as [`FellBehind`].
pub fn fell_behind(e: &WsError) -> Option<u64> {
    match e {
        WsError::Io(io) => io.get_ref()?.downcast_ref::<FellBehind>().map(|f| f.0),
        _ => None,
    }
}

/// A write to the client, failed as timed out if it takes longer than `limit`, or as
/// [`FellBehind`] when `behind` (asked every second while the write waits) reports signals
/// lost. Sets `waited` when the write had to wait for the client's socket to take it (its
/// backlog is full); it never clears it.
///
/// Most writes finish at their first poll (the socket takes the bytes): timers are armed
/// only for a write that has to wait, so a fan-out does not add and remove one per client.
pub async fn within<T>(
    limit: Duration,
    write: impl Future<Output = Result<T, WsError>>,
    waited: &mut bool,
    behind: impl Fn() -> Option<u64>,
) -> Result<T, WsError> {
    let mut write = std::pin::pin!(write);
    let first = std::future::poll_fn(|cx| match write.as_mut().poll(cx) {
        std::task::Poll::Ready(done) => std::task::Poll::Ready(Some(done)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await;
    *waited |= first.is_none();
    if let Some(done) = first {
        return done;
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let wake = deadline.min(tokio::time::Instant::now() + BEHIND_CHECK);
        tokio::select! {
            biased;
            done = write.as_mut() => return done,
            () = tokio::time::sleep_until(wake) => {}
        }
        if let Some(missed) = behind() {
            return Err(WsError::Io(std::io::Error::other(FellBehind(missed))));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(WsError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write to client timed out",
            )));
        }
    }
}

/// Sends a close frame with `code` and `reason` (cut to fit a control frame) and waits
/// briefly for the client's reply.
pub async fn close<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(truncate(reason, 120)),
    };
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async move {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// Ends the session's TLS as TLS asks: the server's close_notify (or, when rustls refused
/// the client, the alert it owes), then the socket's end, within [`CLOSE_REPLY_WAIT`].
pub async fn goodbye<S: AsyncWrite + Unpin>(tls: &mut S) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, tls.shutdown()).await;
}

/// At most `max` bytes of `s`, cut on a character boundary (close reasons are limited to 123).
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_given_up_behind_is_told_from_other_errors() {
        let behind = WsError::Io(std::io::Error::other(FellBehind(7)));
        assert_eq!(fell_behind(&behind), Some(7));
        let timed_out = WsError::Io(std::io::ErrorKind::TimedOut.into());
        assert_eq!(fell_behind(&timed_out), None);
        assert_eq!(fell_behind(&WsError::ConnectionClosed), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
