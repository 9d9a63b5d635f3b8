//! Thread-per-core client serving: each shard is a single-threaded runtime on its own
//! thread, holding the sessions the listener hands it for their whole life. A signal crosses
//! to each shard once (its relay copies the frame into the shard's own ring), and from there
//! every wake, refcount and write stays on one core: no work stealing, no cross-core wakeups
//! per delivery, no cache line bouncing between cores for a shared frame.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::hub::{Frame, Hub, Published};

/// The shards serving clients; see the module documentation.
pub struct Shards {
    shards: Vec<Shard>,
    /// Round-robin choice of the shard for the next connection.
    next: AtomicUsize,
    /// Ends every shard's thread, once its sessions are gone.
    stop: CancellationToken,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

struct Shard {
    runtime: Handle,
    /// This shard's ring of signals, fed by its relay; replaced if the relay falls behind
    /// the hub (the sessions on the old one are then closed and resume).
    ring: Arc<Mutex<broadcast::Sender<Published>>>,
}

/// A connection's place: the runtime it runs on and the ring its session reads.
pub struct Placement {
    pub runtime: Handle,
    ring: Arc<Mutex<broadcast::Sender<Published>>>,
}

impl Placement {
    /// Subscribes to the shard's ring of signals.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        lock(&self.ring).subscribe()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is one call: a panic elsewhere leaves nothing half-done.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shards {
    /// Starts `count` shards (0: one per CPU core), each ring holding `capacity` signals.
    pub fn start(count: usize, hub: &Arc<Hub>, capacity: usize) -> std::io::Result<Self> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let stop = CancellationToken::new();
        let mut shards = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, _) = broadcast::channel(capacity.max(1));
            let ring = Arc::new(Mutex::new(tx));
            // Subscribed here, before any session: the relay misses nothing it should carry.
            let upstream = hub.subscribe();
            let handle = runtime.handle().clone();
            let (relay_ring, stopped) = (ring.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name(format!("sigcast-shard-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        tokio::select! {
                            () = relay(upstream, relay_ring, capacity) => stopped.cancelled().await,
                            () = stopped.cancelled() => {}
                        }
                    });
                    // Whatever is left (sessions past the shutdown grace) is dropped here.
                    runtime.shutdown_background();
                })?;
            shards.push(Shard {
                runtime: handle,
                ring,
            });
            threads.push(thread);
        }
        Ok(Self {
            shards,
            next: AtomicUsize::new(0),
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// The shard for the next connection.
    pub fn place(&self) -> Placement {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let shard = &self.shards[i];
        Placement {
            runtime: shard.runtime.clone(),
            ring: shard.ring.clone(),
        }
    }

    /// Ends the shards' threads; called once their sessions are drained.
    pub fn stop(&self) {
        self.stop.cancel();
        for thread in lock(&self.threads).drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Carries every signal from the hub's ring into a shard's, with a frame of the shard's own
/// (one copy per shard, so the sessions' reference counts stay on this core). Ends with the
/// hub.
async fn relay(
    mut upstream: broadcast::Receiver<Published>,
    ring: Arc<Mutex<broadcast::Sender<Published>>>,
    capacity: usize,
) {
    let mut tx = lock(&ring).clone();
    loop {
        match upstream.recv().await {
            Ok(p) => {
                let frame = Frame::from(p.frame.as_str());
                // No receivers (no sessions yet) is not an error.
                let _ = tx.send(Published { frame, ..p });
            }
            Err(RecvError::Lagged(missed)) => {
                // The shard's thread fell more than a ring behind the hub: its sessions cannot
                // be given what was missed, so they are closed (the old ring closes) and
                // resume; new sessions get a new ring.
                tracing::error!(
                    missed,
                    "a client shard fell behind the hub; closing its sessions so they resume"
                );
                let (fresh, _) = broadcast::channel(capacity.max(1));
                *lock(&ring) = fresh.clone();
                tx = fresh;
            }
            Err(RecvError::Closed) => {
                // The sessions see their feed end, as they would the hub's.
                *lock(&ring) = broadcast::channel(1).0;
                return;
            }
        }
    }
}
