//! The signed chain on the stream. The leading producer is the stream's one writer: it
//! numbers each signal with the `seq` the stream will store it at, seals it (`hub::proof`)
//! and appends it only if the stream's last message is still the one it chained on
//! (`Nats-Expected-Last-Sequence`). So the `seq` and the chain a signature covers are the
//! stream's, and edges relay the stored frame untouched. When another writer came first (two
//! producers overlapping in a takeover), the append is refused; the writer reads the tail
//! again and seals afresh.
//!
//! One signal is in flight at a time: with several, a duplicate (refused by its id while
//! the next was accepted) could leave the next chained to a frame the stream never stored.

use std::sync::Arc;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;

use super::Cluster;
use super::keys::JournalKey;
use super::outbox::{Unsent, confirm};
use crate::hub::proof::{Chain, GENESIS, Hash, hash_after};
use crate::hub::{Outgoing, encode_seq};

/// The leader's end of the chain.
pub struct Writer {
    key: Arc<JournalKey>,
    /// The stream's last `seq` and that message's chain hash, as this writer last knew them;
    /// `None` once unknown (at a takeover, after a failure), read again before the next
    /// append. A stale one costs a refused append, never a broken chain.
    tail: Option<(u64, Hash)>,
}

/// Why one append failed.
struct Failed {
    error: String,
    /// Another writer appended first: try again at once from the new tail.
    conflict: bool,
}

impl Writer {
    pub fn new(key: Arc<JournalKey>) -> Self {
        Writer { key, tail: None }
    }

    /// Seals and appends `batch` in order, confirming each; stops at the first that fails
    /// and hands it back with the rest.
    pub async fn append(
        &mut self,
        cluster: &Cluster,
        batch: Vec<Outgoing>,
        failures: u32,
    ) -> Unsent {
        let mut rest = batch.into_iter();
        while let Some(out) = rest.next() {
            match self.append_one(cluster, &out).await {
                Ok((seq, duplicate)) => confirm(cluster, out, seq, duplicate, failures),
                Err(failed) => {
                    let mut signals = vec![out];
                    signals.extend(rest);
                    return Unsent {
                        signals,
                        error: failed.error,
                        conflict: failed.conflict,
                    };
                }
            }
        }
        Unsent::default()
    }

    /// The `seq` the stream stored `out` at, and whether it held it already.
    async fn append_one(
        &mut self,
        cluster: &Cluster,
        out: &Outgoing,
    ) -> Result<(u64, bool), Failed> {
        let failed = |error: String| Failed {
            error,
            conflict: false,
        };
        let (last, prev) = match self.tail.take() {
            Some(tail) => tail,
            None => read_tail(cluster).await.map_err(failed)?,
        };
        let seq = last + 1;
        let frame = encode_seq(&out.signal, seq);
        let mut chain = Chain {
            prev,
            signer: self.key.current(),
        };
        let sealed = chain
            .seal(frame.as_str())
            .unwrap_or_else(|| frame.to_string());
        let message = PublishMessage::build()
            .payload(sealed.into())
            .message_id(&out.id)
            .expected_last_sequence(last);
        let ack = cluster
            .js
            .send_publish(cluster.subject(&out.signal), message)
            .await
            .map_err(|e| failed(e.to_string()))?;
        match ack.await {
            // Stored before under its id: nothing appended, the tail is as it was.
            Ok(ack) if ack.duplicate => {
                self.tail = Some((last, prev));
                Ok((ack.sequence, true))
            }
            Ok(ack) => {
                if ack.sequence == seq {
                    self.tail = Some((seq, chain.prev));
                } else {
                    tracing::error!(
                        sealed = seq,
                        stored = ack.sequence,
                        "the stream stored a signal at another seq than it was sealed for"
                    );
                }
                Ok((ack.sequence, false))
            }
            Err(e) => Err(Failed {
                conflict: e.kind() == PublishErrorKind::WrongLastSequence,
                error: e.to_string(),
            }),
        }
    }
}

/// The stream's last `seq` and the chain hash its message leaves (a fresh chain after a
/// message that is not a sealed frame, or one no longer held).
async fn read_tail(cluster: &Cluster) -> Result<(u64, Hash), String> {
    let mut stream = cluster.stream().await?;
    let last = super::state(&mut stream).await?.last_sequence;
    if last == 0 {
        return Ok((0, GENESIS));
    }
    let hash = match stream.get_raw_message(last).await {
        Ok(message) => std::str::from_utf8(&message.payload)
            .map(hash_after)
            .unwrap_or(GENESIS),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => GENESIS,
        Err(e) => return Err(e.to_string()),
    };
    Ok((last, hash))
}
