//! What the server counts about its clients, for the admin listener's `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::histogram::Histogram;
use crate::auth::AuthError;

/// Buckets of `sigcast_session_queue_depth`: signals waiting in a session's view of the ring.
pub const DEPTH_BUCKETS: [u64; 15] = [
    0,
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
    256,
    512,
    1024,
    2048,
    4096,
    u64::MAX,
];
/// Buckets of `sigcast_fanout_latency_seconds`, in microseconds.
pub const LATENCY_BUCKETS: [u64; 14] = [
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    u64::MAX,
];
pub type DepthHistogram = Histogram<{ DEPTH_BUCKETS.len() }>;
pub type LatencyHistogram = Histogram<{ LATENCY_BUCKETS.len() }>;

/// How a handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    NoToken,
    InvalidToken,
    Expired,
    Revoked,
    OverLimit,
    /// Too many connections from the client's address: HTTP 429.
    OverIpLimit,
    /// A malformed upgrade request (e.g. a bad `X-Sigcast-Last-Seq`): HTTP 400.
    BadRequest,
    /// A browser session from an origin not allowed: HTTP 403.
    BadOrigin,
    /// TLS or the WebSocket upgrade failed, or the client left before asking.
    Failed,
    /// The client did not finish TLS and its request within `server.handshake_timeout`.
    TimedOut,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::NoToken,
        Outcome::InvalidToken,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::OverLimit,
        Outcome::OverIpLimit,
        Outcome::BadRequest,
        Outcome::BadOrigin,
        Outcome::Failed,
        Outcome::TimedOut,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoToken => "no_token",
            Outcome::InvalidToken => "invalid_token",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::OverLimit => "over_limit",
            Outcome::OverIpLimit => "over_ip_limit",
            Outcome::BadRequest => "bad_request",
            Outcome::BadOrigin => "bad_origin",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
        }
    }

    /// The outcome of a refused token.
    pub fn of(error: &AuthError) -> Outcome {
        match error {
            AuthError::Missing => Outcome::NoToken,
            AuthError::Invalid(r) if r == crate::auth::EXPIRED => Outcome::Expired,
            AuthError::Invalid(r) if r == crate::auth::REVOKED => Outcome::Revoked,
            AuthError::Invalid(_) => Outcome::InvalidToken,
        }
    }
}

/// How a session ended, for `sigcast_sessions_ended_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client sent a close frame.
    Client,
    /// Closed 4001: nothing heard within `server.idle_timeout` (a vanished peer).
    Idle,
    /// Closed 4000: fell more than `server.queue_capacity` signals behind, or was silent for
    /// `server.idle_timeout` while what it was sent piled up unread.
    SlowConsumer,
    /// Closed 1001: the server is shutting down or its feed stopped.
    Shutdown,
    /// Closed 1008: the token expired or was revoked.
    Token,
    /// Closed 1002, 1003, 1007 or 1009: the client broke the protocol.
    Protocol,
    /// The connection broke or a write timed out, with no closing handshake.
    Network,
}

impl Ending {
    pub const ALL: [Ending; 7] = [
        Ending::Client,
        Ending::Idle,
        Ending::SlowConsumer,
        Ending::Shutdown,
        Ending::Token,
        Ending::Protocol,
        Ending::Network,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Client => "client",
            Ending::Idle => "idle",
            Ending::SlowConsumer => "slow_consumer",
            Ending::Shutdown => "shutdown",
            Ending::Token => "token",
            Ending::Protocol => "protocol",
            Ending::Network => "network",
        }
    }

    /// The ending of a session the server closed with `code`.
    pub fn of_close(code: u16) -> Ending {
        use super::close_code::*;
        match code {
            IDLE_TIMEOUT => Ending::Idle,
            SLOW_CONSUMER => Ending::SlowConsumer,
            GOING_AWAY => Ending::Shutdown,
            POLICY_VIOLATION => Ending::Token,
            _ => Ending::Protocol,
        }
    }
}

/// Counters shared by the listener and every session.
#[derive(Debug)]
pub struct Stats {
    /// Sessions open now (upgraded and authenticated).
    pub sessions: AtomicI64,
    /// Connections in the TLS or WebSocket handshake now.
    pub handshaking: AtomicI64,
    handshakes: [AtomicU64; Outcome::ALL.len()],
    endings: [AtomicU64; Ending::ALL.len()],
    /// Messages written to clients: signals, market data, replies.
    pub delivered: AtomicU64,
    /// Sessions closed 4000 as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Signals a session had waiting when it woke to write: how far behind clients run.
    pub queue_depth: DepthHistogram,
    /// From the hub numbering a signal to a session's flush of it (the oldest of each write).
    pub fanout_latency: LatencyHistogram,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            sessions: Default::default(),
            handshaking: Default::default(),
            handshakes: Default::default(),
            endings: Default::default(),
            delivered: Default::default(),
            slow_consumers: Default::default(),
            queue_depth: Histogram::new(DEPTH_BUCKETS),
            fanout_latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Stats {
    pub fn handshake(&self, outcome: Outcome) {
        self.handshakes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn ended(&self, ending: Ending) {
        self.endings[ending as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Sessions ended so far, by how.
    pub fn endings(&self) -> impl Iterator<Item = (Ending, u64)> + '_ {
        Ending::ALL
            .iter()
            .map(|e| (*e, self.endings[*e as usize].load(Ordering::Relaxed)))
    }

    /// Handshakes so far, by outcome.
    pub fn handshakes(&self) -> impl Iterator<Item = (Outcome, u64)> + '_ {
        Outcome::ALL
            .iter()
            .map(|o| (*o, self.handshakes[*o as usize].load(Ordering::Relaxed)))
    }
}
