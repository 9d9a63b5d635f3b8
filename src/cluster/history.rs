//! Resumes read from the stream by sequence: a node keeps no signal history of its own.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use async_nats::jetstream::stream;

use super::{Cluster, from_stored, state};
use crate::hub::Published;
use crate::hub::history::{History, HistoryError};
use crate::hub::journal::{CheckpointPage, PAGE, Page};

/// Resume reads running at once (each is a short-lived consumer on the stream).
const READERS: usize = 4;
/// How long one message of a page may take to arrive.
const MESSAGE_WAIT: Duration = Duration::from_secs(2);

/// The stream as signal history.
pub struct StreamHistory {
    cluster: Cluster,
    readers: Arc<Semaphore>,
}

impl StreamHistory {
    pub fn new(cluster: Cluster) -> Self {
        StreamHistory {
            cluster,
            readers: Arc::new(Semaphore::new(READERS)),
        }
    }

    async fn page(&self, after: u64, upto: u64) -> Result<Page, String> {
        let _place = self.readers.acquire().await.map_err(|e| e.to_string())?;
        let mut stream = self.cluster.stream().await?;
        let state = state(&mut stream).await?;
        let oldest = (state.messages > 0).then_some(state.first_sequence);
        let start = (after + 1).max(state.first_sequence);
        let end = upto.min(state.last_sequence);
        let mut page = Vec::new();
        if state.messages > 0 && start <= end {
            for (seq, payload) in stored(&stream, start, end).await? {
                if let Ok((signal, frame)) = from_stored(seq, &payload) {
                    page.push(Published::framed(seq, &signal, frame));
                }
            }
        }
        Ok((page, oldest))
    }

    async fn checkpoints_after(&self, after_id: i64) -> Result<CheckpointPage, String> {
        let _place = self.readers.acquire().await.map_err(|e| e.to_string())?;
        let mut stream = self
            .cluster
            .js
            .get_stream(super::marks::checkpoint_stream_name(&self.cluster.settings))
            .await
            .map_err(|e| e.to_string())?;
        let state = state(&mut stream).await?;
        let start = (after_id.max(0) as u64 + 1).max(state.first_sequence);
        let mut page = CheckpointPage::default();
        if state.messages > 0 && start <= state.last_sequence {
            for (seq, payload) in stored(&stream, start, state.last_sequence).await? {
                page.last_id = Some(seq as i64);
                // One that does not read (another version's) is skipped, never guessed.
                if let Ok(checkpoint) = serde_json::from_slice(&payload) {
                    page.checkpoints.push(checkpoint);
                }
            }
        }
        Ok(page)
    }
}

/// The messages `stream` holds from `start` to `end`, in order, with their sequence: at most
/// [`PAGE`], fewer when one is slow to come.
async fn stored(
    stream: &stream::Stream,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, bytes::Bytes)>, String> {
    let want = ((end - start + 1) as usize).min(PAGE);
    let mut messages = Cluster::messages_from(stream, start).await?;
    let mut page = Vec::with_capacity(want);
    while page.len() < want {
        let message = match tokio::time::timeout(MESSAGE_WAIT, messages.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) | Err(_) => break,
        };
        let seq = message.info().map_err(|e| e.to_string())?.stream_sequence;
        if seq > end {
            break;
        }
        page.push((seq, message.payload.clone()));
        if seq == end {
            break;
        }
    }
    Ok(page)
}

impl History for StreamHistory {
    fn read(&self, after: u64, upto: u64) -> BoxFuture<'_, Result<Page, HistoryError>> {
        Box::pin(async move { self.page(after, upto).await.map_err(HistoryError) })
    }

    /// Whatever a node delivered, the stream had stored first.
    fn wait_readable(&self, _seq: u64) -> BoxFuture<'_, Result<(), HistoryError>> {
        Box::pin(async { Ok(()) })
    }

    /// The leader's checkpoints, from their own stream (its sequence is the id).
    fn checkpoints(&self, after_id: i64) -> BoxFuture<'_, Result<CheckpointPage, HistoryError>> {
        Box::pin(async move { self.checkpoints_after(after_id).await.map_err(HistoryError) })
    }
}
