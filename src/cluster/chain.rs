//! The signed chain on the stream. The leading producer is the stream's one writer: it
//! numbers each signal with the `seq` the stream will store it at, seals it (`hub::proof`)
//! and appends it only if the stream's last message is still the one it chained on
//! (`Nats-Expected-Last-Sequence`). So the `seq` and the chain a signature covers are the
//! stream's, and edges relay the stored frame untouched. When another writer came first (two
//! producers overlapping in a takeover), the append is refused; the writer reads the tail
//! again and seals afresh.
//!
//! A batch is sent whole before its acks are awaited (one round trip, not one per signal).
//! Each signal after the first expects the one before it as the stream's last message, by
//! `seq` and by id (`Nats-Expected-Last-Msg-Id`): once one is not stored where it was sealed
//! for (refused, or a duplicate of a signal stored before), the rest of the batch is refused
//! too and sealed afresh, unless another writer stored a signal of that very id at that very
//! `seq`, the same signal chained on the same predecessor, which leaves the chain intact
//! when its bytes are the same (a strategy's signal, or a publish retried as it was).

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

impl Writer {
    pub fn new(key: Arc<JournalKey>) -> Self {
        Writer { key, tail: None }
    }

    /// Seals and appends `batch` in order, confirming each stored signal; hands back the
    /// ones not stored, in order.
    pub async fn append(
        &mut self,
        cluster: &Cluster,
        batch: Vec<Outgoing>,
        failures: u32,
    ) -> Unsent {
        let (last, prev) = match self.tail.take() {
            Some(tail) => tail,
            None => match read_tail(cluster).await {
                Ok(tail) => tail,
                Err(error) => {
                    return Unsent {
                        signals: batch,
                        error,
                        conflict: false,
                    };
                }
            },
        };
        let mut chain = Chain {
            prev,
            signer: self.key.current(),
        };
        let mut sent = Vec::with_capacity(batch.len());
        let mut before: Option<&str> = None;
        let mut broken: Option<String> = None;
        for (i, out) in batch.iter().enumerate() {
            let seq = last + 1 + i as u64;
            let frame = encode_seq(&out.signal, seq);
            let sealed = chain
                .seal(frame.as_str())
                .unwrap_or_else(|| frame.to_string());
            let ack = match &broken {
                Some(e) => Err(e.clone()),
                None => {
                    let mut message = PublishMessage::build()
                        .payload(sealed.into())
                        .message_id(&out.id)
                        .expected_last_sequence(seq - 1);
                    if let Some(id) = before {
                        message = message.expected_last_message_id(id);
                    }
                    cluster
                        .js
                        .send_publish(cluster.subject(&out.signal), message)
                        .await
                        .map_err(|e| e.to_string())
                }
            };
            if let Err(e) = &ack {
                broken.get_or_insert_with(|| e.clone());
            }
            before = Some(&out.id);
            sent.push((seq, chain.prev, ack));
        }
        let mut unsent = Unsent::default();
        let mut tail = Some((last, prev));
        for (out, (seq, hash, ack)) in batch.into_iter().zip(sent) {
            let stored = match ack {
                Ok(ack) => ack.await.map_err(|e| {
                    let conflict = matches!(
                        e.kind(),
                        PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                    );
                    (e.to_string(), conflict)
                }),
                Err(e) => Err((e, false)),
            };
            match stored {
                // Where it was sealed for, after what it was chained on.
                Ok(ack) if !ack.duplicate && ack.sequence == seq && tail.is_some() => {
                    tail = Some((seq, hash));
                    confirm(cluster, out, seq, false, failures);
                }
                Ok(ack) => {
                    if !ack.duplicate {
                        // After one whose store was not confirmed (its ack lost, or
                        // another writer's copy of it stored first).
                        tracing::warn!(
                            seq = ack.sequence,
                            "signal stored after one not confirmed; reading the stream's tail again"
                        );
                    }
                    // The stream's last is no longer known here: read it before the next.
                    tail = None;
                    confirm(cluster, out, ack.sequence, ack.duplicate, failures);
                }
                Err((error, conflict)) => {
                    if unsent.signals.is_empty() {
                        (unsent.error, unsent.conflict) = (error, conflict);
                    }
                    tail = None;
                    unsent.signals.push(out);
                }
            }
        }
        self.tail = tail;
        unsent
    }
}

/// The stream's last `seq` and the chain hash its message leaves (a fresh chain after a
/// message that is not a sealed frame, or one no longer held).
async fn read_tail(cluster: &Cluster) -> Result<(u64, Hash), String> {
    let mut stream = cluster.stream().await?;
    let last = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .last_sequence;
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
