//! Layered settings: built-in defaults, then the TOML file, then `SIGCAST_*` environment, then flags.
//!
//! Every key has a dotted name (`server.max_connections`), an environment variable made from it
//! (`SIGCAST_SERVER_MAX_CONNECTIONS`) and can be set with `--set server.max_connections=500`.
//! [`KEYS`] is the one list of them: overrides, `README.md` and `config show` all follow it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded; every message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// One setting's value, from a file, an environment variable or a flag.
    #[error("{origin}: {key}: {message}")]
    Setting {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The whole effective configuration of one sigcast process.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub source: SourceSettings,
    pub binance: BinanceSettings,
    pub signals: SignalsSettings,
    pub data: DataSettings,
    pub journal: JournalSettings,
    pub market_data: MarketDataSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub cluster: ClusterSettings,
}

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
    pub replay_speed: String,
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
            replay_speed: "1".into(),
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

/// The kind of value a key holds, so overrides from text are checked before they are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Path,
    Integer,
    Duration,
    Address,
    List,
    PathList,
    Bool,
    Number,
}

/// One settable key: its dotted name, value kind and what it does.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

macro_rules! keys {
    ($( $name:literal, $kind:ident, $help:literal; )*) => {
        /// Every key an operator can set, in README order.
        pub const KEYS: &[Key] = &[ $( Key { name: $name, kind: Kind::$kind, help: $help } ),* ];
    };
}

keys! {
    "server.listen", Address, "TLS WebSocket listen address";
    "server.max_connections", Integer, "sessions at once; beyond it HTTP 503";
    "server.max_connections_per_ip", Integer, "connections from one address at once; beyond it HTTP 429 (0: no limit)";
    "server.handshake_timeout", Duration, "TLS + upgrade budget";
    "server.ping_interval", Duration, "server ping period";
    "server.idle_timeout", Duration, "close after this long without client traffic";
    "server.write_timeout", Duration, "a write that takes longer ends the session";
    "server.queue_capacity", Integer, "signals a client may lag before close 4000";
    "server.max_message_size", Integer, "largest client message (bytes); bigger is closed 1009";
    "server.read_buffer_size", Integer, "per-connection WebSocket read buffer (bytes; grows for a bigger message)";
    "server.send_buffer", Integer, "kernel send buffer per client socket (bytes; 0: kernel autotuning)";
    "server.worker_threads", Integer, "runtime threads serving clients (0: one per CPU core)";
    "server.test_burst", Integer, "`test` requests allowed in a burst";
    "server.test_interval", Duration, "one more `test` per this interval after the burst";
    "server.shutdown_grace", Duration, "how long shutdown waits for sessions";
    "server.dashboard", Bool, "serve the live dashboard page at / on the client port";
    "server.allowed_origins", List, "origins whose pages may open browser sessions (* any; empty: the dashboard only)";
    "tls.cert", Path, "certificate chain PEM";
    "tls.key", Path, "private key PEM (PKCS#8, PKCS#1 RSA or SEC1 EC)";
    "auth.jwt_secret_file", Path, "HS256 secret file (trimmed, >= 32 bytes)";
    "auth.jwt_public_key", Path, "Ed25519 public key PEM (EdDSA tokens)";
    "auth.jwt_private_key", Path, "Ed25519 private key PEM, for `token issue` only";
    "auth.kid", Text, "kid of the primary key";
    "auth.issuer", Text, "required iss claim";
    "auth.audience", Text, "required aud claim";
    "auth.leeway", Duration, "clock leeway for exp/nbf (<= 5s)";
    "source.kind", Text, "market source: synthetic, replay or binance";
    "source.symbols", List, "symbols of the synthetic market (comma-separated in env/flags)";
    "source.seed", Integer, "seed of the synthetic random walk";
    "source.tick", Duration, "time between synthetic trades";
    "source.replay", PathList, "recordings to replay (comma-separated in env/flags)";
    "source.replay_speed", Text, "replay pace: 1 (real time), 10x, or max";
    "source.replay_loop", Bool, "play the recordings again after the end";
    "source.replay_delay", Duration, "wait this long before playing (lets clients connect)";
    "binance.spot_ws", Text, "spot combined-stream base URL";
    "binance.futures_ws_public", Text, "futures base URL for bookTicker and depth";
    "binance.futures_ws_market", Text, "futures base URL for trades, klines and tickers";
    "binance.spot_rest", Text, "spot REST base URL (backfill)";
    "binance.futures_rest", Text, "futures REST base URL (backfill)";
    "binance.streams_per_connection", Integer, "streams per upstream connection (<= 1024)";
    "binance.subscribe_batch", Integer, "streams per SUBSCRIBE request";
    "binance.spot_message_rate", Integer, "messages/s sigcast sends per spot connection (<= 5)";
    "binance.futures_message_rate", Integer, "messages/s sigcast sends per futures connection (<= 10)";
    "binance.watchdog", Duration, "reconnect when a stream is silent this long";
    "binance.backoff_initial", Duration, "first reconnect delay (doubles, with jitter)";
    "binance.backoff_factor", Number, "reconnect delay multiplier per failed attempt";
    "binance.backoff_max", Duration, "longest reconnect delay";
    "binance.max_attempts", Integer, "reconnect attempts in a row before giving up (0: never)";
    "binance.rotate_after", Duration, "replace each connection after this long (< 24h)";
    "binance.proxy", Text, "optional SOCKS5 proxy, socks5://host:port";
    "binance.resume_within", Duration, "after a restart, replay the trades missed while stopped if the last is younger (0s: never)";
    "signals.dir", Path, "directory of strategy definitions (*.toml)";
    "signals.watch", Duration, "how often to check signals.dir for changes (0s: SIGHUP only)";
    "data.dir", Path, "data directory; the signal journal is <dir>/sigcast.db";
    "journal.retention_age", Duration, "journaled signals older than this are deleted";
    "journal.retention_count", Integer, "most journaled signals kept";
    "market_data.symbols", List, "symbols clients may ask market data for besides the strategies' own (* any)";
    "market_data.max_topics", Integer, "market-data topics one session may subscribe to";
    "admin.enabled", Bool, "serve /metrics, /healthz and /readyz over plain HTTP";
    "admin.listen", Address, "admin listener address (unauthenticated: keep it private)";
    "log.level", Text, "tracing filter (info, debug, sigcast=trace, ...)";
    "log.format", Text, "text or json";
    "cluster.role", Text, "single (no NATS), producer or edge";
    "cluster.nats", Text, "NATS server URLs, comma-separated (cluster mode)";
    "cluster.stream", Text, "JetStream stream of signals (its sequence is seq)";
    "cluster.subjects", Text, "signals are published on <subjects>.<symbol>.<strategy>";
    "cluster.replicas", Integer, "stream and bucket replicas (3 on a three-node NATS cluster)";
    "cluster.duplicate_window", Duration, "a signal published twice within this is stored once";
    "cluster.lease", Duration, "leader lease: a standby producer takes over this long after the leader stops";
    "cluster.lease_bucket", Text, "key-value bucket of the leader lease";
    "cluster.tokens_bucket", Text, "key-value bucket of the token registry and revocations";
    "cluster.positions_bucket", Text, "key-value bucket of the strategies' trade positions (producers)";
}

impl Key {
    /// The environment variable that sets this key.
    pub fn env_name(&self) -> String {
        format!("SIGCAST_{}", self.name.replace('.', "_").to_uppercase())
    }

    /// Converts override text to a TOML value of this key's kind, or says why it cannot.
    fn parse(&self, text: &str) -> Result<toml::Value, String> {
        match self.kind {
            Kind::Text | Kind::Path => Ok(toml::Value::String(text.to_string())),
            Kind::Integer => text
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| format!("expected a whole number, got {text:?}")),
            Kind::Duration => humantime::parse_duration(text.trim())
                .map(|_| toml::Value::String(text.trim().to_string()))
                .map_err(|e| format!("expected a duration like 10s or 500ms, got {text:?}: {e}")),
            Kind::Address => text
                .trim()
                .parse::<SocketAddr>()
                .map(|_| toml::Value::String(text.trim().to_string()))
                .map_err(|_| format!("expected HOST:PORT such as 0.0.0.0:8443, got {text:?}")),
            Kind::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(toml::Value::Float)
                .ok_or_else(|| format!("expected a number, got {text:?}")),
            Kind::Bool => match text.trim() {
                "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
                "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
                _ => Err(format!("expected true or false, got {text:?}")),
            },
            Kind::List | Kind::PathList => Ok(toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            )),
        }
    }
}

/// Finds a key by its dotted name.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Settings given on the command line, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `(dotted key, text)` pairs, in the order given.
    pub values: Vec<(String, String)>,
}

impl Overrides {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.push((key.to_string(), value.into()));
    }

    /// Parses `--set key=value` text.
    pub fn parse_assignment(&mut self, text: &str) -> Result<(), ConfigError> {
        let (k, v) = text.split_once('=').ok_or_else(|| ConfigError::Setting {
            origin: "--set".into(),
            key: text.into(),
            message: "expected KEY=VALUE".into(),
        })?;
        self.set(k.trim(), v);
        Ok(())
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then `SIGCAST_*` from `env`, then `overrides`.
    ///
    /// Relative paths in the file are taken relative to the file's directory, so a config
    /// works from any working directory; paths from env and flags are relative to the cwd.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        match Config::load_checked(file, env, overrides) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, mut problems) => Err(problems.remove(0)),
        }
    }

    /// As [`Config::load`], but goes on past the first problem and returns every one: each
    /// bad key of the file, env and flags, then each broken relation between the keys that
    /// remain, with the configuration those make (so what depends on it can be checked too).
    /// A file that cannot be read or is not TOML at all is one problem and no configuration.
    pub fn load_checked(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> (Option<Config>, Vec<ConfigError>) {
        let text = match file.map(|path| (path, std::fs::read_to_string(path))) {
            None => None,
            Some((path, Ok(text))) => Some((path, text)),
            Some((path, Err(source))) => {
                let path = path.to_path_buf();
                return (None, vec![ConfigError::Read { path, source }]);
            }
        };
        let file = text.as_ref().map(|(path, text)| (*path, text.as_str()));
        Config::checked(file, env, overrides)
    }

    /// As [`Config::load_checked`], with the file's text already read: `path` names it in
    /// messages and anchors its relative paths.
    pub fn checked(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> (Option<Config>, Vec<ConfigError>) {
        let mut problems = Vec::new();
        let mut table = toml::Table::new();
        if let Some((path, text)) = file {
            let parsed = match text.parse::<toml::Table>() {
                Ok(parsed) => parsed,
                Err(e) => {
                    let message = e.to_string().trim().replace('\n', " | ");
                    let path = path.to_path_buf();
                    return (None, vec![ConfigError::Parse { path, message }]);
                }
            };
            // Each setting on its own, so one bad key does not hide the next.
            let mut leaves = Vec::new();
            flatten(&parsed, &[], &mut leaves);
            let origin = path.display().to_string();
            for (at, value) in leaves {
                if let Err(problem) = accept(&mut table, &at, Ok(value), &origin) {
                    problems.push(problem);
                }
            }
            let base = path.parent().unwrap_or(Path::new(""));
            rebase_paths(&mut table, base);
        }
        for key in KEYS {
            if let Some(text) = env.get(&key.env_name()) {
                let at: Vec<String> = key.name.split('.').map(String::from).collect();
                if let Err(p) = accept(&mut table, &at, key.parse(text), &key.env_name()) {
                    problems.push(p);
                }
            }
        }
        for (name, text) in &overrides.values {
            let parsed = key(name)
                .ok_or_else(|| "no such setting (see `sigcast config keys`)".to_string())
                .and_then(|key| key.parse(text));
            let at: Vec<String> = name.split('.').map(String::from).collect();
            if let Err(p) = accept(&mut table, &at, parsed, "flag") {
                problems.push(p);
            }
        }
        match toml::Value::Table(table).try_into::<Config>() {
            Ok(config) => {
                problems.extend(config.problems());
                (Some(config), problems)
            }
            Err(e) => {
                problems.push(ConfigError::Parse {
                    path: file.map(|f| f.0.to_path_buf()).unwrap_or_default(),
                    message: e.to_string(),
                });
                (None, problems)
            }
        }
    }

    /// Checks the relations between keys that types alone cannot; the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every relation between keys that types alone cannot check and that does not hold.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        let s = &self.server;
        if s.max_connections == 0 {
            p.push(invalid("server.max_connections", "must be at least 1"));
        }
        if s.queue_capacity == 0 {
            p.push(invalid("server.queue_capacity", "must be at least 1"));
        }
        if s.max_message_size < 16 || s.max_message_size > 1 << 20 {
            p.push(invalid(
                "server.max_message_size",
                "must be between 16 bytes and 1 MiB",
            ));
        }
        if !(64..=1 << 20).contains(&s.read_buffer_size) {
            p.push(invalid(
                "server.read_buffer_size",
                "must be 64 bytes to 1 MiB",
            ));
        }
        if s.worker_threads > 1024 {
            p.push(invalid(
                "server.worker_threads",
                "must be 0 (one per CPU core) to 1024",
            ));
        }
        if let Some(bad) = s.allowed_origins.iter().find(|o| {
            *o != "*" && !(o.starts_with("https://") || o.starts_with("http://"))
                || o.trim_end_matches('/').matches('/').count() > 2
        }) {
            p.push(invalid(
                "server.allowed_origins",
                format!("{bad:?} is not an origin like https://dash.example.com (scheme and host, no path) or *"),
            ));
        }
        if self.journal.retention_count == 0 {
            p.push(invalid("journal.retention_count", "must be at least 1"));
        }
        let c = &self.cluster;
        if c.role != Role::Single && c.nats.trim().is_empty() {
            p.push(invalid(
                "cluster.nats",
                format!(
                    "the {} role needs a NATS server (--nats nats://HOST:4222)",
                    c.role.as_str()
                ),
            ));
        }
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        for (key, name) in [
            ("cluster.stream", &c.stream),
            ("cluster.lease_bucket", &c.lease_bucket),
            ("cluster.tokens_bucket", &c.tokens_bucket),
            ("cluster.positions_bucket", &c.positions_bucket),
        ] {
            if !name_ok(name) {
                p.push(invalid(
                    key,
                    format!("{name:?}: use letters, digits, _ and -"),
                ));
            }
        }
        if c.subjects.is_empty() || c.subjects.split('.').any(|t| !name_ok(t)) {
            p.push(invalid(
                "cluster.subjects",
                format!(
                    "{:?} is not a subject prefix like sigcast.signal",
                    c.subjects
                ),
            ));
        }
        if !(1..=5).contains(&c.replicas) {
            p.push(invalid("cluster.replicas", "must be 1 to 5"));
        }
        if c.lease < Duration::from_secs(1) {
            p.push(invalid("cluster.lease", "must be at least 1s"));
        }
        if c.duplicate_window < c.lease * 2 {
            p.push(invalid(
                "cluster.duplicate_window",
                "must be at least twice cluster.lease, so a takeover cannot store a signal twice",
            ));
        }
        if let Some(bad) = self
            .market_data
            .symbols
            .iter()
            .find(|s| *s != "*" && !valid_symbol(s))
        {
            p.push(invalid(
                "market_data.symbols",
                format!("{bad:?} is not a symbol (A-Z and 0-9, up to 20) or *"),
            ));
        }
        if !(1..=1024).contains(&self.market_data.max_topics) {
            p.push(invalid("market_data.max_topics", "must be 1 to 1024"));
        }
        for (key, d) in [
            ("server.handshake_timeout", s.handshake_timeout),
            ("server.ping_interval", s.ping_interval),
            ("server.idle_timeout", s.idle_timeout),
            ("server.write_timeout", s.write_timeout),
            ("server.test_interval", s.test_interval),
        ] {
            if d.is_zero() {
                p.push(invalid(key, "must be greater than zero"));
            }
        }
        if s.idle_timeout <= s.ping_interval {
            p.push(invalid(
                "server.idle_timeout",
                "must be longer than server.ping_interval, or every client idles out",
            ));
        }
        if self.auth.leeway > Duration::from_secs(5) {
            p.push(invalid("auth.leeway", "must be at most 5s"));
        }
        if self.auth.issuer.is_empty() {
            p.push(invalid("auth.issuer", "must not be empty"));
        }
        if self.auth.audience.is_empty() {
            p.push(invalid("auth.audience", "must not be empty"));
        }
        if self.source.symbols.is_empty() {
            p.push(invalid("source.symbols", "needs at least one symbol"));
        }
        if let Some(bad) = self.source.symbols.iter().find(|s| !valid_symbol(s)) {
            p.push(invalid(
                "source.symbols",
                format!("{bad:?} is not a symbol (A-Z and 0-9, up to 20)"),
            ));
        }
        if self.source.tick.is_zero() {
            p.push(invalid("source.tick", "must be greater than zero"));
        }
        if let Err(e) = self
            .source
            .replay_speed
            .parse::<crate::market::replay::Speed>()
        {
            p.push(invalid("source.replay_speed", e));
        }
        if self.source.kind == SourceKind::Replay && self.source.replay.is_empty() {
            p.push(invalid(
                "source.replay",
                "the replay source needs at least one recording (--source replay:PATH)",
            ));
        }
        let b = &self.binance;
        if !(1..=1024).contains(&b.streams_per_connection) {
            p.push(invalid(
                "binance.streams_per_connection",
                "must be 1 to 1024",
            ));
        }
        if !(1..=1024).contains(&b.subscribe_batch) {
            p.push(invalid("binance.subscribe_batch", "must be 1 to 1024"));
        }
        if !(1..=5).contains(&b.spot_message_rate) {
            p.push(invalid(
                "binance.spot_message_rate",
                "must be 1 to 5 (Binance's limit)",
            ));
        }
        if !(1..=10).contains(&b.futures_message_rate) {
            p.push(invalid(
                "binance.futures_message_rate",
                "must be 1 to 10 (Binance's limit)",
            ));
        }
        for (key, url) in [
            ("binance.spot_ws", &b.spot_ws),
            ("binance.futures_ws_public", &b.futures_ws_public),
            ("binance.futures_ws_market", &b.futures_ws_market),
        ] {
            if !(url.starts_with("wss://") || url.starts_with("ws://")) {
                p.push(invalid(
                    key,
                    format!("{url:?} is not a ws:// or wss:// URL"),
                ));
            }
        }
        for (key, url) in [
            ("binance.spot_rest", &b.spot_rest),
            ("binance.futures_rest", &b.futures_rest),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                p.push(invalid(key, format!("{url:?} is not an http(s) URL")));
            }
        }
        if !b.proxy.is_empty() && !b.proxy.starts_with("socks5://") {
            p.push(invalid("binance.proxy", "expected socks5://host:port"));
        }
        if b.backoff_initial.is_zero() || b.backoff_max < b.backoff_initial {
            p.push(invalid(
                "binance.backoff_max",
                "backoff_initial must be > 0 and backoff_max at least backoff_initial",
            ));
        }
        if !(1.0..=10.0).contains(&b.backoff_factor) {
            p.push(invalid(
                "binance.backoff_factor",
                "must be between 1 and 10",
            ));
        }
        if b.watchdog.is_zero() {
            p.push(invalid("binance.watchdog", "must be greater than zero"));
        }
        if b.rotate_after.is_zero() || b.rotate_after >= Duration::from_secs(24 * 3600) {
            p.push(invalid(
                "binance.rotate_after",
                "must be under 24h, or Binance cuts the connection first",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(invalid("log.level", e.to_string()));
        }
        problems
    }

    /// The effective configuration as TOML, secrets redacted. Keys and secrets live in files
    /// whose paths alone appear; the one secret a value can hold is a password in the
    /// SOCKS5 proxy URL, shown as `***`.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.binance.proxy = redact_password(&shown.binance.proxy);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// `scheme://user:password@host` with the password replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            match userinfo.contains(':') {
                true => format!("{scheme}://{user}:***@{host}"),
                false => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A market symbol as Binance spells them: upper-case letters and digits.
pub fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Every setting of a parsed file as (path, value); arrays (of tables too) are values.
fn flatten(table: &toml::Table, prefix: &[String], out: &mut Vec<(Vec<String>, toml::Value)>) {
    for (k, v) in table {
        let mut path = prefix.to_vec();
        path.push(k.clone());
        match v {
            toml::Value::Table(t) if !t.is_empty() => flatten(t, &path, out),
            other => out.push((path, other.clone())),
        }
    }
}

/// Takes one setting into `table` when its value is good for its key on its own, or says
/// why not (naming where it came from: a file, an environment variable or `flag`).
fn accept(
    table: &mut toml::Table,
    at: &[String],
    value: Result<toml::Value, String>,
    origin: &str,
) -> Result<(), ConfigError> {
    let checked = value.and_then(|value| {
        let mut alone = toml::Table::new();
        insert_path(&mut alone, at, value.clone());
        match toml::Value::Table(alone).try_into::<Config>() {
            Ok(_) => Ok(value),
            Err(e) => Err(e.message().trim().replace('\n', " | ")),
        }
    });
    match checked {
        Ok(value) => {
            insert_path(table, at, value);
            Ok(())
        }
        Err(message) => Err(ConfigError::Setting {
            origin: origin.to_string(),
            key: at.join("."),
            message,
        }),
    }
}

/// Sets the setting at a path (`["server", "listen"]`), making the tables on the way.
fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [leaf] => {
            table.insert(leaf.clone(), value);
        }
        [section, rest @ ..] => {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

/// Makes relative path values from a file relative to that file's directory.
fn rebase_paths(table: &mut toml::Table, base: &Path) {
    let rebase = |v: &mut toml::Value| {
        if let toml::Value::String(s) = v {
            let p = Path::new(s.as_str());
            if p.is_relative() && !s.is_empty() {
                *s = base.join(p).to_string_lossy().into_owned();
            }
        }
    };
    for key in KEYS
        .iter()
        .filter(|k| matches!(k.kind, Kind::Path | Kind::PathList))
    {
        let (section, leaf) = key.name.split_once('.').expect("keys are section.leaf");
        match table
            .get_mut(section)
            .and_then(|s| s.as_table_mut())
            .and_then(|s| s.get_mut(leaf))
        {
            Some(toml::Value::Array(items)) => items.iter_mut().for_each(rebase),
            Some(v) => rebase(v),
            None => {}
        }
    }
    if let Some(keys) = table
        .get_mut("auth")
        .and_then(|a| a.as_table_mut())
        .and_then(|a| a.get_mut("keys"))
        .and_then(|k| k.as_array_mut())
    {
        for k in keys.iter_mut().filter_map(|k| k.as_table_mut()) {
            if let Some(v) = k.get_mut("file") {
                rebase(v);
            }
        }
    }
}

/// Reads the `SIGCAST_*` variables of this process.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("SIGCAST_"))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, &BTreeMap::new(), &Overrides::default()).unwrap();
        assert_eq!(c.server.max_connections, 10_000);
        assert_eq!(c.auth.issuer, "sigcast");
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sigcast.toml");
        std::fs::write(
            &file,
            "[server]\nmax_connections = 10\nlisten = \"127.0.0.1:1\"\n[tls]\ncert = \"c.pem\"\n",
        )
        .unwrap();
        let e = env(&[
            ("SIGCAST_SERVER_MAX_CONNECTIONS", "20"),
            ("SIGCAST_SERVER_LISTEN", "127.0.0.1:2"),
        ]);
        let mut o = Overrides::default();
        o.set("server.listen", "127.0.0.1:3");
        let c = Config::load(Some(&file), &e, &o).unwrap();
        assert_eq!(c.server.max_connections, 20);
        assert_eq!(c.server.listen.port(), 3);
        assert_eq!(c.tls.cert.unwrap(), dir.path().join("c.pem"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = env(&[("SIGCAST_SERVER_MAX_CONNECTIONS", "lots")]);
        let err = Config::load(None, &e, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("server.max_connections"), "{err}");

        let mut o = Overrides::default();
        o.set("auth.leeway", "30s");
        let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
        assert!(err.to_string().starts_with("auth.leeway"), "{err}");

        let mut o = Overrides::default();
        o.set("server.nope", "1");
        let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
        assert!(err.to_string().contains("server.nope"), "{err}");

        let mut o = Overrides::default();
        o.set("server.worker_threads", "5000");
        let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
        assert!(
            err.to_string().starts_with("server.worker_threads"),
            "{err}"
        );
        o.set("server.worker_threads", "1");
        let config = Config::load(None, &BTreeMap::new(), &o).unwrap();
        assert_eq!(config.server.worker_threads, 1);
    }

    #[test]
    fn load_checked_reports_every_problem_and_keeps_the_good_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sigcast.toml");
        std::fs::write(
            &path,
            "stray = 1\n[server]\nmax_connections = 0\nping_interval = \"soon\"\nqueue_capacity = 7\n[admin]\nlisten = \"x\"\n",
        )
        .unwrap();
        let e = env(&[("SIGCAST_LOG_FORMAT", "yaml")]);
        let mut o = Overrides::default();
        o.set("source.tick", "never");
        let (config, problems) = Config::load_checked(Some(&path), &e, &o);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            "sigcast.toml: stray: unknown field",
            "sigcast.toml: server.ping_interval: ",
            "sigcast.toml: admin.listen: ",
            "SIGCAST_LOG_FORMAT: log.format: unknown variant `yaml`",
            "flag: source.tick: expected a duration",
            "server.max_connections: must be at least 1",
        ];
        assert_eq!(lines.len(), expect.len(), "{lines:#?}");
        for want in expect {
            assert!(
                lines.iter().any(|l| l.contains(want)),
                "{want:?} not in {lines:#?}"
            );
        }
        let config = config.expect("the good keys still make a configuration");
        assert_eq!(config.server.queue_capacity, 7);
        let err = Config::load(Some(&path), &e, &o).unwrap_err();
        assert!(
            err.to_string().contains("admin.listen"),
            "load stops at the first: {err}"
        );
    }

    #[test]
    fn show_redacts_the_proxy_password() {
        let mut o = Overrides::default();
        o.set("binance.proxy", "socks5://trader:hunter2@10.0.0.1:1080");
        let shown = Config::load(None, &BTreeMap::new(), &o).unwrap().to_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("socks5://trader:***@10.0.0.1:1080"),
            "{shown}"
        );
        assert_eq!(
            redact_password("socks5://10.0.0.1:1080"),
            "socks5://10.0.0.1:1080"
        );
    }

    #[test]
    fn file_errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sigcast.toml");
        std::fs::write(&file, "[server]\nmax_conections = 10\n").unwrap();
        let err = Config::load(Some(&file), &BTreeMap::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sigcast.toml") && err.contains("max_conections"),
            "{err}"
        );

        std::fs::write(&file, "[server]\nping_interval = \"soon\"\n").unwrap();
        let err = Config::load(Some(&file), &BTreeMap::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ping_interval"), "{err}");
    }

    #[test]
    fn every_key_is_a_real_setting() {
        // Setting each key to a value of its kind must deserialize: KEYS and the structs agree.
        for key in KEYS {
            let text = match key.kind {
                Kind::Text => match key.name {
                    "source.kind" => "synthetic",
                    "cluster.role" => "edge",
                    "cluster.nats" => "nats://127.0.0.1:4222",
                    "cluster.subjects" => "a.b",
                    "source.replay_speed" => "max",
                    "binance.spot_ws"
                    | "binance.futures_ws_public"
                    | "binance.futures_ws_market" => "ws://127.0.0.1:1",
                    "binance.spot_rest" | "binance.futures_rest" => "http://127.0.0.1:1",
                    "binance.proxy" => "socks5://127.0.0.1:1080",
                    "log.format" => "json",
                    "log.level" => "debug",
                    _ => "x",
                },
                Kind::Path => "/tmp/x",
                Kind::Integer
                    if key.name.starts_with("binance.") || key.name.starts_with("market_data.") =>
                {
                    "3"
                }
                Kind::Integer => "4096",
                Kind::Duration => "2s",
                Kind::Address => "127.0.0.1:9",
                Kind::List if key.name == "server.allowed_origins" => "https://a.example,*",
                Kind::List => "BTCUSDT,ETHUSDT",
                Kind::PathList => "/tmp/a.gz,/tmp/b.txt",
                Kind::Bool => "true",
                Kind::Number => "1.5",
            };
            let mut o = Overrides::default();
            o.set(key.name, text);
            if key.name == "server.ping_interval" {
                o.set("server.idle_timeout", "60s");
            }
            if key.name == "server.idle_timeout" {
                o.set("server.ping_interval", "1s");
            }
            match key.name {
                "cluster.role" => o.set("cluster.nats", "nats://127.0.0.1:4222"),
                "cluster.replicas" => o.set(key.name, "3"),
                "server.worker_threads" => o.set(key.name, "2"),
                "cluster.duplicate_window" => o.set("cluster.lease", "1s"),
                _ => {}
            }
            Config::load(None, &BTreeMap::new(), &o)
                .unwrap_or_else(|e| panic!("{}: {e}", key.name));
        }
    }
}
