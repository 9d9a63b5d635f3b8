//! `sigcast serve` and `sigcast demo`: wiring market → strategy → hub → server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::auth::registry::{Registry, Revoked};
use crate::config::{Config, Overrides, Role, SourceKind};
use crate::hub::Hub;
use crate::hub::journal::{Journal, Retention};
use crate::market::binance::live;
use crate::market::replay;
use crate::server::{self, Shared};
use crate::strategy::{Instance, definition};
use crate::tls;
use tokio::sync::watch;

/// Every problem of `config`'s keys, certificate, strategies and recordings, one line each
/// (for `config check`; `serve` stops at the first, in [`check`]).
pub fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = KeyRing::from_settings(&config.auth) {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = tls::server_config(config.tls.cert.as_deref(), config.tls.key.as_deref()) {
        problems.push(format!("{e:#}"));
    }
    if let Err(all) = definition::load_checked(&config.signals.dir, offered_symbols(config)) {
        problems.extend(all.iter().map(|e| format!("signals.dir: {e}")));
    }
    if config.source.kind == SourceKind::Replay {
        if let Err(e) = replay::check(&config.source.replay) {
            problems.push(format!("source.replay: {e}"));
        }
    }
    problems
}

/// The strategies and recordings load: checked before anything is opened or bound.
fn preflight(config: &Config) -> anyhow::Result<()> {
    load_strategies(config)?;
    if config.source.kind == SourceKind::Replay {
        replay::check(&config.source.replay)?;
    }
    Ok(())
}

/// The strategy instances of `signals.dir`. With the synthetic source their symbols must be
/// among the ones it walks; a replay offers whatever its recordings hold.
pub fn load_strategies(config: &Config) -> anyhow::Result<Vec<Instance>> {
    Ok(definition::load(
        &config.signals.dir,
        offered_symbols(config),
    )?)
}

/// The symbols strategies may trade: the synthetic market's own; any for the others.
fn offered_symbols(config: &Config) -> Option<&[String]> {
    match config.source.kind {
        SourceKind::Synthetic => Some(config.source.symbols.as_slice()),
        SourceKind::Replay | SourceKind::Binance => None,
    }
}

/// The parts every session shares, from the configuration.
pub fn build_shared(config: &Config) -> anyhow::Result<Arc<Shared>> {
    // Credentials first: a bad key or certificate is the one line a failed start prints.
    KeyRing::from_settings(&config.auth)?;
    tls::server_config(config.tls.cert.as_deref(), config.tls.key.as_deref())?;
    let seed_symbols = seed_symbols(config);
    let retention = Retention {
        max_age: config.journal.retention_age,
        max_count: config.journal.retention_count,
    };
    let path = config.data.journal_path();
    let (journal, last_seq) = Journal::open(&path, retention).with_context(|| {
        format!(
            "data.dir: cannot open the signal journal {}",
            path.display()
        )
    })?;
    tracing::info!(journal = %path.display(), last_seq, "signal journal open");
    let hub = Arc::new(Hub::with_journal(
        seed_symbols,
        config.server.queue_capacity,
        journal,
        last_seq,
    ));
    assemble(config, hub, watch_revocations(path))
}

/// The symbols `test` replies pick from until prices of others arrive.
pub(super) fn seed_symbols(config: &Config) -> Vec<String> {
    match config.source.kind {
        SourceKind::Synthetic => config.source.symbols.clone(),
        SourceKind::Replay | SourceKind::Binance => Vec::new(),
    }
}

/// The parts every session shares, around a hub and a list of revocations.
pub(super) fn assemble(
    config: &Config,
    hub: Arc<Hub>,
    revoked: watch::Receiver<Arc<Revoked>>,
) -> anyhow::Result<Arc<Shared>> {
    let keys = KeyRing::from_settings(&config.auth)?;
    let (tls, certificates) =
        tls::reloadable_server_config(config.tls.cert.as_deref(), config.tls.key.as_deref())?;
    Ok(Arc::new(Shared {
        tls,
        keys: crate::auth::Keys::new(keys),
        certificates,
        hub,
        settings: config.server.clone(),
        revoked,
        stats: Default::default(),
        max_market_topics: config.market_data.max_topics,
    }))
}

/// On SIGHUP, reads the TLS certificate and key files and the JWT key ring (`auth.*`, from
/// the configuration read again) for renewal and key rotation; whatever fails to load is
/// logged and the running one stays. The strategy set reloads on the same signal
/// (`reload.rs`); other settings take a restart.
fn reload_credentials_on_sighup(reread: Reread, shared: Arc<Shared>, stop: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!(
                "cannot listen for SIGHUP; certificates and keys reload only on restart"
            );
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hangups.recv() => if got.is_none() { return },
            }
            let (reread, shared) = (reread.clone(), shared.clone());
            let reloaded =
                tokio::task::spawn_blocking(move || reload_credentials(&*reread, &shared)).await;
            if let Err(e) = reloaded {
                tracing::error!(error = %e, "credential reload failed");
            }
        }
    });
}

fn reload_credentials(
    reread: &(dyn Fn() -> anyhow::Result<Config> + Send + Sync),
    shared: &Shared,
) {
    match shared.certificates.reload() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "TLS certificate not reloaded; serving the previous one")
        }
    }
    let ring = reread().and_then(|config| Ok(KeyRing::from_settings(&config.auth)?));
    match ring {
        Ok(ring) => {
            shared.keys.replace(ring);
            tracing::info!("JWT keys reloaded");
        }
        Err(e) => tracing::error!(error = %e, "JWT keys not reloaded; the previous ones stay"),
    }
}

/// How often the token registry is read for revocations.
const REVOCATION_POLL: Duration = Duration::from_secs(1);

/// Revocations from the registry in the journal's database, re-read every second (a change
/// reaches live sessions within about a second).
fn watch_revocations(path: std::path::PathBuf) -> watch::Receiver<Arc<Revoked>> {
    let (tx, rx) = watch::channel(Arc::new(Revoked::default()));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return rx;
    };
    runtime.spawn(async move {
        let mut warned = false;
        // Opened once and kept between polls (it moves to the blocking pool and back).
        let mut registry: Option<Registry> = None;
        loop {
            let p = path.clone();
            let held = registry.take();
            let read = tokio::task::spawn_blocking(move || {
                let r = match held {
                    Some(r) => r,
                    None => Registry::open(&p)?,
                };
                let revoked = r.revoked()?;
                Ok::<_, crate::auth::registry::RegistryError>((r, revoked))
            })
            .await;
            match read {
                Ok(Ok((kept, revoked))) => {
                    registry = Some(kept);
                    warned = false;
                    revoked.offer(&tx);
                }
                Ok(Err(e)) if !warned => {
                    warned = true;
                    tracing::warn!(error = %e, "cannot read revocations");
                }
                _ => {}
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(REVOCATION_POLL).await;
        }
    });
    rx
}

/// Pending connections the kernel queues for the accept loop (capped by `net.core.somaxconn`).
/// The usual 128 overflows under a burst of reconnecting clients, and every dropped SYN costs
/// its client a one-second retransmit.
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds the client listener with a deep accept backlog, naming the key when it fails.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    listen().with_context(|| {
        format!("server.listen: cannot listen on {addr} (another process has it? pass --listen HOST:PORT or stop the other one)")
    })
}

/// `sigcast record`: live upstream messages into a replay file until Ctrl-C or `duration`.
pub async fn record(
    config: &Config,
    streams: &[String],
    market: &str,
    out: std::path::PathBuf,
    duration: Option<Duration>,
) -> anyhow::Result<live::recorder::Summary> {
    let market = match market {
        "spot" => crate::market::Market::Spot,
        "futures" | "usdm" => crate::market::Market::Futures,
        other => anyhow::bail!("--market: expected spot or futures, got {other:?}"),
    };
    let mut subscriptions = Vec::new();
    for s in streams.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !s.contains('@') {
            anyhow::bail!("--streams: {s:?} is not a stream name like btcusdt@aggTrade");
        }
        subscriptions.push((market, s.to_string()));
    }
    if subscriptions.is_empty() {
        anyhow::bail!("--streams: name at least one stream");
    }
    let stop = CancellationToken::new();
    cancel_on_signal(stop.clone());
    live::recorder::record(config.binance.clone(), &subscriptions, out, duration, stop).await
}

/// Cancels `token` on SIGINT or SIGTERM.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("signal received: stopping");
        token.cancel();
    });
}

/// Runs the server until SIGINT/SIGTERM.
/// Reads the configuration again, as it was read at startup (file, env, flags).
pub type Reread = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

pub async fn serve(config: Config, reread: Reread) -> anyhow::Result<()> {
    preflight(&config)?;
    // Ports first: a port in use is then the one line a failed start prints.
    let listener = bind(config.server.listen).await?;
    let admin = match config.admin.enabled {
        true => Some(bind_admin(config.admin.listen).await?),
        false => None,
    };
    let shutdown = CancellationToken::new();
    let (shared, node) = match config.cluster.role {
        Role::Single => (build_shared(&config)?, None),
        Role::Producer | Role::Edge => {
            let (shared, node) = super::cluster::node(&config, &shutdown).await?;
            (shared, Some(node))
        }
    };
    run_until_signal(&config, reread, shared, listener, admin, node, shutdown).await
}

/// Binds the admin listener, naming the key when it fails.
async fn bind_admin(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "admin.listen: cannot listen on {addr} (set another address, or admin.enabled = false)"
        )
    })
}

async fn run_until_signal(
    config: &Config,
    reread: Reread,
    shared: Arc<Shared>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    node: Option<super::cluster::Node>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let work = match node {
        None => super::cluster::Work::from(super::pipeline::start(
            config,
            load_strategies(config)?,
            shared.hub.clone(),
            shutdown.clone(),
        )?),
        Some(node) => super::cluster::work(config, node, shared.hub.clone(), &shutdown).await?,
    };
    if let Some(admin) = admin {
        tracing::info!(admin = %admin.local_addr()?, "admin listening: /metrics, /healthz, /readyz");
        let observed = crate::admin::Observed {
            server: shared.clone(),
            source: work.source.clone(),
            warmup: work.warmup.clone(),
            cluster: work.cluster.clone(),
        };
        tokio::spawn(crate::admin::run(admin, observed, shutdown.clone()));
    }
    if let Some(reload) = &work.reload {
        super::reload::spawn(
            config.clone(),
            load_strategies,
            reload.clone(),
            shutdown.clone(),
        );
    }
    cancel_on_signal(shutdown.clone());
    reload_credentials_on_sighup(reread, shared.clone(), shutdown.clone());
    tracing::info!(
        listen = %listener.local_addr()?,
        source = ?config.source.kind,
        role = config.cluster.role.as_str(),
        strategies = work.instances,
        "sigcast listening"
    );
    server::run(listener, shared.clone(), shutdown.clone()).await;
    shutdown.cancel();
    // The pipeline lets plugins take their last events and writes the trade positions.
    let _ = tokio::time::timeout(Duration::from_secs(5), work.task).await;
    // Every signal sent is on disk before exit, so numbering and resumes carry on.
    if let Some(journal) = shared.hub.journal() {
        let last = shared.hub.last_seq();
        if tokio::time::timeout(Duration::from_secs(5), journal.wait_flushed(last))
            .await
            .is_err()
        {
            tracing::error!(last_seq = last, "signal journal not flushed at exit");
        }
    }
    Ok(())
}

/// `sigcast demo`: init `dir` when needed, serve on 127.0.0.1:`port`, print a token and wscat line.
pub async fn demo(dir: &Path, port: u16, signals: Option<&Path>) -> anyhow::Result<()> {
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
    let shared = build_shared(&config)?;
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(_) => bind("127.0.0.1:0".parse()?).await?,
    };
    let port = listener.local_addr()?.port();
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
    println!("Files are in {}. Ctrl-C to stop.", dir.display());
    let same = config.clone();
    let reread: Reread = Arc::new(move || Ok(same.clone()));
    let shutdown = CancellationToken::new();
    run_until_signal(&config, reread, shared, listener, admin, None, shutdown).await
}
