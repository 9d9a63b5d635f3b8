//! Endings the server imposes on sessions (shutdown, token expiry, revocation), watched by one
//! task for all of them instead of by timers and watchers inside every idle session.
//!
//! A session enrolls when it starts and holds an [`Enrolled`]: a flag with a waker, which the
//! session's loop polls first. The watcher sets the flag, and the session closes with the
//! matching code. Ten thousand idle sessions thus carry no timer and no watch future each.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::Claims;
use crate::auth::registry::Revoked;
use crate::clock::unix_now;

/// How often the watcher looks for expired tokens: a session outlives its token by less.
const EXPIRY_CHECK: Duration = Duration::from_millis(250);

/// Why the server ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The server is shutting down (1001).
    Shutdown = 1,
    /// The session's token expired (1008).
    Expired = 2,
    /// The session's token was revoked (1008).
    Revoked = 3,
}

impl Why {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Shutdown),
            2 => Some(Self::Expired),
            3 => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// One session's end flag: set once by the watcher, read by the session.
#[derive(Default)]
struct End {
    why: AtomicU8,
    waker: AtomicWaker,
}

impl End {
    /// The first reason given wins; the session wakes to it.
    fn set(&self, why: Why) {
        if self
            .why
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.waker.wake();
        }
    }
}

/// The sessions the watcher keeps an eye on.
#[derive(Default)]
struct Roll {
    next_id: u64,
    sessions: HashMap<u64, (Arc<End>, Arc<Claims>)>,
    /// `(exp, id)`, soonest first, so each check looks only at the expired ones.
    expiries: BTreeSet<(u64, u64)>,
    /// Shutdown has begun: a session enrolling now is ended at once.
    closed: bool,
}

/// Every live session's end flag; see the module documentation.
#[derive(Default)]
pub struct Endings {
    roll: Mutex<Roll>,
}

/// A session's place in [`Endings`]; leaves it when dropped.
pub struct Enrolled {
    endings: Arc<Endings>,
    id: u64,
    end: Arc<End>,
}

impl Enrolled {
    /// Resolves with the reason once the server ends this session. The future holds only
    /// a reference: it is polled on every wake of the session and costs two atomic reads.
    pub fn ended(&self) -> impl Future<Output = Why> + '_ {
        std::future::poll_fn(|cx| self.poll_ended(cx))
    }

    fn poll_ended(&self, cx: &mut Context<'_>) -> Poll<Why> {
        if let Some(why) = Why::from_u8(self.end.why.load(Ordering::Acquire)) {
            return Poll::Ready(why);
        }
        self.end.waker.register(cx.waker());
        match Why::from_u8(self.end.why.load(Ordering::Acquire)) {
            Some(why) => Poll::Ready(why),
            None => Poll::Pending,
        }
    }
}

impl Drop for Enrolled {
    fn drop(&mut self) {
        let mut roll = self.endings.lock();
        if let Some((_, claims)) = roll.sessions.remove(&self.id) {
            roll.expiries.remove(&(claims.exp, self.id));
        }
    }
}

impl Endings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Roll> {
        // A panic elsewhere cannot leave the roll half-changed: every change is one call.
        self.roll.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enrolls a session whose token carries `claims`. A token that is already revoked or
    /// expired, or a server already shutting down, ends it at once.
    pub fn enroll(
        self: &Arc<Self>,
        claims: Arc<Claims>,
        revoked: &watch::Receiver<Arc<Revoked>>,
    ) -> Enrolled {
        let end = Arc::new(End::default());
        let mut roll = self.lock();
        let id = roll.next_id;
        roll.next_id += 1;
        if roll.closed {
            end.set(Why::Shutdown);
        } else if revoked.borrow().covers(&claims) {
            end.set(Why::Revoked);
        } else if claims.exp <= unix_now() {
            end.set(Why::Expired);
        }
        roll.expiries.insert((claims.exp, id));
        roll.sessions.insert(id, (end.clone(), claims));
        drop(roll);
        Enrolled {
            endings: self.clone(),
            id,
            end,
        }
    }

    /// Ends every session (shutdown) and every one enrolling later.
    fn close_all(&self) {
        let mut roll = self.lock();
        roll.closed = true;
        for (end, _) in roll.sessions.values() {
            end.set(Why::Shutdown);
        }
    }

    /// Ends the sessions whose tokens `revoked` covers.
    fn revoke(&self, revoked: &Revoked) {
        let roll = self.lock();
        for (end, claims) in roll.sessions.values() {
            if revoked.covers(claims) {
                end.set(Why::Revoked);
            }
        }
    }

    /// Ends the sessions whose tokens expired by `now` (Unix seconds).
    fn expire(&self, now: u64) {
        let mut roll = self.lock();
        while let Some(&(exp, id)) = roll.expiries.first() {
            if exp > now {
                break;
            }
            roll.expiries.pop_first();
            if let Some((end, _)) = roll.sessions.get(&id) {
                end.set(Why::Expired);
            }
        }
    }

    /// Sessions enrolled now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// The watcher: ends sessions on shutdown, on each change of the revocation list and
    /// as their tokens expire. Returns once `shutdown` is cancelled and everyone is told.
    pub async fn watch(
        self: Arc<Self>,
        mut revoked: watch::Receiver<Arc<Revoked>>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(EXPIRY_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching_revocations = true;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.close_all();
                    return;
                }
                changed = revoked.changed(), if watching_revocations => match changed {
                    Ok(()) => {
                        let list = revoked.borrow_and_update().clone();
                        self.revoke(&list);
                    }
                    // The registry stopped publishing: the list stays as it last was.
                    Err(_) => watching_revocations = false,
                },
                _ = tick.tick() => self.expire(unix_now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, jti: &str, exp: u64) -> Arc<Claims> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "sub": sub, "jti": jti, "exp": exp, "iat": unix_now(),
                "iss": "sigcast", "aud": "sigcast",
            }))
            .unwrap(),
        )
    }

    async fn ended(e: &Enrolled) -> Option<Why> {
        tokio::time::timeout(Duration::from_secs(2), e.ended())
            .await
            .ok()
    }

    #[tokio::test]
    async fn ends_sessions_on_expiry_revocation_and_shutdown() {
        let endings = Arc::new(Endings::default());
        let (revoke_tx, revoke_rx) = watch::channel(Arc::new(Revoked::default()));
        let shutdown = CancellationToken::new();
        let watcher = tokio::spawn(endings.clone().watch(revoke_rx.clone(), shutdown.clone()));
        let far = unix_now() + 3600;
        let alice = endings.enroll(claims("alice", "a1", far), &revoke_rx);
        let bob = endings.enroll(claims("bob", "b1", far), &revoke_rx);
        let soon = endings.enroll(claims("carol", "c1", unix_now() + 1), &revoke_rx);
        assert_eq!(endings.len(), 3);

        assert_eq!(
            ended(&soon).await,
            Some(Why::Expired),
            "expired within a second or two"
        );
        let mut list = Revoked::default();
        list.jtis.insert("b1".into());
        revoke_tx.send(Arc::new(list)).unwrap();
        assert_eq!(ended(&bob).await, Some(Why::Revoked));
        assert_eq!(
            tokio::time::timeout(Duration::from_millis(300), alice.ended())
                .await
                .ok(),
            None,
            "alice's token is neither revoked nor expired"
        );
        // Already revoked at enrollment: ended at once.
        let again = endings.enroll(claims("bob", "b1", far), &revoke_rx);
        assert_eq!(ended(&again).await, Some(Why::Revoked));

        shutdown.cancel();
        watcher.await.unwrap();
        assert_eq!(ended(&alice).await, Some(Why::Shutdown));
        let late = endings.enroll(claims("dave", "d1", far), &revoke_rx);
        assert_eq!(
            ended(&late).await,
            Some(Why::Shutdown),
            "enrolled after shutdown"
        );
        drop((alice, bob, soon, again, late));
        assert_eq!(endings.len(), 0, "dropped sessions leave the roll");
    }
}
