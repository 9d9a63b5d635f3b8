//! Where broadcast signals are kept for resumes, as sessions read them: the SQLite journal on
//! a single node, the JetStream stream in cluster mode.

use futures_util::future::BoxFuture;

use super::journal::{CheckpointPage, Journal, Page};

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HistoryError(pub String);

/// Signals by `seq`, for resuming sessions.
pub trait History: Send + Sync {
    /// Signals with `after < seq <= upto`, in order (at most a page), and the oldest `seq`
    /// still held (`None` when nothing is).
    fn read(&self, after: u64, upto: u64) -> BoxFuture<'_, Result<Page, HistoryError>>;

    /// Waits until every signal up to `seq` can be read.
    fn wait_readable(&self, seq: u64) -> BoxFuture<'_, Result<(), HistoryError>>;

    /// The track record's checkpoints kept beside the signals after `after_id`, in the order
    /// they were taken, at most a page. None, unless the history keeps them.
    fn checkpoints(&self, _after_id: i64) -> BoxFuture<'_, Result<CheckpointPage, HistoryError>> {
        Box::pin(async { Ok(CheckpointPage::default()) })
    }
}

impl History for Journal {
    fn read(&self, after: u64, upto: u64) -> BoxFuture<'_, Result<Page, HistoryError>> {
        Box::pin(async move {
            Journal::read(self, after, upto)
                .await
                .map_err(|e| HistoryError(e.to_string()))
        })
    }

    fn wait_readable(&self, seq: u64) -> BoxFuture<'_, Result<(), HistoryError>> {
        Box::pin(async move {
            self.wait_flushed(seq)
                .await
                .map_err(|e| HistoryError(e.to_string()))
        })
    }

    fn checkpoints(&self, after_id: i64) -> BoxFuture<'_, Result<CheckpointPage, HistoryError>> {
        Box::pin(async move {
            Journal::checkpoints(self, after_id)
                .await
                .map_err(|e| HistoryError(e.to_string()))
        })
    }
}
