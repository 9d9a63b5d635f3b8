//! The admin listener: plain HTTP, loopback by default, apart from the client port.
//! `GET /metrics` (Prometheus text format 0.0.4), `GET /healthz` (the process answers) and
//! `GET /readyz` (the upstream is connected and subscribed, and the strategies are warm; in
//! cluster mode also the node follows the signal stream, and an edge or a standby producer
//! needs only that).
//!
//! About 530 lines: the metrics page names every counter and gauge, each with its help text.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::market::SourceStats;
use crate::market::stats::KINDS;
use crate::server::Shared;
use crate::server::histogram::Histogram;
use crate::server::http::{self, Body};
use crate::strategy::Warmup;

/// What the admin listener reports on: the server, and the pipeline that feeds it.
#[derive(Clone)]
pub struct Observed {
    pub server: Arc<Shared>,
    /// The market source's connections, gaps and events.
    pub source: Arc<SourceStats>,
    /// The strategies' warm-up.
    pub warmup: Arc<Warmup>,
    /// The node's link to the cluster, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::Status>>,
}

impl Observed {
    /// The server alone, with no pipeline reporting yet: never ready.
    pub fn new(server: Arc<Shared>) -> Self {
        Observed {
            server,
            source: Default::default(),
            warmup: Default::default(),
            cluster: None,
        }
    }

    /// Whether sigcast should get traffic, and a line per check saying why (not).
    pub fn readiness(&self) -> (bool, String) {
        let source = self.source.snapshot();
        let upstream = self.source.all_connected();
        let instances = self.warmup.instances.load(Ordering::Relaxed);
        let cold = self.warmup.cold.load(Ordering::Relaxed);
        let warm = self.warmup.warm();
        let word = |ok| if ok { "ok" } else { "not ready" };
        let text = format!(
            "upstream: {} ({} of {} connections up and subscribed)\nstrategies: {} ({} of {instances} warm)\n",
            word(upstream),
            source.connected.max(0),
            source.planned.max(0),
            word(warm),
            instances.saturating_sub(cold),
        );
        let Some(cluster) = &self.cluster else {
            return (upstream && warm, text);
        };
        let stream = cluster.ready();
        let leader = cluster.leader.load(Ordering::Relaxed);
        let text = format!(
            "{}cluster: {} (NATS {}, signal stream {}, delivered up to seq {}){}\n",
            if leader { text.as_str() } else { "" },
            word(stream),
            if cluster.connected.load(Ordering::Relaxed) {
                "connected"
            } else {
                "disconnected"
            },
            if cluster.caught_up.load(Ordering::Relaxed) {
                "caught up"
            } else {
                "catching up"
            },
            cluster.delivered.load(Ordering::Relaxed),
            if leader {
                "; leading the producers"
            } else {
                ""
            },
        );
        // A node that runs no strategies (an edge, a standby producer) serves the stream.
        (stream && (!leader || (upstream && warm)), text)
    }
}

/// How long a scrape may take, its request and its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read (431 beyond).
const MAX_REQUEST: usize = 8 * 1024;
/// Scrapes served at once; more wait in the kernel's backlog.
const MAX_CONCURRENT: usize = 16;

/// Serves the admin endpoints until `shutdown`.
pub async fn run(listener: TcpListener, observed: Observed, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let observed = observed.clone();
        tasks.spawn(async move {
            if let Err(e) = serve(tcp, &observed).await {
                tracing::debug!(%peer, error = %e, "admin request failed");
            }
            drop(permit);
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
}

/// Reads the one request of a connection (through the client port's HTTP layer) and answers
/// it, within [`REQUEST_TIMEOUT`].
async fn serve(tcp: TcpStream, observed: &Observed) -> Result<(), hyper::Error> {
    let service =
        service_fn(|request| std::future::ready(Ok::<_, Infallible>(answer(&request, observed))));
    let connection = http::server(MAX_REQUEST).serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        _ = tokio::time::sleep(REQUEST_TIMEOUT) => {
            // Ends the connection once any answer under way is written.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// The answer to one admin request.
fn answer<B>(request: &Request<B>, observed: &Observed) -> Response<Body> {
    if let Some(too_long) = http::target_too_long(request) {
        return too_long;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    let plain = |status, text: String| http::answer(status, "text/plain", Bytes::from(text));
    match request.uri().path() {
        "/metrics" => http::answer(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(render(observed)),
        ),
        "/healthz" => plain(StatusCode::OK, "ok\n".into()),
        "/readyz" => match observed.readiness() {
            (true, text) => plain(StatusCode::OK, text),
            (false, text) => plain(StatusCode::SERVICE_UNAVAILABLE, text),
        },
        _ => http::text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz",
        ),
    }
}

/// The metrics, in Prometheus text format.
pub fn render(observed: &Observed) -> String {
    let shared = &observed.server;
    let mut out = String::with_capacity(8192);
    let stats = &shared.stats;
    let hub = &shared.hub;
    family(
        &mut out,
        "sigcast_build_info",
        "gauge",
        "The running sigcast's version.",
    );
    let _ = writeln!(
        out,
        "sigcast_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    counter(
        &mut out,
        "sigcast_log_lines_dropped_total",
        "Log lines dropped because stderr's reader fell behind (the server never waits for it).",
        crate::logging::dropped_lines(),
    );
    family(
        &mut out,
        "sigcast_connections",
        "gauge",
        "Client connections by state.",
    );
    for (state, n) in [
        ("handshaking", stats.handshaking.load(Ordering::Relaxed)),
        ("open", stats.sessions.load(Ordering::Relaxed)),
    ] {
        let _ = writeln!(out, "sigcast_connections{{state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "sigcast_handshakes_total",
        "counter",
        "WebSocket handshakes by outcome.",
    );
    for (outcome, n) in stats.handshakes() {
        let _ = writeln!(
            out,
            "sigcast_handshakes_total{{outcome=\"{}\"}} {n}",
            outcome.as_str()
        );
    }
    family(
        &mut out,
        "sigcast_sessions_ended_total",
        "counter",
        "Sessions ended, by reason.",
    );
    for (ending, n) in stats.endings() {
        let _ = writeln!(
            out,
            "sigcast_sessions_ended_total{{reason=\"{}\"}} {n}",
            ending.as_str()
        );
    }
    family(
        &mut out,
        "sigcast_signals_total",
        "counter",
        "Signals broadcast, by strategy and side.",
    );
    for (strategy, side, n) in hub.emitted() {
        let _ = writeln!(
            out,
            "sigcast_signals_total{{strategy=\"{}\",side=\"{}\"}} {n}",
            escape(&strategy),
            side.as_str()
        );
    }
    track_metrics(&mut out, &hub.performance());
    counter(
        &mut out,
        "sigcast_messages_delivered_total",
        "Messages written to clients (signals, market data, replies).",
        stats.delivered.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "sigcast_slow_consumer_disconnects_total",
        "Sessions closed 4000 for falling server.queue_capacity signals behind.",
        stats.slow_consumers.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "sigcast_market_data_subscriptions",
        "Market-data topic subscriptions across sessions.",
        hub.feed().subscriptions() as u64,
    );
    counter(
        &mut out,
        "sigcast_market_data_conflated_total",
        "Market-data updates replaced by a newer one before a slow session wrote them.",
        hub.feed().conflated(),
    );
    let last = hub.last_seq();
    gauge(
        &mut out,
        "sigcast_last_seq",
        "The last signal sequence number given out.",
        last,
    );
    if let Some(journal) = hub.journal() {
        gauge(
            &mut out,
            "sigcast_journal_lag_signals",
            "Signals numbered but not yet committed to the journal.",
            last.saturating_sub(journal.flushed()),
        );
        let footprint = journal.footprint();
        gauge(
            &mut out,
            "sigcast_journal_size_bytes",
            "The signal journal's database and write-ahead log on disk.",
            footprint.bytes.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "sigcast_journal_oldest_seq",
            "The oldest signal the journal keeps for resumes (0 while empty).",
            footprint.oldest_seq.load(Ordering::Relaxed),
        );
    }
    histogram(
        &mut out,
        "sigcast_session_queue_depth",
        "Signals waiting in a session's queue when it woke to write them.",
        &stats.queue_depth,
        0,
    );
    histogram(
        &mut out,
        "sigcast_fanout_latency_seconds",
        "From the hub numbering a signal to a session flushing it to its client (oldest signal of each write).",
        &stats.fanout_latency,
        6,
    );
    upstream(&mut out, observed);
    if let Some(cluster) = &observed.cluster {
        cluster_metrics(&mut out, cluster);
    }
    out
}

/// The market source's families.
fn upstream(out: &mut String, observed: &Observed) {
    let s = observed.source.snapshot();
    family(
        out,
        "sigcast_upstream_connections",
        "gauge",
        "Market source connections, by state (planned: meant to be open; up: connected and subscribed).",
    );
    let _ = writeln!(
        out,
        "sigcast_upstream_connections{{state=\"planned\"}} {}\nsigcast_upstream_connections{{state=\"up\"}} {}",
        s.planned, s.connected
    );
    counter(
        out,
        "sigcast_upstream_connects_total",
        "Successful market source connects: first ones, reconnects and rotations.",
        s.connects,
    );
    counter(
        out,
        "sigcast_upstream_reconnects_total",
        "Connects that replaced a lost upstream connection.",
        s.reconnects,
    );
    counter(
        out,
        "sigcast_upstream_gaps_detected_total",
        "Holes found in an upstream id or candle sequence.",
        s.gaps_detected,
    );
    counter(
        out,
        "sigcast_upstream_gaps_backfilled_total",
        "Holes filled from the REST history before strategies saw them.",
        s.gaps_backfilled,
    );
    counter(
        out,
        "sigcast_upstream_malformed_messages_total",
        "Upstream messages skipped because they did not parse.",
        s.malformed,
    );
    family(
        out,
        "sigcast_upstream_messages_total",
        "counter",
        "Market events received, by stream kind.",
    );
    for (kind, n) in KINDS.iter().zip(s.events) {
        let _ = writeln!(
            out,
            "sigcast_upstream_messages_total{{kind=\"{kind}\"}} {n}"
        );
    }
    let instances = observed.warmup.instances.load(Ordering::Relaxed) as u64;
    let cold = observed.warmup.cold.load(Ordering::Relaxed) as u64;
    family(
        out,
        "sigcast_strategy_instances",
        "gauge",
        "Strategy instances running, by warm-up state.",
    );
    let _ = writeln!(
        out,
        "sigcast_strategy_instances{{state=\"warm\"}} {}\nsigcast_strategy_instances{{state=\"cold\"}} {cold}",
        instances.saturating_sub(cold)
    );
}

/// A histogram family, whose values are exported divided by 10^`decimals` (6: microseconds
/// recorded, seconds exported), bounds written exactly.
fn histogram<const N: usize>(
    out: &mut String,
    name: &str,
    help: &str,
    h: &Histogram<N>,
    decimals: u32,
) {
    let unit = 10u64.pow(decimals);
    family(out, name, "histogram", help);
    let (buckets, sum, count) = h.read();
    for (bound, cumulative) in buckets {
        if bound == u64::MAX {
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        } else {
            let (whole, fraction) = (bound / unit, bound % unit);
            let le = match fraction {
                0 => whole.to_string(),
                f => {
                    let digits = format!("{f:0width$}", width = decimals as usize);
                    format!("{whole}.{}", digits.trim_end_matches('0'))
                }
            };
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
    }
    let _ = writeln!(out, "{name}_sum {}", sum as f64 / unit as f64);
    let _ = writeln!(out, "{name}_count {count}");
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The live track record's headline figures, per strategy (docs/performance.md).
fn track_metrics(out: &mut String, report: &crate::ledger::Report) {
    type Figure = fn(&crate::ledger::Figures) -> f64;
    let families: [(&str, &str, Figure); 3] = [
        (
            "sigcast_track_return_percent",
            "Total return of the strategy's paper-traded signals, open positions marked.",
            |f| f.total_return_pct,
        ),
        (
            "sigcast_track_max_drawdown_percent",
            "Deepest fall of the strategy's paper-traded equity from its peak.",
            |f| f.max_drawdown_pct,
        ),
        (
            "sigcast_track_closed_trades",
            "Paper trades the strategy's signals opened and closed.",
            |f| f.closed_trades as f64,
        ),
    ];
    for (name, help, figure) in families {
        family(out, name, "gauge", help);
        for s in &report.strategies {
            let _ = writeln!(
                out,
                "{name}{{strategy=\"{}\"}} {}",
                escape(&s.strategy),
                figure(&s.figures)
            );
        }
    }
}

/// The node's link to the cluster's signal stream.
fn cluster_metrics(out: &mut String, c: &crate::cluster::Status) {
    let flag = |b: &std::sync::atomic::AtomicBool| u64::from(b.load(Ordering::Relaxed));
    gauge(
        out,
        "sigcast_cluster_connected",
        "1 while the NATS connection is up.",
        flag(&c.connected),
    );
    gauge(
        out,
        "sigcast_cluster_caught_up",
        "1 while this node has delivered everything the signal stream held when it last looked.",
        flag(&c.caught_up),
    );
    gauge(
        out,
        "sigcast_cluster_leader",
        "1 while this producer holds the leader lease.",
        flag(&c.leader),
    );
    gauge(
        out,
        "sigcast_cluster_delivered_seq",
        "The last seq this node delivered from the signal stream.",
        c.delivered.load(Ordering::Relaxed),
    );
    counter(
        out,
        "sigcast_cluster_published_total",
        "Signals published on this node that the stream confirmed.",
        c.published.load(Ordering::Relaxed),
    );
    counter(
        out,
        "sigcast_cluster_duplicates_total",
        "Of those, the ones the stream already held (a retry, or another producer's copy).",
        c.duplicates.load(Ordering::Relaxed),
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
