//! `sigcast listen`: a server's signals as JSON lines, resumed across reconnects.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Print a server's signals as JSON lines, reconnecting with backoff and resuming from
/// the last seq printed, so the output has no gap and no duplicate.
#[derive(Debug, Args)]
pub struct Listen {
    /// Server URL, e.g. wss://127.0.0.1:8443.
    url: String,
    /// Bearer token (or SIGCAST_TOKEN).
    #[arg(long, env = "SIGCAST_TOKEN", hide_env_values = true)]
    token: String,
    /// CA certificate PEM to trust (e.g. a self-signed server's cert.pem).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Topics to subscribe to, comma-separated: signal topics (signals.BTCUSDT.*; default
    /// all signals) and market-data topics (spot.BTCUSDT.1m, futures.ETHUSDT.book, ...).
    #[arg(long, value_delimiter = ',')]
    topics: Vec<String>,
    /// Start after this seq (resume a previous run).
    #[arg(long)]
    since: Option<u64>,
}

pub fn run(args: Listen) -> anyhow::Result<ExitCode> {
    if args.token.trim().is_empty() {
        anyhow::bail!(
            "--token is empty: pass a token (or set SIGCAST_TOKEN); `sigcast token issue` makes one"
        );
    }
    let mut options = crate::client::ClientOptions::new(&args.url, args.token.trim());
    options.ca = args.ca;
    options.topics = args.topics;
    options.since = args.since;
    super::runtime()?.block_on(listen(options))
}

/// `sigcast listen`: signals on stdout, one JSON line each; connection events on stderr.
async fn listen(options: crate::client::ClientOptions) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let url = options.url.clone();
    let mut signals = crate::client::Client::new(options)
        .on_connect(move || eprintln!("sigcast listen: connected to {url}"))
        .on_disconnect(|why| eprintln!("sigcast listen: disconnected ({why}); reconnecting"))
        .on_error(|e| eprintln!("sigcast listen: {e}"))
        .listen();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            item = signals.recv() => match item {
                Some(Ok(signal)) => {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{}", signal.text)?;
                    out.flush()?;
                }
                Some(Err(e @ crate::client::ClientError::Unauthorized(_))) => {
                    anyhow::bail!("{e}; pass a valid one with --token or SIGCAST_TOKEN (`sigcast token issue` makes one)")
                }
                Some(Err(e)) => anyhow::bail!("{e}"),
                None => return Ok(ExitCode::SUCCESS),
            },
        }
    }
}
