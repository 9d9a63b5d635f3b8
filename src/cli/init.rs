//! `sigcast init`: a working configuration, development certificate and JWT secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::devcert;
use crate::hub::proof::KeyDir;
use crate::strategy::definition::DEFAULT_DEFINITIONS;

/// Write a commented sigcast.toml, a development certificate and a JWT secret into DIR.
#[derive(Debug, Args)]
pub struct Init {
    /// Directory to write into (created if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Init) -> anyhow::Result<ExitCode> {
    write(&args.dir, args.force)?;
    Ok(ExitCode::SUCCESS)
}

/// The commented config `init` writes; paths are relative to the file.
const CONFIG_TEMPLATE: &str = r#"# sigcast configuration. Every key can also be set with a SIGCAST_* environment variable
# (server.max_connections -> SIGCAST_SERVER_MAX_CONNECTIONS) or a flag
# (--set server.max_connections=500); flags win over env, env over this file.
# Relative paths are relative to this file. `sigcast config keys` lists every key.

[server]
# TLS WebSocket listen address. Use 0.0.0.0:8443 to accept remote clients.
listen = "127.0.0.1:8443"
# Sessions at once; the next client gets HTTP 503 before any upgrade.
max_connections = 10000
# Connections from one client address at once; the next gets HTTP 429 before any upgrade.
# 0 turns the limit off (behind a load balancer that hides client addresses).
max_connections_per_ip = 256
# Budget for TLS plus the WebSocket upgrade.
handshake_timeout = "10s"
# The server pings every client this often...
ping_interval = "20s"
# ...and closes (code 4001) a client it has heard nothing from for this long.
idle_timeout = "60s"
# Signals a client may fall behind before it is closed as a slow consumer (code 4000).
queue_capacity = 1024
# Largest client message in bytes; bigger ones are closed with 1009.
max_message_size = 4096

[tls]
# Development certificate for localhost, 127.0.0.1 and ::1 made by `sigcast init`.
# In production, point these at your real chain and key (PKCS#8, RSA or EC PEM).
cert = "certs/cert.pem"
key = "certs/key.pem"

[auth]
# HS256: the trimmed file content is the HMAC key (at least 32 bytes).
# `openssl rand -hex 32 > jwt.secret` makes a good one.
jwt_secret_file = "jwt.secret"
# Or verify EdDSA tokens issued elsewhere (set this instead of jwt_secret_file):
# jwt_public_key = "jwt-ed25519.pub.pem"
# Tokens must carry these iss and aud claims.
issuer = "sigcast"
audience = "sigcast-clients"
# Clock leeway for exp and nbf (at most 5s).
leeway = "5s"
# Rotation: older keys stay valid for tokens whose kid names them.
# kid = "2026-11"
# [[auth.keys]]
# kid = "2026-10"
# alg = "HS256"
# file = "jwt-2026-10.secret"

[source]
# Market data: "synthetic" (a seeded random walk, offline), "replay" (recordings, offline)
# or "binance" (the live streams; see [binance]).
kind = "synthetic"
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
seed = 42
tick = "5ms"
# replay = ["recordings/btc.jsonl"]
# replay_speed = "1"        # 1 = real time, 10x, or max
# replay_loop = false

[binance]
# The live upstream. Defaults follow Binance's documented endpoints and limits.
# streams_per_connection = 200
# watchdog = "60s"
# rotate_after = "23h"
# proxy = "socks5://127.0.0.1:1080"

[signals]
# Strategy definitions: every *.toml file here. Edits are picked up live (and on SIGHUP).
dir = "signals"
# watch = "2s"              # how often to look for changed files; "0s" for SIGHUP only

[data]
# sigcast.db lives here: the signal journal (signals by seq for resuming clients), the
# token registry, and where the strategies stand in each trade stream (for restarts).
dir = "data"

[journal]
# How much signal history resuming clients can get back.
# retention_age = "7d"
# retention_count = 1000000

[market_data]
# Clients may subscribe to klines, the 24h ticker and the top of book of the symbols the
# strategies trade; list more here ("*" for any), subscribed upstream on demand.
# symbols = ["BTCUSDT", "ETHUSDT"]
# max_topics = 32            # market-data topics per session

[admin]
# Plain HTTP for operators: GET /metrics (Prometheus) and /healthz. Unauthenticated, so it
# listens on loopback; expose it only to your monitoring.
listen = "127.0.0.1:9090"
# enabled = true

[log]
level = "info"
# "text" or "json"
format = "text"
"#;

/// Everything `init` creates under `dir`, with whether the file is secret (mode 0600).
fn plan(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String, bool)>> {
    let cert = devcert::generate()?;
    // 256 random bits as 64 hex characters, the same as `openssl rand -hex 32`.
    let secret_hex = format!(
        "{:032x}{:032x}\n",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    Ok(vec![
        (dir.join("sigcast.toml"), CONFIG_TEMPLATE.to_string(), false),
        (dir.join("certs/cert.pem"), cert.cert_pem, false),
        (dir.join("certs/key.pem"), cert.key_pem, true),
        (dir.join("jwt.secret"), secret_hex, true),
        (
            dir.join("signals/default.toml"),
            DEFAULT_DEFINITIONS.to_string(),
            false,
        ),
    ])
}

/// Writes the files; refuses to overwrite any of them unless `force`.
pub fn write(dir: &Path, force: bool) -> anyhow::Result<()> {
    let files = plan(dir)?;
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(p, _, _)| p.exists())
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            anyhow::bail!(
                "refusing to overwrite {} (use --force)",
                existing.join(", ")
            );
        }
    }
    for (path, content, secret) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        write_file(path, content, *secret)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // The template's data.dir is `data`, beside the file. An existing key is kept, even
    // with --force: signals it signed verify only with it (`sigcast journal rotate` retires
    // a key properly).
    KeyDir::of(&dir.join("data")).load_or_create()?;
    eprintln!(
        "sigcast: wrote {}/{{sigcast.toml, certs/cert.pem, certs/key.pem, jwt.secret, signals/default.toml, data/journal-keys/current.pem}}",
        dir.display()
    );
    Ok(())
}

fn write_file(path: &Path, content: &str, secret: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(if secret { 0o600 } else { 0o644 });
        let mut file = options.open(path)?;
        // `mode` applies only to new files; an overwritten one gets its mode set here.
        file.set_permissions(std::fs::Permissions::from_mode(if secret {
            0o600
        } else {
            0o644
        }))?;
        file.write_all(content.as_bytes())
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        options.open(path)?.write_all(content.as_bytes())
    }
}
