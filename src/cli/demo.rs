//! `sigcast demo`: a complete server on the synthetic market, offline, with a ready wscat line
//! and a live status line.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Overrides};
use crate::node::{self, Listeners, Reread};
use crate::server::Shared;

/// How often the status line is redrawn on a terminal.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Run a complete server offline on the synthetic market and print a ready wscat line.
#[derive(Debug, Args)]
pub struct Demo {
    /// Where the demo keeps its certificate, secret and config.
    #[arg(long, default_value = ".sigcast-demo")]
    dir: PathBuf,
    /// TLS port on 127.0.0.1; when taken, any free port is used.
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Strategy definitions to run instead of the demo's own (e.g. `signals`).
    #[arg(long, value_name = "DIR")]
    signals: Option<PathBuf>,
}

pub fn run(args: Demo) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(demo(&args.dir, args.port, args.signals.as_deref()))?;
    Ok(ExitCode::SUCCESS)
}

/// Inits `dir` when needed, serves on 127.0.0.1:`port` (any free port when taken) and prints a
/// token, a wscat line, the dashboard and metrics addresses, then a status line until Ctrl-C.
async fn demo(dir: &Path, port: u16, signals: Option<&Path>) -> anyhow::Result<()> {
    let config_file = dir.join("sigcast.toml");
    if !config_file.exists() {
        super::init::write(dir, false)?;
    }
    let mut overrides = Overrides::default();
    overrides.set("log.level", "warn");
    if let Some(signals) = signals {
        let signals = std::path::absolute(signals)
            .with_context(|| format!("--signals: {}", signals.display()))?;
        if !signals.is_dir() {
            anyhow::bail!("--signals: {} is not a directory", signals.display());
        }
        overrides.set("signals.dir", signals.to_string_lossy());
    }
    let config = Config::load(Some(&config_file), &Default::default(), &overrides)?;
    let _logging = crate::logging::init(&config);
    let strategies = node::load_strategies(&config)?;
    let shared = node::build(&config)?;
    let clients = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(_) => node::bind("127.0.0.1:0".parse()?).await?,
    };
    let port = clients.local_addr()?.port();
    // The configured admin port, or any free one if that is taken.
    let admin = match config.admin.enabled {
        false => None,
        true => match TcpListener::bind(config.admin.listen).await {
            Ok(l) => Some(l),
            Err(_) => Some(TcpListener::bind("127.0.0.1:0").await?),
        },
    };
    let token = shared
        .keys
        .current()
        .issue("demo", Duration::from_secs(24 * 3600), None)?;
    println!(
        "sigcast demo: serving the synthetic market ({}) on wss://127.0.0.1:{port}",
        config.source.symbols.join(", ")
    );
    println!("Signals arrive every few seconds; send `test` for test signals to you alone.");
    println!();
    println!("Token (sub=demo, valid 24h):");
    println!("{token}");
    println!();
    println!("Connect (npm install -g wscat; -n accepts the self-signed demo certificate):");
    println!("wscat -c wss://127.0.0.1:{port} -H \"Authorization: Bearer {token}\" -n");
    println!();
    println!("Dashboard (accept the self-signed certificate; the token stays in the page):");
    println!("https://127.0.0.1:{port}/#token={token}");
    println!();
    if let Some(admin) = &admin {
        println!("Metrics: http://{}/metrics", admin.local_addr()?);
    }
    let config_file = dir.join("sigcast.toml");
    println!(
        "Every signal is signed; check the history (docs/verify.md):\nsigcast journal export --config {0} | sigcast verify - --config {0} --track-record",
        config_file.display()
    );
    println!();
    println!("Files are in {}. Ctrl-C to stop.", dir.display());
    println!();
    let shutdown = CancellationToken::new();
    tokio::spawn(status(shared.clone(), shutdown.clone()));
    let same = config.clone();
    let reread: Reread = Arc::new(move || Ok(same.clone()));
    let listeners = Listeners { clients, admin };
    let ran = node::run(
        &config, reread, shared, listeners, strategies, None, shutdown,
    )
    .await;
    if std::io::stdout().is_terminal() {
        println!();
    }
    ran
}

/// What the status line shows: clients connected, signals sent since the start, the last one.
#[derive(Debug, Default, PartialEq)]
struct Status {
    clients: i64,
    sent: u64,
    last: Option<String>,
}

impl Status {
    fn line(&self) -> String {
        let last = self.last.as_deref().unwrap_or("none yet");
        format!(
            "clients: {}  signals sent: {}  last: {last}",
            self.clients, self.sent
        )
    }
}

/// "buy BTCUSDT 75000.0 (ema_cross)" from a signal frame; `None` for anything else.
fn describe(frame: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    let content = v.get("content")?;
    let mut text = format!(
        "{} {} {}",
        v.get("type")?.as_str()?,
        content.get("symbol")?.as_str()?,
        content.get("price")?
    );
    if let Some(strategy) = content.get("strategy").and_then(|s| s.as_str()) {
        text.push_str(&format!(" ({strategy})"));
    }
    Some(text)
}

/// Keeps the status line: redrawn in place every second on a terminal, or a line per signal
/// when stdout is a pipe or a file (so logs of a demo stay readable).
async fn status(shared: Arc<Shared>, stop: CancellationToken) {
    let terminal = std::io::stdout().is_terminal();
    let mut signals = shared.hub.subscribe();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    let mut now = Status::default();
    loop {
        let changed = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => terminal,
            got = signals.recv() => match got {
                Ok(published) => {
                    now.sent += 1;
                    now.last = describe(published.frame.as_str()).or(now.last.take());
                    !terminal
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    now.sent += n;
                    false
                }
                Err(_) => return,
            },
        };
        now.clients = shared.stats.sessions.load(Ordering::Relaxed);
        if changed {
            let mut out = std::io::stdout().lock();
            let _ = match terminal {
                true => write!(out, "\r\x1b[2K{}", now.line()),
                false => writeln!(out, "{}", now.line()),
            };
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_frame_reads_as_side_symbol_price_and_strategy() {
        let frame = r#"{"type":"buy","content":{"symbol":"BTCUSDT","price":75000.0,"timestamp":1720000000,"strategy":"ema_cross"},"is_test":false,"seq":3}"#;
        assert_eq!(
            describe(frame).as_deref(),
            Some("buy BTCUSDT 75000.0 (ema_cross)")
        );
        let bare = r#"{"type":"sell","content":{"symbol":"ETHUSDT","price":3000.5,"timestamp":1720000000},"is_test":false}"#;
        assert_eq!(describe(bare).as_deref(), Some("sell ETHUSDT 3000.5"));
        assert_eq!(describe("{}"), None);
        assert_eq!(describe("not json"), None);
    }

    #[test]
    fn the_status_line_names_clients_signals_and_the_last() {
        let mut s = Status::default();
        assert_eq!(s.line(), "clients: 0  signals sent: 0  last: none yet");
        s.clients = 2;
        s.sent = 5;
        s.last = Some("sell ETHUSDT 3000.5".into());
        assert_eq!(
            s.line(),
            "clients: 2  signals sent: 5  last: sell ETHUSDT 3000.5"
        );
    }
}
