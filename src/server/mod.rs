//! The client side: a TLS WebSocket [`Listener`], handshake authentication and sessions.
//!
//! [`run`] takes its listener, its shared parts and a shutdown token, so `serve`, `demo` and
//! the tests all drive the same code with their own inputs.

mod authorize;
pub mod command;
mod dashboard;
mod endings;
pub mod filter;
mod framing;
mod handshake;
pub mod histogram;
pub mod http;
pub mod journal;
mod per_ip;
pub mod performance;
mod prefixed;
mod session;
pub mod stats;
pub mod tls_stream;
mod trim;
mod upgrade;
mod webhook;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerSettings;
use crate::hub::Hub;

/// WebSocket close codes sigcast sends, as documented in the README.
pub mod close_code {
    /// The server is shutting down, or its signal feed stopped.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The client sent a binary frame; sigcast speaks text only.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// The client sent text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy: the session's token expired.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The client sent a message over `server.max_message_size`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client fell more than `server.queue_capacity` signals behind (noticed also while
    /// a write to it waits), or was silent for `server.idle_timeout` while what it was sent
    /// piled up unread (its pong waits in it).
    pub const SLOW_CONSUMER: u16 = 4000;
    /// Nothing (not even a pong) heard from the client within `server.idle_timeout`, and
    /// nothing piling up unread either: a vanished peer.
    pub const IDLE_TIMEOUT: u16 = 4001;
}

/// Handshakes refused with 503 at once beyond the connection limit; past this, sockets are
/// dropped unanswered so a flood cannot pile up tasks.
const OVERFLOW_HANDSHAKES: usize = 64;

/// Largest batch of queued signals written before one flush.
const MAX_BATCH: usize = 64;

/// Everything sessions share, built once at startup.
pub struct Shared {
    /// TLS for every accepted socket.
    pub tls: Arc<rustls::ServerConfig>,
    /// Verifies bearer tokens in the handshake; replaced on SIGHUP (key rotation).
    pub keys: crate::auth::Keys,
    /// The certificate served, read again on SIGHUP (renewal).
    pub certificates: Arc<crate::tls::CertStore>,
    /// The source of broadcast frames and `test` prices.
    pub hub: Arc<Hub>,
    /// Limits and timeouts.
    pub settings: ServerSettings,
    /// Revoked tokens, refreshed from the registry: refused at the handshake, and live
    /// sessions using one are closed when it changes.
    pub revoked: tokio::sync::watch::Receiver<Arc<crate::auth::registry::Revoked>>,
    /// Connections, handshakes, deliveries and slow consumers, for `/metrics`.
    pub stats: stats::Stats,
    /// Market-data topics one session may hold (`market_data.max_topics`).
    pub max_market_topics: usize,
}

/// Accepts clients until `shutdown` is cancelled, then waits (up to the grace period) for
/// every session to close with 1001.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let endings = Arc::new(endings::Endings::default());
    let watcher = tokio::spawn(
        endings
            .clone()
            .watch(shared.revoked.clone(), shutdown.clone()),
    );
    tokio::spawn(trim::run(shared.clone(), shutdown.clone()));
    let listener = Listener {
        endings,
        slots: Arc::new(Semaphore::new(shared.settings.max_connections)),
        overflow: Arc::new(Semaphore::new(OVERFLOW_HANDSHAKES)),
        per_ip: per_ip::PerIp::new(shared.settings.max_connections_per_ip),
        tasks: TaskTracker::new(),
        listener,
        shared,
        shutdown,
    };
    listener.accept_loop().await;
    // Every session is told to close (1001) before the wait for them begins.
    let _ = watcher.await;
    listener.drain().await;
}

/// The accept loop and what it needs to admit or refuse a client.
struct Listener {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// One permit per session: `server.max_connections`.
    slots: Arc<Semaphore>,
    /// Bounds the 503 and 429 replies in flight beyond the limits.
    overflow: Arc<Semaphore>,
    /// Connections per client address, against `server.max_connections_per_ip`.
    per_ip: Arc<per_ip::PerIp>,
    /// Every connection task, so shutdown can wait for them.
    tasks: TaskTracker,
    /// Cancelled once to stop accepting and close every session.
    shutdown: CancellationToken,
    /// Where sessions enroll to be ended on shutdown, token expiry and revocation.
    endings: Arc<endings::Endings>,
}

impl Listener {
    async fn accept_loop(&self) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(10);
                    pair
                }
                Err(e) => {
                    // Usually out of file descriptors: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if self.shared.settings.send_buffer > 0 {
                set_send_buffer(&tcp, self.shared.settings.send_buffer);
            }
            let admitted = match self.per_ip.enter(peer.ip()) {
                Some(from_ip) => match self.slots.clone().try_acquire_owned() {
                    Ok(permit) => Admission::Admitted(permit, from_ip),
                    Err(_) => match self.overflow.clone().try_acquire_owned() {
                        Ok(permit) => Admission::OverLimit(permit),
                        Err(_) => {
                            tracing::warn!(%peer, "connection limit reached and refusal queue full; dropping socket");
                            continue;
                        }
                    },
                },
                None => match self.overflow.clone().try_acquire_owned() {
                    Ok(permit) => Admission::OverIpLimit(permit),
                    Err(_) => {
                        tracing::warn!(%peer, "address at its connection limit and refusal queue full; dropping socket");
                        continue;
                    }
                },
            };
            let shared = self.shared.clone();
            let shutdown = self.shutdown.clone();
            self.tasks.spawn(handle_connection(
                tcp,
                peer,
                shared,
                admitted,
                shutdown,
                self.endings.clone(),
                self.tasks.clone(),
            ));
        }
    }

    async fn drain(&self) {
        self.tasks.close();
        let grace = self.shared.settings.shutdown_grace;
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tasks.len(),
                "sessions still open after the shutdown grace period"
            );
        }
    }
}

/// Whether a connection holds a session slot or only gets a 503 or 429.
pub(crate) enum Admission {
    /// Held for the session's whole life; dropping them frees the slot and the address's
    /// place.
    Admitted(
        #[allow(dead_code)] OwnedSemaphorePermit,
        #[allow(dead_code)] per_ip::IpSlot,
    ),
    /// Over `server.max_connections`: answered 503 before any upgrade.
    OverLimit(#[allow(dead_code)] OwnedSemaphorePermit),
    /// Its address over `server.max_connections_per_ip`: answered 429 before any upgrade.
    OverIpLimit(#[allow(dead_code)] OwnedSemaphorePermit),
}

/// One connection's handshake; an accepted client's session then runs as a task of its own,
/// so the handshake's state (hyper's buffers and the request) is freed rather than carried
/// for the session's life. Expected disconnects are triaged here, once.
async fn handle_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    admission: Admission,
    shutdown: CancellationToken,
    endings: Arc<endings::Endings>,
    tasks: TaskTracker,
) {
    shared.stats.handshaking.fetch_add(1, Ordering::Relaxed);
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => None,
        h = handshake::accept(tcp, peer, &shared, &admission) => h,
    };
    shared.stats.handshaking.fetch_sub(1, Ordering::Relaxed);
    let Some(accepted) = handshake else {
        return;
    };
    // Spawned as the run future itself: wrapping it in another async block would store the
    // session twice. The session holds its slot (`admission`) until it ends.
    let publisher = accepted.claims.is_publisher();
    let session = Box::new(session::Session::new(
        accepted, peer, shared, &endings, admission,
    ));
    match publisher.then(inlet).flatten() {
        Some(inlet) => tasks.spawn_on(session.run(), inlet),
        None => tasks.spawn(session.run()),
    };
}

/// The runtime publisher sessions run on: one thread of their own, beside the runtime that
/// serves the subscribers. A publish then reaches the hub as soon as it arrives, rather than
/// after every subscriber session woken by the signals before it (at 10k clients x 20/s
/// that wait was 52 ms at the median and 125 ms at p99, half of what clients saw). Their
/// sockets stay with the runtime that accepted them, whose I/O driver wakes them here.
/// `None` (publishers then share the serving runtime) if the thread cannot be started.
fn inlet() -> Option<&'static tokio::runtime::Handle> {
    static INLET: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();
    INLET
        .get_or_init(|| {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    let handle = runtime.handle().clone();
                    std::thread::Builder::new()
                        .name("sigcast-inlet".into())
                        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
                    Ok(handle)
                });
            match started {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "publisher sessions share the serving runtime: their own thread did not start");
                    None
                }
            }
        })
        .as_ref()
}

/// Fixes a client socket's kernel send buffer (`SO_SNDBUF`; the kernel doubles the value for
/// its bookkeeping), which also turns off its autotuning for that socket.
fn set_send_buffer(tcp: &TcpStream, bytes: usize) {
    if let Err(e) = socket2::SockRef::from(tcp).set_send_buffer_size(bytes) {
        tracing::debug!(error = %e, "SO_SNDBUF not set");
    }
}

/// Bytes in a socket's send queue the peer has not acknowledged (`SIOCOUTQ`); 0 if the
/// kernel will not say. socket2 has no call for this one, hence the ioctl.
fn kernel_unsent(tcp: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut unsent: libc::c_int = 0;
    // SAFETY: a valid socket descriptor and a c_int out-parameter, as SIOCOUTQ writes.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
    if rc != 0 {
        return 0;
    }
    usize::try_from(unsent).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_buffer_of(tcp: &TcpStream) -> usize {
        socket2::SockRef::from(tcp).send_buffer_size().unwrap()
    }

    #[tokio::test]
    async fn send_buffer_is_fixed_at_the_configured_size() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        set_send_buffer(&server, 32 * 1024);
        // Linux doubles the request for its own bookkeeping.
        assert_eq!(send_buffer_of(&server), 64 * 1024);
        drop(client);
    }
}
