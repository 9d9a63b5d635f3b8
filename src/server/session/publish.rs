//! The publish command: a publisher's signal checked and numbered at once, acked in order
//! once durable, or answered as pending with the key to retry it by.

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::{Session, error_reply};
use crate::clock::unix_now;

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
pub(super) type Confirming = FuturesOrdered<BoxFuture<'static, Message>>;

/// Publishes one session may have waiting for the stream; beyond, it is told to slow down.
const MAX_CONFIRMING: usize = 4096;

/// The next publish ack ready, or never when none waits.
pub(super) async fn next_confirmed(confirming: &mut Option<Box<Confirming>>) -> Message {
    match confirming {
        Some(queue) if !queue.is_empty() => match queue.next().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        },
        _ => std::future::pending().await,
    }
}

impl Session {
    /// Writes the acks of publishes that are durable by now. Called before a signal is
    /// written: the journal marks a signal committed before it hands it to the ring, so a
    /// publisher gets its ack before its signal's own broadcast.
    pub(super) async fn write_ready_acks(&mut self) -> Result<(), WsError> {
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

    /// A publisher's signal: checked, numbered (or queued for the stream) at once, so
    /// publishes keep their order; answered with its `seq` once durable (`None` here: the
    /// session reads on meanwhile, and acks go out in order). A publish the stream has not
    /// stored in time is answered as pending, with the key to retry it by.
    pub(super) fn on_publish(
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
}
