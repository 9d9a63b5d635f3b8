//! The sections of the configuration file, with their defaults.
//!
//! About 500 lines: every section's struct beside its defaults, so the file reads as the
//! configuration's shape; the key table and checks live in `keys.rs` and `checks.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The client-facing listener: limits, timeouts and per-session budgets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the TLS WebSocket listener binds.
    pub listen: SocketAddr,
    /// Sessions served at once; the next client gets HTTP 503 before any upgrade.
    pub max_connections: usize,
    /// Connections (handshakes and sessions) from one client address at once; the next gets
    /// HTTP 429 before any upgrade. 0: no limit (behind a proxy that hides client addresses).
    pub max_connections_per_ip: usize,
    /// Budget for TLS plus the WebSocket upgrade, so a slow or silent peer cannot hold a slot.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    /// How often the server pings each client.
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// A client that sends nothing (not even a pong) for this long is closed.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// A write to a client that cannot complete in this time ends the session.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// While the serving runtime is busy (a session gets to a signal 1 ms or more after the
    /// hub numbered it), a client's writes of live signals are at least this far apart, so
    /// each carries more signals in one TLS record and one `send` (0: off). An idle runtime
    /// sends each signal at once.
    #[serde(with = "duration")]
    pub coalesce: Duration,
    /// Signals a client may fall behind before it is closed as a slow consumer (code 4000).
    pub queue_capacity: usize,
    /// Largest client message accepted; bigger ones are closed with 1009.
    pub max_message_size: usize,
    /// Per-connection read buffer (tungstenite's default is 128 KiB; sigcast keeps it small).
    pub read_buffer_size: usize,
    /// The kernel's send buffer for each client socket, in bytes (0: the kernel's own
    /// autotuning, which lets a slow client's backlog grow to `net.ipv4.tcp_wmem`'s maximum,
    /// 4 MiB by default, before the queue policy sees it).
    pub send_buffer: usize,
    /// Threads of the runtime that serves clients (0: one per CPU core). Fewer than the
    /// cores leaves room for what shares the machine (strategy plugins, NATS); on one thread
    /// sessions never migrate between cores, so each delivery costs less.
    pub worker_threads: usize,
    /// `test` requests a client may make in a burst before being rate-limited.
    pub test_burst: u32,
    /// After the burst, one more `test` is allowed per this interval.
    #[serde(with = "duration")]
    pub test_interval: Duration,
    /// How long shutdown waits for sessions to close before exiting anyway.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Serve the live dashboard page at `/` on the client port (it authenticates like any
    /// client once opened).
    pub dashboard: bool,
    /// Origins whose pages may open browser sessions (token offered as a subprotocol):
    /// `https://dash.example.com`, or `*` for any. Empty: only the page sigcast serves.
    pub allowed_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".parse().expect("valid default address"),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            coalesce: Duration::from_millis(10),
            queue_capacity: 1024,
            max_message_size: 4096,
            read_buffer_size: 64,
            send_buffer: 0,
            worker_threads: 0,
            test_burst: 3,
            test_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            dashboard: true,
            allowed_origins: Vec::new(),
        }
    }
}

/// Certificate chain and private key, as PEM files.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The largest clock leeway `auth.leeway` may be: how far `exp`, `nbf` and `iat` may miss.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);

/// JWT verification (and, for `token issue`, signing) settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret file: its trimmed content is the HMAC key (at least 32 bytes).
    pub jwt_secret_file: Option<PathBuf>,
    /// Ed25519 public key (PEM) to verify EdDSA tokens issued elsewhere.
    pub jwt_public_key: Option<PathBuf>,
    /// Ed25519 private key (PEM), used only by `token issue` when the primary key is EdDSA.
    pub jwt_private_key: Option<PathBuf>,
    /// `kid` of the primary key; tokens without a `kid` are checked against the primary key.
    pub kid: Option<String>,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// Clock leeway for `exp` and `nbf` (at most 5 s).
    #[serde(with = "duration")]
    pub leeway: Duration,
    /// Extra verification keys by `kid`, for rotation.
    pub keys: Vec<RingKey>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret_file: None,
            jwt_public_key: None,
            jwt_private_key: None,
            kid: None,
            issuer: "sigcast".into(),
            audience: "sigcast-clients".into(),
            leeway: Duration::from_secs(5),
            keys: Vec::new(),
        }
    }
}

/// One extra verification key of the key ring.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingKey {
    pub kid: String,
    pub alg: KeyAlg,
    /// HS256: a secret file; EdDSA: a public-key PEM.
    pub file: PathBuf,
}

/// The algorithms sigcast verifies; each key is pinned to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlg {
    HS256,
    EdDSA,
}

/// Where market data comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    pub kind: SourceKind,
    /// Symbols the synthetic market walks.
    pub symbols: Vec<String>,
    /// Seed of the synthetic random walk: the same seed walks the same prices.
    pub seed: u64,
    /// Time between synthetic trades.
    #[serde(with = "duration")]
    pub tick: Duration,
    /// Recordings the replay source plays, merged by receive time.
    pub replay: Vec<PathBuf>,
    /// Replay pace: `1` is real time, `10x` ten times faster, `max` no waiting.
    pub replay_speed: super::Speed,
    /// Start the replay again after its end.
    pub replay_loop: bool,
    /// Wait this long before playing, so clients can connect and see every signal.
    #[serde(with = "duration")]
    pub replay_delay: Duration,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            kind: SourceKind::Synthetic,
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
            seed: 42,
            tick: Duration::from_millis(5),
            replay: Vec::new(),
            replay_speed: super::Speed::Factor(1.0),
            replay_loop: false,
            replay_delay: Duration::ZERO,
        }
    }
}

/// The market sources sigcast can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A seeded random walk, offline.
    Synthetic,
    /// Recorded Binance traffic (`source.replay`), offline.
    Replay,
    /// Binance's live market streams (spot and USD-M futures), per `[binance]`.
    Binance,
}

/// The live Binance upstream: endpoints, sharding, limits and recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceSettings {
    /// Spot combined-stream base (`/stream?streams=` is appended).
    pub spot_ws: String,
    /// USD-M futures base for bookTicker and depth (the 2026 `/public` path).
    pub futures_ws_public: String,
    /// USD-M futures base for aggTrade, trade, kline, continuousKline and ticker (`/market`).
    pub futures_ws_market: String,
    /// Spot REST base, for backfill.
    pub spot_rest: String,
    /// USD-M futures REST base, for backfill.
    pub futures_rest: String,
    /// Streams per connection (Binance allows up to 1024).
    pub streams_per_connection: usize,
    /// Streams named in one `SUBSCRIBE` request.
    pub subscribe_batch: usize,
    /// Messages per second sigcast may send on a spot connection (Binance cuts above 5).
    pub spot_message_rate: u32,
    /// Messages per second sigcast may send on a futures connection (Binance cuts above 10).
    pub futures_message_rate: u32,
    /// A stream silent for this long makes its connection reconnect.
    #[serde(with = "duration")]
    pub watchdog: Duration,
    /// First reconnect delay; doubled (with jitter) per failed attempt up to `backoff_max`.
    #[serde(with = "duration")]
    pub backoff_initial: Duration,
    /// Each failed attempt multiplies the delay by this.
    pub backoff_factor: f64,
    #[serde(with = "duration")]
    pub backoff_max: Duration,
    /// Reconnect attempts in a row before giving up; 0 is unlimited.
    pub max_attempts: u32,
    /// Replace each connection after this long (Binance cuts them at 24 h).
    #[serde(with = "duration")]
    pub rotate_after: Duration,
    /// Optional SOCKS5 proxy, `socks5://host:port`.
    pub proxy: String,
    /// A restarted sigcast fetches the trades made while it was stopped and feeds them to
    /// the strategies when its last one is younger than this; older, it starts fresh.
    #[serde(with = "duration")]
    pub resume_within: Duration,
}

impl Default for BinanceSettings {
    fn default() -> Self {
        Self {
            spot_ws: "wss://stream.binance.com:9443".into(),
            futures_ws_public: "wss://fstream.binance.com/public".into(),
            futures_ws_market: "wss://fstream.binance.com/market".into(),
            spot_rest: "https://api.binance.com".into(),
            futures_rest: "https://fapi.binance.com".into(),
            streams_per_connection: 200,
            subscribe_batch: 50,
            spot_message_rate: 5,
            futures_message_rate: 10,
            watchdog: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_factor: 2.0,
            backoff_max: Duration::from_secs(60),
            max_attempts: 0,
            rotate_after: Duration::from_secs(23 * 3600),
            proxy: String::new(),
            resume_within: Duration::from_secs(600),
        }
    }
}

/// Where strategy definitions live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalsSettings {
    /// Directory of `*.toml` strategy definitions; when absent, the built-in default is used.
    pub dir: PathBuf,
    /// How often `serve` looks for changed definition files (SIGHUP reloads at once); 0 is never.
    #[serde(with = "duration")]
    pub watch: Duration,
}

impl Default for SignalsSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("signals"),
            watch: Duration::from_secs(2),
        }
    }
}

/// Where sigcast keeps its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// Data directory: the signal journal is `<dir>/sigcast.db`.
    pub dir: PathBuf,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data"),
        }
    }
}

impl DataSettings {
    /// The journal database file.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("sigcast.db")
    }
}

/// Which market-data topics clients may subscribe to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketDataSettings {
    /// Symbols clients may ask market data for beyond the ones the strategies trade (which
    /// are always offered); `*` offers any symbol. Only the live source subscribes upstream
    /// on demand; replayed and synthetic data offer whatever they hold.
    pub symbols: Vec<String>,
    /// Market-data topics one session may hold at once.
    pub max_topics: usize,
}

impl Default for MarketDataSettings {
    fn default() -> Self {
        Self {
            symbols: Vec::new(),
            max_topics: 32,
        }
    }
}

/// The operators' plain-HTTP listener: `/metrics`, `/healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Whether `serve` opens it.
    pub enabled: bool,
    /// Where it listens; loopback by default, as it is unauthenticated.
    pub listen: SocketAddr,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// What this sigcast is in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One process: upstream, strategies, SQLite journal and clients. No NATS.
    #[default]
    Single,
    /// Runs the upstream and the strategies while it holds the leader lease, and publishes
    /// signals to the JetStream stream; serves clients like an edge.
    Producer,
    /// No upstream and no strategies: serves clients from the JetStream stream.
    Edge,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Producer => "producer",
            Role::Edge => "edge",
        }
    }
}

/// Cluster mode: producers and edges sharing one signal stream on NATS JetStream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    pub role: Role,
    /// NATS server URLs, comma-separated (`nats://127.0.0.1:4222`).
    pub nats: String,
    /// The JetStream stream of signals; its sequence is the `seq` clients see.
    pub stream: String,
    /// Signals are published on `<subjects>.<symbol>.<strategy>`.
    pub subjects: String,
    /// Stream replicas: 1 on one NATS server, 3 on a three-node NATS cluster.
    pub replicas: usize,
    /// Window in which the stream stores a signal once however often it is published
    /// (a retry, or two producers during a takeover).
    #[serde(with = "duration")]
    pub duplicate_window: Duration,
    /// A producer leads while it renews its lease; a standby takes over at most this long
    /// (plus one renewal period, a third of it) after the leader stops renewing.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// The key-value bucket of the leader lease.
    pub lease_bucket: String,
    /// The key-value bucket of the token registry and revocations.
    pub tokens_bucket: String,
    /// The key-value bucket of the strategies' trade positions, so the producer that takes
    /// over continues after the last trade the leader's strategies took.
    pub positions_bucket: String,
    /// The key-value bucket of the producers' journal public keys, which every node serves
    /// at `GET /v1/journal/key`.
    pub keys_bucket: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            role: Role::Single,
            nats: String::new(),
            stream: "SIGCAST_SIGNALS".into(),
            subjects: "sigcast.signal".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            lease: Duration::from_secs(3),
            lease_bucket: "sigcast_leader".into(),
            tokens_bucket: "sigcast_tokens".into(),
            positions_bucket: "sigcast_positions".into(),
            keys_bucket: "sigcast_journal_keys".into(),
        }
    }
}

/// How much signal history the journal keeps for resuming clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSettings {
    /// Signals older than this are deleted.
    #[serde(with = "duration")]
    pub retention_age: Duration,
    /// At most this many signals are kept.
    pub retention_count: u64,
}

impl Default for JournalSettings {
    fn default() -> Self {
        Self {
            retention_age: Duration::from_secs(7 * 86400),
            retention_count: 1_000_000,
        }
    }
}

/// Logging output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `sigcast=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Durations in the file are humantime text: `10s`, `500ms`, `30d`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "expected a duration like 10s or 500ms, got {text:?}: {e}"
            ))
        })
    }
}
