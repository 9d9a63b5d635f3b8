//! Resume: the journaled signals after a client's last `seq`, joined to the live stream with
//! no gap and no repeat.

use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::{Flow, Session, behind, error_reply, slow_consumer};
use crate::clock::unix_now;
use crate::hub::Frame;
use crate::server::MAX_BATCH;

/// How long a resume waits for the journal to catch up with the hub.
const RESUME_FLUSH_WAIT: Duration = Duration::from_secs(5);

impl Session {
    /// Sends every journaled signal after `since` that this client has not had, in order.
    /// Live signals keep queueing in the ring meanwhile and follow without a gap or a repeat.
    pub(super) async fn resume(&mut self, since: u64) -> Result<Flow, WsError> {
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
