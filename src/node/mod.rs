//! One sigcast node, assembled from its configuration and run until a stop signal.
//!
//! This room wires the others together, so `cli` only parses and calls it: the shared parts
//! every session reads ([`build`]), the [`strategies`] a node runs, the market → strategy →
//! hub [`pipeline`], the cluster [`roles`] (`single`, `producer`, `edge`), hot [`reload`] of
//! strategies, [`credentials`] reloaded on SIGHUP, the [`revocations`] watch and the
//! [`listeners`].

pub mod credentials;
pub mod listeners;
pub mod pipeline;
pub mod reload;
pub mod revocations;
pub mod roles;
pub mod strategies;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::auth::registry::Revoked;
use crate::config::{Config, Role, SourceKind};
use crate::hub::Hub;
use crate::hub::journal::{Journal, Retention};
use crate::hub::proof::KeyDir;
use crate::market::replay;
use crate::server::{self, Shared};
use crate::strategy::{Instance, definition};
use crate::tls;

pub use credentials::Reread;
pub use listeners::{Listeners, bind};
pub use pipeline::{Pipeline, pump, start as start_pipeline};
pub use strategies::load as load_strategies;
use strategies::{offered_symbols, seed_symbols};

/// Every problem of `config`'s keys, certificate, strategies and recordings, one line each
/// (for `config check`; a start stops at the first).
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

/// The JWT key ring and the TLS configuration, loaded once: checked before anything else is
/// opened, then handed to the sessions.
pub struct Credentials {
    keys: KeyRing,
    tls: (Arc<rustls::ServerConfig>, Arc<tls::CertStore>),
}

impl Credentials {
    /// Reads `auth.*` and `tls.*`; a bad key or certificate names its key.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let keys = KeyRing::from_settings(&config.auth)?;
        let tls =
            tls::reloadable_server_config(config.tls.cert.as_deref(), config.tls.key.as_deref())?;
        Ok(Credentials { keys, tls })
    }
}

/// The parts every session of a single node shares: credentials, and a hub on the data
/// directory's journal whose revocations come from its token registry.
pub fn build(config: &Config) -> anyhow::Result<Arc<Shared>> {
    // Credentials first: a bad key or certificate is the one line a failed start prints.
    let credentials = Credentials::load(config)?;
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
    sign(&journal, &config.data.dir)?;
    let hub = Arc::new(Hub::with_journal(
        seed_symbols(config),
        config.server.queue_capacity,
        journal,
        last_seq,
    ));
    Ok(assemble(config, credentials, hub, revocations::watch(path)))
}

/// Has the journal seal what it writes with the data directory's journal key, made on first
/// start.
pub fn sign(journal: &Journal, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let keys = KeyDir::of(data_dir);
    let signer = keys.load_or_create()?;
    journal.sign_with(signer, keys.public_keys()?);
    Ok(())
}

/// The parts every session shares, around a hub and a list of revocations.
fn assemble(
    config: &Config,
    credentials: Credentials,
    hub: Arc<Hub>,
    revoked: watch::Receiver<Arc<Revoked>>,
) -> Arc<Shared> {
    let (tls, certificates) = credentials.tls;
    Arc::new(Shared {
        tls,
        keys: crate::auth::Keys::new(credentials.keys),
        certificates,
        hub,
        settings: config.server.clone(),
        revoked,
        stats: Default::default(),
        max_market_topics: config.market_data.max_topics,
    })
}

/// `sigcast serve`: checks the strategies, binds, assembles the node for its role and runs
/// it until SIGINT or SIGTERM.
pub async fn serve(config: Config, reread: Reread) -> anyhow::Result<()> {
    // Strategies and recordings before ports, ports before the journal: the first problem is
    // the one line a failed start prints.
    let strategies = load_strategies(&config)?;
    if config.source.kind == SourceKind::Replay {
        replay::check(&config.source.replay)?;
    }
    let listeners = Listeners::bind(&config).await?;
    let shutdown = CancellationToken::new();
    let (shared, link) = match config.cluster.role {
        Role::Single => (build(&config)?, None),
        Role::Producer | Role::Edge => {
            let credentials = Credentials::load(&config)?;
            let (hub, revoked, link) = roles::join(&config, &strategies, &shutdown).await?;
            (assemble(&config, credentials, hub, revoked), Some(link))
        }
    };
    run(
        &config, reread, shared, listeners, strategies, link, shutdown,
    )
    .await
}

/// Runs an assembled node: its pipeline (or cluster role), admin listener, reloads and
/// sessions, until SIGINT, SIGTERM or `shutdown`; then stores what was sent.
pub async fn run(
    config: &Config,
    reread: Reread,
    shared: Arc<Shared>,
    listeners: Listeners,
    strategies: Vec<Instance>,
    link: Option<roles::Link>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if link.is_none() {
        // The record's rules first, then the journal's signals through them, then live.
        let rules = crate::ledger::rules(&strategies, &config.ledger);
        shared.hub.set_track_rules(rules);
        match shared.hub.rebuild_track().await {
            Ok(0) => {}
            Ok(signals) => tracing::info!(signals, "track record rebuilt from the journal"),
            Err(e) => {
                tracing::warn!(error = %e, "track record not rebuilt from the journal; it starts afresh")
            }
        }
    }
    let key = link.as_ref().and_then(|l| l.key.clone());
    let work = match link {
        None => roles::Work::from(pipeline::start(
            config,
            strategies,
            shared.hub.clone(),
            shutdown.clone(),
        )?),
        Some(link) => roles::work(config, link, strategies, shared.hub.clone(), &shutdown).await?,
    };
    if let Some(admin) = listeners.admin {
        tracing::info!(admin = %admin.local_addr()?, "admin listening: /metrics, /healthz, /readyz");
        let observed = crate::admin::Observed {
            server: shared.clone(),
            source: work.source.clone(),
            warmup: work.warmup.clone(),
            cluster: work.cluster.clone(),
        };
        tokio::spawn(crate::admin::run(admin, observed, shutdown.clone()));
    }
    if let Some(to) = &work.reload {
        reload::spawn(
            config.clone(),
            load_strategies,
            to.clone(),
            shutdown.clone(),
        );
    }
    cancel_on_signal(shutdown.clone());
    credentials::reload_on_sighup(reread, shared.clone(), key, shutdown.clone());
    let listener: TcpListener = listeners.clients;
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

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
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
