//! The relations between keys that types alone cannot check.

use std::time::Duration;

use super::{Config, ConfigError, Role, SourceKind, invalid, valid_symbol};

impl Config {
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
        if let Err(message) = self.ledger.check() {
            p.push(invalid("ledger", message));
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
            ("cluster.keys_bucket", &c.keys_bucket),
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
        if s.coalesce > Duration::from_secs(1) {
            p.push(invalid(
                "server.coalesce",
                "must be at most 1s (0 turns it off)",
            ));
        }
        if s.idle_timeout <= s.ping_interval {
            p.push(invalid(
                "server.idle_timeout",
                "must be longer than server.ping_interval, or every client idles out",
            ));
        }
        if self.auth.leeway > super::MAX_LEEWAY {
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
}
