//! The cluster roles of a node: a hub on the signal stream, and the producers' leader lease
//! around the pipeline (see [`crate::cluster`]).

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pipeline::{self, Pipeline};
use super::strategies::{load as load_strategies, seed_symbols};
use crate::auth::registry::Revoked;
use crate::cluster::keys::{self, JournalKey};
use crate::cluster::{
    Cluster, Status, forward, history::StreamHistory, inlet, lease::Lease, marks, outbox,
    positions, tokens,
};
use crate::config::{Config, Role};
use crate::hub::{Hub, Outgoing};
use crate::market::SourceStats;
use crate::strategy::{Instance, Warmup};

/// What a node runs besides its sessions, as `serve` reports on and stops it.
pub struct Work {
    /// The market source's counters and the strategies' warm-up (empty on an edge).
    pub source: Arc<SourceStats>,
    pub warmup: Arc<Warmup>,
    /// Where strategy reloads go (`None` on an edge: it runs no strategies).
    pub reload: Option<mpsc::Sender<Vec<Instance>>>,
    /// Strategy instances at the start.
    pub instances: usize,
    /// Ends once the node's pipeline (or lease) has stopped.
    pub task: JoinHandle<()>,
    /// The node's link to the cluster, in cluster mode.
    pub cluster: Option<Arc<Status>>,
}

impl From<Pipeline> for Work {
    fn from(p: Pipeline) -> Self {
        Work {
            source: p.source,
            warmup: p.warmup,
            reload: Some(p.reload),
            instances: p.instances,
            task: p.task,
            cluster: None,
        }
    }
}

/// A node's link to the cluster, as `serve` holds it.
pub struct Link {
    cluster: Cluster,
    /// The outbox task: done once the signals queued at the stop are stored.
    outbox: JoinHandle<()>,
    /// Its queue, where the leader puts the publishes other nodes forward to it.
    queue: mpsc::Sender<Outgoing>,
    /// A producer's journal key (reloaded on SIGHUP, after `sigcast journal rotate`).
    pub key: Option<Arc<JournalKey>>,
}

/// Connects to the cluster: a hub whose signals go to the stream and come back from it,
/// resumes read from the stream, and revocations from the bucket. The track record trades
/// by `strategies`' rules, as a single node's does.
pub async fn join(
    config: &Config,
    strategies: &[Instance],
    stop: &CancellationToken,
) -> anyhow::Result<(Arc<Hub>, watch::Receiver<Arc<Revoked>>, Link)> {
    let cluster = Cluster::connect(
        &config.cluster,
        config.journal.retention_age,
        config.journal.retention_count,
    )
    .await?;
    let last = cluster
        .stream()
        .await
        .map_err(|e| anyhow::anyhow!("cluster.stream: {e}"))?
        .cached_info()
        .state
        .last_sequence;
    tracing::info!(
        nats = %config.cluster.nats,
        stream = %config.cluster.stream,
        last_seq = last,
        role = config.cluster.role.as_str(),
        "joined the cluster"
    );
    // A producer signs what it appends while it leads, with the key in its data directory.
    let key = match config.cluster.role {
        Role::Producer => Some(JournalKey::open(&cluster, &config.data.dir).await?),
        _ => None,
    };
    let (outbox, outbox_task) = outbox::spawn(cluster.clone(), key.clone(), stop.clone());
    let public = keys::watch(keys::bucket(&cluster).await?, stop.clone());
    let hub = Arc::new(Hub::clustered(
        seed_symbols(config),
        config.server.queue_capacity,
        outbox.clone(),
        Arc::new(StreamHistory::new(cluster.clone())),
        public,
        last,
    ));
    hub.set_track_rules(crate::ledger::rules(strategies, &config.ledger));
    // The stream's signals through the track record before anything live: new signals, the
    // leader's prices, a term's pipeline.
    match hub.rebuild_track().await {
        Ok(0) => {}
        Ok(signals) => tracing::info!(signals, "track record rebuilt from the stream"),
        Err(e) => {
            tracing::warn!(error = %e, "track record not rebuilt from the stream; it starts afresh")
        }
    }
    tokio::spawn(inlet::run(cluster.clone(), hub.clone(), stop.clone()));
    tokio::spawn(marks::run(cluster.clone(), hub.clone(), stop.clone()));
    let bucket = tokens::bucket(&cluster).await?;
    let revoked = tokens::watch(bucket, stop.clone());
    let link = Link {
        cluster,
        outbox: outbox_task,
        queue: outbox,
        key,
    };
    Ok((hub, revoked, link))
}

/// What a cluster node runs: an edge nothing (the inlet feeds its hub); a producer the
/// pipeline, whenever it holds the leader lease.
/// `strategies` is the set checked at the start; each term as leader loads it afresh.
pub async fn work(
    config: &Config,
    link: Link,
    strategies: Vec<Instance>,
    hub: Arc<Hub>,
    stop: &CancellationToken,
) -> anyhow::Result<Work> {
    let mut work = run(
        config,
        link.cluster,
        link.queue,
        strategies.len(),
        hub,
        stop,
    )
    .await?;
    // Done once the strategies (or the lease) have stopped and then the outbox has stored
    // what they sent last: a standby that takes over starts after those signals.
    let (task, outbox) = (work.task, link.outbox);
    work.task = tokio::spawn(async move {
        let _ = task.await;
        let _ = outbox.await;
    });
    Ok(work)
}

async fn run(
    config: &Config,
    cluster: Cluster,
    queue: mpsc::Sender<Outgoing>,
    instances: usize,
    hub: Arc<Hub>,
    stop: &CancellationToken,
) -> anyhow::Result<Work> {
    let source = Arc::new(SourceStats::default());
    let warmup = Arc::new(Warmup::default());
    let status = cluster.status.clone();
    if config.cluster.role != Role::Producer {
        let stop = stop.clone();
        return Ok(Work {
            source,
            warmup,
            reload: None,
            instances: 0,
            task: tokio::spawn(async move { stop.cancelled().await }),
            cluster: Some(status),
        });
    }
    let lease = Lease::open(&cluster).await?;
    let bucket = positions::bucket(&cluster).await?;
    // Reloads reach whichever pipeline runs now (none while standing by: the next term
    // loads the definitions afresh).
    let (reload, mut reloads) = mpsc::channel::<Vec<Instance>>(4);
    let current: Arc<Mutex<Option<mpsc::Sender<Vec<Instance>>>>> = Arc::default();
    let forward = current.clone();
    tokio::spawn(async move {
        while let Some(set) = reloads.recv().await {
            let target = forward.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(target) = target {
                let _ = target.send(set).await;
            }
        }
    });
    let (config, term_source, term_warmup) = (config.clone(), source.clone(), warmup.clone());
    let task = tokio::spawn(lease.run(stop.clone(), move |term: CancellationToken| {
        let (config, hub, current) = (config.clone(), hub.clone(), current.clone());
        let (source, warmup, bucket) = (term_source.clone(), term_warmup.clone(), bucket.clone());
        // The stream's one writer takes the other nodes' publishes while it leads.
        tokio::spawn(forward::serve(cluster.clone(), queue.clone(), term.clone()));
        async move {
            // Where the last leader's strategies stood, so this term continues after it.
            let saved = positions::load(&bucket).await;
            let started = load_strategies(&config).and_then(|instances| {
                let cursor = positions::cursor(bucket)?;
                pipeline::start_reporting(
                    &config,
                    instances,
                    hub,
                    term.clone(),
                    source,
                    warmup,
                    Some((cursor, saved)),
                )
            });
            match started {
                Ok(p) => {
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(p.reload.clone());
                    let _ = p.task.await;
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot run the strategies while leading");
                    term.cancelled().await;
                }
            }
        }
    }));
    Ok(Work {
        source,
        warmup,
        reload: Some(reload),
        instances,
        task,
        cluster: Some(status),
    })
}
