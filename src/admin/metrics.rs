//! The admin port's `/metrics` page: every counter and gauge sigcast keeps, each with its
//! help text, in Prometheus text format 0.0.4.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::Observed;
use crate::market::stats::KINDS;
use crate::server::histogram::Histogram;

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
    track_metrics(&mut out, &hub.track_headlines());
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
fn track_metrics(out: &mut String, headlines: &[crate::ledger::Headline]) {
    type Figure = fn(&crate::ledger::Headline) -> f64;
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
        for h in headlines {
            let _ = writeln!(
                out,
                "{name}{{strategy=\"{}\"}} {}",
                escape(&h.strategy),
                figure(h)
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
