//! Every settable key, its kind and help, and the overrides given as text.

use std::net::SocketAddr;

use super::ConfigError;

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
    "server.coalesce", Duration, "while the runtime is busy, a client's writes are at least this far apart (0: off)";
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
    "cluster.keys_bucket", Text, "key-value bucket of the producers' journal public keys";
    "ledger.positions", Text, "how signals are paper-traded: long_only (a sell closes) or long_short (a sell goes short)";
    "ledger.fee_bps", Number, "fee per side, basis points of the traded value";
    "ledger.slippage_bps", Number, "fill distance from the signal's price, against the trader, basis points";
    "ledger.notional", Number, "quote value of each paper position when it opens";
    "ledger.capital", Number, "quote account each strategy's returns are measured against";
}

impl Key {
    /// The environment variable that sets this key.
    pub fn env_name(&self) -> String {
        format!("SIGCAST_{}", self.name.replace('.', "_").to_uppercase())
    }

    /// Converts override text to a TOML value of this key's kind, or says why it cannot.
    pub(super) fn parse(&self, text: &str) -> Result<toml::Value, String> {
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

/// The settings reference as a Markdown table: `sigcast config keys` prints it, and
/// `docs/configuration.md` holds it (a test fails when the two differ).
pub fn reference() -> String {
    let defaults =
        toml::Value::try_from(super::Config::default()).unwrap_or(toml::Value::Boolean(false));
    let mut out = String::from("| key | env | default | meaning |\n|---|---|---|---|\n");
    for key in KEYS {
        let (section, leaf) = key.name.split_once('.').unwrap_or((key.name, ""));
        let default = defaults
            .get(section)
            .and_then(|s| s.get(leaf))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(unset)".into());
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | {} |\n",
            key.name,
            key.env_name(),
            default.replace('|', "\\|"),
            key.help
        ));
    }
    out
}
