//! `sigcast bench`: the load generator's flags, and its report as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::settings::SettingsArgs;
use crate::config::Overrides;

/// Load-test a server: N TLS clients with tokens minted from the configured key, then
/// broadcasts at a set rate through a publisher token. Prints handshakes/s, server memory
/// per connection, delivery latency, each broadcast's completion, deliveries/s and server
/// CPU per delivery (memory and CPU with --server-pid).
#[derive(Debug, Args)]
pub struct Bench {
    #[command(flatten)]
    options: BenchArgs,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// `bench`'s flags: what the load generator runs (see [`crate::loadgen::Options`]).
#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Server URL, e.g. wss://127.0.0.1:8443; several, comma-separated, spread the clients
    /// over them (a cluster's edges).
    url: String,
    /// Where the publisher publishes (default: the first URL), e.g. a cluster's producer.
    #[arg(long, value_name = "URL")]
    publish_url: Option<String>,
    /// CA certificate PEM to trust (e.g. a self-signed server's cert.pem).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Clients to connect.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Broadcasts per second (0: connect and measure memory only).
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// How long broadcasts go out.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// The server's pid, to read its memory and CPU from /proc; several, comma-separated,
    /// are added up (a cluster's nodes).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Idle time after connecting, before memory is read.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
}

impl From<BenchArgs> for crate::loadgen::Options {
    fn from(a: BenchArgs) -> Self {
        Self {
            url: a.url,
            publish_url: a.publish_url,
            ca: a.ca,
            clients: a.clients,
            concurrency: a.concurrency,
            rate: a.rate,
            duration: a.duration,
            server_pids: a.server_pid,
            settle: a.settle,
        }
    }
}

pub fn run(args: Bench) -> anyhow::Result<ExitCode> {
    let config = args.settings.load(Overrides::default())?;
    let keys = crate::auth::KeyRing::from_settings(&config.auth)?;
    let options = crate::loadgen::Options::from(args.options);
    let report = super::runtime()?.block_on(crate::loadgen::run(&options, &keys))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", crate::loadgen::describe(&report));
    }
    Ok(ExitCode::SUCCESS)
}
