//! Delivery: live signals drained from the hub's ring and written in batches, and every
//! write a session makes, each within the write timeout.

use std::sync::atomic::Ordering;

use futures_util::SinkExt;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::{Flow, Session, slow_consumer};
use crate::hub::{Frame, Published};
use crate::server::handshake::ClientTls;
use crate::server::histogram::Local;
use crate::server::stats::{DEPTH_BUCKETS, LATENCY_BUCKETS, Stats};
use crate::server::wire::{self, within};
use crate::server::{MAX_BATCH, close_code, framing};

/// A session's part of the queue-depth and fan-out-latency histograms.
#[derive(Default)]
pub(super) struct Observations {
    depth: Local<{ DEPTH_BUCKETS.len() }>,
    latency: Local<{ LATENCY_BUCKETS.len() }>,
}

impl Observations {
    /// One write of live signals: how many more waited, and how long the oldest took.
    pub(super) fn write(&mut self, stats: &Stats, waiting: usize, oldest: std::time::Instant) {
        let micros = oldest.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let full = self.depth.observe(&stats.queue_depth, waiting as u64)
            | self.latency.observe(&stats.fanout_latency, micros);
        if full {
            self.flush(stats);
        }
    }

    pub(super) fn flush(&mut self, stats: &Stats) {
        stats.queue_depth.absorb(&mut self.depth);
        stats.fanout_latency.absorb(&mut self.latency);
    }
}

impl Session {
    /// Delivers a frame from the hub, then drains what else is queued before one flush.
    pub(super) async fn on_frame(
        &mut self,
        frame: Result<Published, RecvError>,
    ) -> Result<Flow, WsError> {
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

    /// Writes hub frames straight to TLS, corked: one plaintext of frames, one TLS record
    /// (or as few as it takes), one syscall, within the write timeout. tungstenite's own
    /// pending output (a pong it answered a ping with) is flushed first, to keep the order.
    pub(super) async fn write_frames(&mut self, frames: &[Frame]) -> Result<(), WsError> {
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

    /// Writes messages and flushes once, within the write timeout.
    pub(super) async fn write<const N: usize>(
        &mut self,
        messages: [Message; N],
    ) -> Result<(), WsError> {
        self.write_all(messages.into_iter()).await
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
}

/// For a write that waits: how many signals the ring has overwritten that this session has
/// not taken, once it has.
pub(super) fn behind(
    frames: &broadcast::Receiver<Published>,
    ring: usize,
) -> impl Fn() -> Option<u64> {
    move || {
        let waiting = frames.len();
        (waiting > ring).then(|| (waiting - ring) as u64)
    }
}
