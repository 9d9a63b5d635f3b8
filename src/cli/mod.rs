//! The `sigcast` command line: `init`, `serve`, `demo`, `backtest`, `record`, `listen`,
//! `bench`, `token`, `config` and `healthcheck`.
//!
//! Only this room wires the others together (see `serve.rs`).
//!
//! Over 500 lines (about 670): the argument definitions of every subcommand live here until
//! the house issue gives each command its own file and moves assembly into a library room.

mod backtest;
mod cluster;
mod healthcheck;
mod init;
mod pipeline;
mod reload;
mod serve;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, KEYS, Overrides};

pub use pipeline::{Pipeline, pump, start as start_pipeline};
pub use serve::{bind, build_shared, load_strategies};

/// sigcast: authenticated trading-signal broadcast over TLS WebSocket.
#[derive(Debug, Parser)]
#[command(name = "sigcast", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented sigcast.toml, a development certificate and a JWT secret into DIR.
    Init {
        /// Directory to write into (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Run the signal server.
    Serve(ServeArgs),
    /// Run a complete server offline on the synthetic market and print a ready wscat line.
    Demo {
        /// Where the demo keeps its certificate, secret and config.
        #[arg(long, default_value = ".sigcast-demo")]
        dir: PathBuf,
        /// TLS port on 127.0.0.1; when taken, any free port is used.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Strategy definitions to run instead of the demo's own (e.g. `signals`).
        #[arg(long, value_name = "DIR")]
        signals: Option<PathBuf>,
    },
    /// Run the strategies over recordings as fast as possible: every signal, a summary per
    /// strategy and an HTML report with a chart.
    Backtest {
        /// Recordings (merged by receive time), as `serve --source replay:` takes them.
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        data: Vec<PathBuf>,
        /// Strategy definitions (default: signals.dir from the configuration).
        #[arg(long, value_name = "DIR")]
        signals: Option<PathBuf>,
        /// Window start, RFC 3339 or Unix seconds; earlier data only warms strategies up.
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Window end, RFC 3339 or Unix seconds.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Where signals.jsonl, summary.json and report.html go.
        #[arg(long, default_value = "backtest-report", value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Save live Binance messages, with receive times, in the JSON-lines replay format.
    Record {
        /// Streams, comma-separated, e.g. btcusdt@aggTrade,btcusdt@depth@100ms.
        #[arg(long, value_delimiter = ',', required = true)]
        streams: Vec<String>,
        /// `spot` or `futures` (USD-M).
        #[arg(long, default_value = "spot")]
        market: String,
        /// File to write (replay it with --source replay:FILE).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this long (e.g. 10m); otherwise at Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Load-test a server: N TLS clients with tokens minted from the configured key, then
    /// broadcasts at a set rate through a publisher token. Prints handshakes/s, server memory
    /// per connection, delivery latency, each broadcast's completion, deliveries/s and server
    /// CPU per delivery (memory and CPU with --server-pid).
    Bench {
        #[command(flatten)]
        options: BenchArgs,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print a server's signals as JSON lines, reconnecting with backoff and resuming from
    /// the last seq printed, so the output has no gap and no duplicate.
    Listen {
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
    },
    /// Ask a running server's admin listener for /healthz (or /readyz with --ready); exit 0
    /// only when it answers 200. For container HEALTHCHECKs and scripts.
    Healthcheck {
        /// Ask /readyz: upstream connected and subscribed, strategies warm.
        #[arg(long)]
        ready: bool,
        /// Admin listener address (default: admin.listen from the configuration).
        #[arg(long, value_name = "HOST:PORT")]
        admin: Option<std::net::SocketAddr>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Issue and check tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new token for SUB on stdout, signed with the configured primary key.
    Issue {
        /// Subject: who the token is for (shown in server logs).
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. 30d, 12h, 15m.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Token id; random when omitted.
        #[arg(long)]
        jti: Option<String>,
        /// Scope: only signals for these symbols (comma-separated); all when omitted.
        #[arg(long, value_delimiter = ',', value_name = "SYMBOLS")]
        symbols: Option<Vec<String>>,
        /// Scope: only signals from these strategies (comma-separated); all when omitted.
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        strategies: Option<Vec<String>>,
        /// A publisher token: it may publish signals (`{"type":"publish",...}`).
        #[arg(long)]
        publisher: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List the tokens issued here: active, expired and revoked.
    List {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Revoke a token by id, or every token of a subject; running servers refuse it and
    /// close its sessions (1008 "token revoked") within 2 seconds.
    Revoke {
        /// The token id (`jti`) to revoke.
        jti: Option<String>,
        /// Revoke every token issued to this subject until now.
        #[arg(long, value_name = "NAME")]
        sub: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print a token's claims as JSON and exit 0 if the server would accept it.
    Verify {
        token: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration (FILE, or --config, or ./sigcast.toml) with its env and flags,
    /// keys, certificate, signals/ and recordings; print every problem, each with its key,
    /// and exit 1 if there is any.
    Check {
        /// The config file to check (instead of --config).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print the effective configuration (file, then env, then flags) as TOML.
    Show {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List every setting with its environment variable and default.
    Keys,
}

/// Where settings come from: a file, `SIGCAST_*` variables and these flags (which win).
#[derive(Debug, Args, Clone, Default)]
pub struct SettingsArgs {
    /// Config file; defaults to ./sigcast.toml when it exists.
    #[arg(long, env = "SIGCAST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// HS256 secret file (auth.jwt_secret_file).
    #[arg(long, value_name = "PATH")]
    jwt_secret_file: Option<String>,
    /// Ed25519 public key PEM for EdDSA tokens (auth.jwt_public_key).
    #[arg(long, value_name = "PATH")]
    jwt_public_key: Option<String>,
    /// Set any key, e.g. --set server.max_connections=500 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
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

/// `serve`'s flags: the settings plus the listener, TLS and source shortcuts.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Listen address (server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Certificate chain PEM (tls.cert).
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<String>,
    /// Private key PEM (tls.key).
    #[arg(long, value_name = "PATH")]
    tls_key: Option<String>,
    /// Market source: `synthetic`, `binance` (live), or `replay:PATH[,PATH...]` to play
    /// recordings (source.kind, source.replay).
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// Cluster role: `single` (the default, no NATS), `producer` or `edge` (cluster.role).
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// NATS server URLs for cluster mode, comma-separated (cluster.nats).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

impl SettingsArgs {
    fn overrides(&self) -> anyhow::Result<Overrides> {
        let mut o = Overrides::default();
        for text in &self.set {
            o.parse_assignment(text)?;
        }
        if let Some(v) = &self.jwt_secret_file {
            o.set("auth.jwt_secret_file", v);
        }
        if let Some(v) = &self.jwt_public_key {
            o.set("auth.jwt_public_key", v);
        }
        Ok(o)
    }

    fn load(&self, extra: Overrides) -> anyhow::Result<Config> {
        let mut o = self.overrides()?;
        o.values.extend(extra.values);
        Ok(Config::load(self.file(), &config::process_env(), &o)?)
    }

    /// The config file: --config, else ./sigcast.toml when it exists.
    fn file(&self) -> Option<&Path> {
        let default_file = Path::new("sigcast.toml");
        match &self.config {
            Some(f) => Some(f.as_path()),
            None if default_file.exists() => Some(default_file),
            None => None,
        }
    }

    /// Every problem of the configuration (`file` instead of the usual one when given) and
    /// of what it points at, one line each.
    fn problems(&self, file: Option<&Path>) -> Vec<String> {
        let mut o = Overrides::default();
        let mut problems = Vec::new();
        for text in &self.set {
            if let Err(e) = o.parse_assignment(text) {
                problems.push(e.to_string());
            }
        }
        if let Some(v) = &self.jwt_secret_file {
            o.set("auth.jwt_secret_file", v);
        }
        if let Some(v) = &self.jwt_public_key {
            o.set("auth.jwt_public_key", v);
        }
        let file = file.or(self.file());
        let (config, found) = Config::load_checked(file, &config::process_env(), &o);
        problems.extend(found.iter().map(ToString::to_string));
        if let Some(config) = config {
            problems.extend(serve::problems(&config));
        }
        problems
    }
}

impl ServeArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut o = Overrides::default();
        if let Some(v) = &self.listen {
            o.set("server.listen", v);
        }
        if let Some(v) = &self.tls_cert {
            o.set("tls.cert", v);
        }
        if let Some(v) = &self.tls_key {
            o.set("tls.key", v);
        }
        if let Some(v) = &self.role {
            o.set("cluster.role", v);
        }
        if let Some(v) = &self.nats {
            o.set("cluster.nats", v);
        }
        match self.source.as_deref() {
            None => {}
            Some("synthetic") => o.set("source.kind", "synthetic"),
            Some("binance") => o.set("source.kind", "binance"),
            Some(spec) => match spec.strip_prefix("replay:") {
                Some(paths) if !paths.trim().is_empty() => {
                    o.set("source.kind", "replay");
                    o.set("source.replay", paths);
                }
                _ => anyhow::bail!(
                    "--source: expected `synthetic`, `binance` or `replay:PATH[,PATH...]`, got {spec:?}"
                ),
            },
        }
        self.settings.load(o)
    }
}

/// Parses the command line and runs it; errors are one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigcast: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { dir, force } => {
            init::write(&dir, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let config = args.load()?;
            let _logging = crate::logging::init(&config);
            // SIGHUP reads the configuration again (file, env, flags) for the keys it names.
            let reread: serve::Reread = Arc::new(move || args.load());
            runtime_with(config.server.worker_threads)?.block_on(serve::serve(config, reread))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, port, signals } => {
            runtime()?.block_on(serve::demo(&dir, port, signals.as_deref()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest {
            data,
            signals,
            from,
            to,
            out,
            settings,
        } => {
            let config = settings.load(Overrides::default())?;
            let _logging = crate::logging::init(&config);
            let window = backtest::Window {
                from: from
                    .map(|t| backtest::parse_time("--from", &t))
                    .transpose()?,
                to: to.map(|t| backtest::parse_time("--to", &t)).transpose()?,
            };
            let options = backtest::Options {
                data,
                signals: signals.unwrap_or(config.signals.dir),
                window,
                out,
            };
            let summaries = backtest::run(&options)?;
            print!("{}", backtest::table(&summaries));
            println!(
                "signals: {0}/signals.jsonl  summary: {0}/summary.json  report: {0}/report.html",
                options.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Record {
            streams,
            market,
            out,
            duration,
            settings,
        } => {
            let config = settings.load(Overrides::default())?;
            let _logging = crate::logging::init(&config);
            let summary = runtime()?.block_on(serve::record(
                &config,
                &streams,
                &market,
                out.clone(),
                duration,
            ))?;
            eprintln!(
                "sigcast: recorded {} messages ({:.1} MiB) to {}",
                summary.messages,
                summary.bytes as f64 / (1024.0 * 1024.0),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck {
            ready,
            admin,
            settings,
        } => {
            let addr = match admin {
                Some(addr) => addr,
                None => settings.load(Overrides::default())?.admin.listen,
            };
            let path = if ready { "/readyz" } else { "/healthz" };
            let (status, body) =
                runtime()?.block_on(healthcheck::ask(healthcheck::target(addr), path))?;
            print!("{body}");
            Ok(match status {
                200 => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            })
        }
        Command::Token(TokenCommand::Issue {
            sub,
            ttl,
            jti,
            symbols,
            strategies,
            publisher,
            settings,
        }) => {
            let config = settings.load(Overrides::default())?;
            let scope = crate::auth::Scope {
                symbols,
                strategies,
                publisher,
            };
            println!("{}", token::issue(&config, &sub, ttl, jti, &scope)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Listen {
            url,
            token,
            ca,
            topics,
            since,
        } => {
            if token.trim().is_empty() {
                anyhow::bail!(
                    "--token is empty: pass a token (or set SIGCAST_TOKEN); `sigcast token issue` makes one"
                );
            }
            let mut options = crate::client::ClientOptions::new(&url, token.trim());
            options.ca = ca;
            options.topics = topics;
            options.since = since;
            runtime()?.block_on(listen(options))
        }
        Command::Bench {
            options,
            json,
            settings,
        } => {
            let config = settings.load(Overrides::default())?;
            let keys = crate::auth::KeyRing::from_settings(&config.auth)?;
            let options = crate::loadgen::Options::from(options);
            let report = runtime()?.block_on(crate::loadgen::run(&options, &keys))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", crate::loadgen::describe(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::List { settings }) => {
            token::list(&settings.load(Overrides::default())?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Revoke { jti, sub, settings }) => {
            let config = settings.load(Overrides::default())?;
            token::revoke(&config, jti.as_deref(), sub.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Verify { token, settings }) => {
            let config = settings.load(Overrides::default())?;
            token::verify(&config, &token)
        }
        Command::Config(ConfigCommand::Check { file, settings }) => {
            let problems = settings.problems(file.as_deref());
            if problems.is_empty() {
                println!("configuration OK");
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &problems {
                eprintln!("sigcast: config: {problem}");
            }
            eprintln!("sigcast: {} problem(s) found", problems.len());
            Ok(ExitCode::FAILURE)
        }
        Command::Config(ConfigCommand::Show { settings }) => {
            let config = settings.load(Overrides::default())?;
            emit(&config.to_toml())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Keys) => {
            print_keys()?;
            Ok(ExitCode::SUCCESS)
        }
    }
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(0)
}

/// The runtime with `threads` workers (0: tokio's default, one per CPU core).
fn runtime_with(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Prints the settings reference as a Markdown table (the README's table comes from here).
/// Writes `text` to stdout; a reader that went away (`| head`) ends the output quietly.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        done => Ok(done?),
    }
}

fn print_keys() -> anyhow::Result<()> {
    let defaults = toml::Value::try_from(Config::default()).unwrap_or(toml::Value::Boolean(false));
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
    emit(&out)
}
