//! Signals published on this node, on their way to the stream, in batches (everything
//! queued). The leading producer seals and appends them itself ([`chain`](super::chain));
//! a standby or an edge forwards them to the leader ([`forward`](super::forward)). Each is
//! confirmed with the `seq` the stream stored it at; the unconfirmed are retried with
//! backoff while NATS or the leader is away, under the same id (`Nats-Msg-Id`), so one that
//! had landed after all is not stored twice. Signals keep their order unless a retry is
//! needed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::chain::Writer;
use super::forward;
use super::keys::JournalKey;
use crate::hub::Outgoing;

/// Signals that may wait for the stream; beyond, new ones are refused (and logged).
pub const CAPACITY: usize = 65_536;
/// Signals taken from the queue at once (forwarded: sent before any answer is awaited).
const BATCH: usize = 256;
/// After a stop, how long queued signals may take to reach the stream.
const DRAIN: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);
/// Forwarding waits less between tries: asking costs the leader nothing while there is
/// none (NATS answers "no responders"), and a new leader then gets the publishes sooner.
const MAX_FORWARD_RETRY: Duration = Duration::from_millis(500);
/// Appends refused because another writer came first, tried again at once before backing
/// off.
const CONFLICT_RETRIES: u32 = 8;

/// Starts the outbox; the hub publishes into the sender. `key` is a producer's, which
/// signs while it leads (an edge has none and always forwards). The task ends after `stop`,
/// once what was queued is stored (or [`DRAIN`] has passed): wait for it before exiting.
pub fn spawn(
    cluster: Cluster,
    key: Option<Arc<JournalKey>>,
    stop: CancellationToken,
) -> (mpsc::Sender<Outgoing>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let writer = key.map(Writer::new);
    (tx, tokio::spawn(run(cluster, writer, rx, stop)))
}

/// What was not stored of a batch, and why.
#[derive(Default)]
pub struct Unsent {
    pub signals: Vec<Outgoing>,
    pub error: String,
    /// Another writer appended first: worth trying again at once.
    pub conflict: bool,
}

async fn run(
    cluster: Cluster,
    mut writer: Option<Writer>,
    mut queue: mpsc::Receiver<Outgoing>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            out = queue.recv() => match out {
                Some(out) => out,
                None => return,
            },
        };
        let batch = take_batch(first, &mut queue);
        if !deliver(&cluster, &mut writer, batch, &stop).await {
            break;
        }
    }
    // Stopping: what is queued still goes out, within a bound.
    queue.close();
    let drained = tokio::time::timeout(DRAIN, async {
        while let Some(first) = queue.recv().await {
            let batch = take_batch(first, &mut queue);
            if !deliver(&cluster, &mut writer, batch, &CancellationToken::new()).await {
                return;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::error!(
            left = queue.len(),
            "signals not stored in the stream at stop"
        );
    }
}

/// `first` and whatever else is queued, up to [`BATCH`].
fn take_batch(first: Outgoing, queue: &mut mpsc::Receiver<Outgoing>) -> Vec<Outgoing> {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match queue.try_recv() {
            Ok(out) => batch.push(out),
            Err(_) => break,
        }
    }
    batch
}

/// Stores a batch: appended by this node while it leads, forwarded to the leader otherwise;
/// retries what was not stored until it is; false if stopped first.
async fn deliver(
    cluster: &Cluster,
    writer: &mut Option<Writer>,
    mut batch: Vec<Outgoing>,
    stop: &CancellationToken,
) -> bool {
    let mut failures = 0u32;
    let mut conflicts = 0u32;
    loop {
        let leading = cluster.status.leader.load(Ordering::Relaxed);
        let unsent = match writer {
            Some(writer) if leading => writer.append(cluster, batch, failures).await,
            _ => forward::send(cluster, batch, failures).await,
        };
        if unsent.signals.is_empty() {
            return true;
        }
        batch = unsent.signals;
        // Another writer came first (a takeover's overlap): again at once, from the new tail.
        if unsent.conflict && conflicts < CONFLICT_RETRIES {
            conflicts += 1;
            continue;
        }
        failures += 1;
        if failures == 1 || failures % 20 == 0 {
            tracing::warn!(error = %unsent.error, failures, signals = batch.len(), "signals not stored yet; retrying");
        }
        let most = if leading {
            MAX_RETRY
        } else {
            MAX_FORWARD_RETRY
        };
        let delay = FIRST_RETRY.saturating_mul(1 << failures.min(8)).min(most);
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// A signal stored at `seq` (`duplicate`: it was already): counted, and its publisher told.
pub fn confirm(cluster: &Cluster, out: Outgoing, seq: u64, duplicate: bool, failures: u32) {
    let status = &cluster.status;
    status.published.fetch_add(1, Ordering::Relaxed);
    if duplicate {
        status.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    if failures > 0 {
        tracing::info!(seq, failures, "signal stored after retrying");
    }
    if let Some(confirm) = out.ack {
        let _ = confirm.send(seq);
    }
}
