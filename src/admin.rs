//! The admin listener: plain HTTP, loopback by default, apart from the client port.
//! `GET /metrics` (Prometheus text format 0.0.4) and `GET /healthz`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::Shared;

/// How long a scrape may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// Scrapes served at once; more wait in the kernel's backlog.
const MAX_CONCURRENT: usize = 16;

/// Serves the admin endpoints until `shutdown`.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
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
        let shared = shared.clone();
        tasks.spawn(async move {
            if let Err(e) = serve(tcp, &shared).await {
                tracing::debug!(%peer, error = %e, "admin request failed");
            }
            drop(permit);
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
}

async fn serve(mut tcp: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let (status, content_type, body) = match request.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            match (request.method, path) {
                (Some("GET" | "HEAD"), "/metrics") => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    render(shared),
                ),
                (Some("GET" | "HEAD"), "/healthz") => ("200 OK", "text/plain", "ok\n".into()),
                (Some("GET" | "HEAD"), _) => (
                    "404 Not Found",
                    "text/plain",
                    "not found; try /metrics or /healthz\n".into(),
                ),
                _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
            }
        }
        _ => ("400 Bad Request", "text/plain", "bad request\n".into()),
    };
    let head_only = request.method == Some("HEAD");
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}

async fn read_head(tcp: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            break;
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// The metrics, in Prometheus text format.
pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
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
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
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
