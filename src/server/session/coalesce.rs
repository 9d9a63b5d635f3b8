//! Coalescing: while the runtime is busy, a client's writes of live signals are at least
//! `server.coalesce` apart, so what piles up meanwhile goes in one TLS record and `send`.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::Session;
use crate::hub::Published;

/// A signal held back for coalescing, and the timer that releases it.
pub(super) struct Hold {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    frame: Option<Published>,
}

/// The held signal, once its time has come; never when none is held.
pub(super) async fn released(hold: &mut Option<Box<Hold>>) -> Published {
    match hold {
        Some(h) if h.frame.is_some() => {
            h.timer.as_mut().await;
            match h.frame.take() {
                Some(frame) => frame,
                None => std::future::pending().await,
            }
        }
        _ => std::future::pending().await,
    }
}

/// A session that gets to a signal this long after it was offered to the ring shares a busy
/// runtime.
const BUSY: Duration = Duration::from_millis(1);

impl Session {
    /// A signal is held back (see `hold_back`): the ring is not read until it goes.
    pub(super) fn holding(&self) -> bool {
        self.hold.as_ref().is_some_and(|h| h.frame.is_some())
    }

    /// Holds a live signal back while the runtime is busy and it came sooner than
    /// `server.coalesce` after this client's last write; gives it back to be sent now
    /// otherwise. Busy is judged afresh at each signal, by how long it waited in the ring for
    /// this session, so a session is held only while the runtime is behind.
    pub(super) fn hold_back(
        &mut self,
        frame: Result<Published, RecvError>,
    ) -> Option<Result<Published, RecvError>> {
        let Ok(p) = &frame else {
            return Some(frame);
        };
        if self.shared.settings.coalesce.is_zero() {
            return Some(frame);
        }
        // From the offer, not the numbering: the journal's commit and seal are not the runtime's.
        self.coalescing = p.offered.elapsed() >= BUSY;
        let at = match self.next_write {
            Some(at) if self.coalescing && std::time::Instant::now() < at => at,
            _ => return Some(frame),
        };
        let deadline = tokio::time::Instant::from_std(at);
        let p = frame.ok()?;
        match &mut self.hold {
            Some(h) => {
                h.timer.as_mut().reset(deadline);
                h.frame = Some(p);
            }
            None => {
                self.hold = Some(Box::new(Hold {
                    timer: Box::pin(tokio::time::sleep_until(deadline)),
                    frame: Some(p),
                }))
            }
        }
        None
    }
}
