//! Publishes forwarded to the leading producer, the stream's one writer (`chain`): an edge's
//! or a standby's go to it over NATS request/reply, under their ids, and it appends them as
//! its own and answers with the `seq` each was stored at.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::outbox::{Unsent, confirm};
use super::{Cluster, from_payload, to_payload};
use crate::hub::{CONFIRM_WITHIN, Outgoing};

/// How long a forwarded batch may wait for the leader's answers; what is unanswered by then
/// is sent again (under the same ids, so stored once).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The leader's answer to one forwarded signal.
#[derive(Serialize, Deserialize)]
struct Answer {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

/// Where forwarded publishes go: a subject outside the stream's.
fn subject(cluster: &Cluster) -> String {
    format!("_SIGCAST.{}.append", cluster.settings.stream)
}

/// Sends `batch` to the leader, in order (one connection keeps it), then takes the answers;
/// hands back whatever was not stored.
pub async fn send(cluster: &Cluster, batch: Vec<Outgoing>, failures: u32) -> Unsent {
    let inbox = cluster.client.new_inbox();
    let all_failed = |batch: Vec<Outgoing>, error: String| Unsent {
        signals: batch,
        error,
        conflict: false,
    };
    let mut answers = match cluster.client.subscribe(format!("{inbox}.*")).await {
        Ok(s) => s,
        Err(e) => return all_failed(batch, e.to_string()),
    };
    let subject = subject(cluster);
    for (i, out) in batch.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, out.id.as_str());
        let sent = cluster
            .client
            .publish_with_reply_and_headers(
                subject.clone(),
                format!("{inbox}.{i}"),
                headers,
                to_payload(&out.signal),
            )
            .await;
        if let Err(e) = sent {
            return all_failed(batch, e.to_string());
        }
    }
    let mut stored: Vec<Option<u64>> = vec![None; batch.len()];
    let mut error = String::from("the leading producer did not answer");
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    while stored.iter().any(Option::is_none) {
        let message = match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => break,
        };
        let index = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < batch.len());
        let Some(index) = index else { continue };
        if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            error = "no producer leads".into();
            break;
        }
        match serde_json::from_slice::<Answer>(&message.payload) {
            Ok(Answer { seq: Some(seq), .. }) => stored[index] = Some(seq),
            Ok(Answer { error: Some(e), .. }) => error = format!("the leader: {e}"),
            _ => error = "the leader's answer is not understood".into(),
        }
    }
    let mut unsent = Vec::new();
    for (out, seq) in batch.into_iter().zip(stored) {
        match seq {
            Some(seq) => confirm(cluster, out, seq, false, failures),
            None => unsent.push(out),
        }
    }
    Unsent {
        signals: unsent,
        error,
        conflict: false,
    }
}

/// The leader's side, while `term` lasts: every forwarded signal goes into this node's
/// `outbox`, in the order it came, and is answered once stored.
pub async fn serve(cluster: Cluster, outbox: mpsc::Sender<Outgoing>, term: CancellationToken) {
    let mut requests = match cluster
        .client
        .queue_subscribe(subject(&cluster), "leader".into())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot take forwarded publishes; edges' publishes wait");
            return;
        }
    };
    loop {
        let request = tokio::select! {
            _ = term.cancelled() => return,
            r = requests.next() => r,
        };
        let Some(request) = request else { return };
        let Some(reply) = request.reply.clone() else {
            continue;
        };
        let id = request
            .headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        let (ack, stored) = oneshot::channel();
        let queued = match (id, from_payload(&request.payload)) {
            (Some(id), Ok(signal)) => outbox
                .try_send(Outgoing {
                    signal,
                    id,
                    ack: Some(ack),
                })
                .map_err(|_| crate::hub::PublishError::Full.to_string()),
            (None, _) => Err("a forwarded signal without its id".into()),
            (_, Err(e)) => Err(format!("not a signal: {e}")),
        };
        let client = cluster.client.clone();
        tokio::spawn(async move {
            let answer = match queued {
                Ok(()) => match tokio::time::timeout(CONFIRM_WITHIN, stored).await {
                    Ok(Ok(seq)) => Answer {
                        seq: Some(seq),
                        error: None,
                    },
                    _ => Answer {
                        seq: None,
                        error: Some("not stored yet".into()),
                    },
                },
                Err(e) => Answer {
                    seq: None,
                    error: Some(e),
                },
            };
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            let _ = client.publish(reply, body.into()).await;
        });
    }
}
