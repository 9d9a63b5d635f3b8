//! The load generator behind `sigcast bench`: N authenticated TLS WebSocket clients against a
//! server (sigcast or a peer speaking the same protocol), a publisher driving broadcasts at
//! a set rate, and the figures that matter for fan-out.
//!
//! A little over 500 lines: the clients, the publisher and the run that ties them share the
//! run's settings and counters; the records and `/proc` readings already live apart.
//!
//! Each broadcast carries `bench:<index>:<emit time, ns>` in `content.reason`, so every
//! client can tell the latency of each delivery without parsing JSON, and the run can tell
//! when each broadcast reached its slowest client. The server's memory and CPU come from
//! `/proc/<pid>` when its pid is given.

mod probe;
mod record;
mod verified;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::auth::{KeyRing, Scope};
pub use probe::{cpu_micros, rss_kib};
use record::{Recorder, quantile, stamp};

type Ws = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Longest wait for stragglers after the last broadcast.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// The drain ends early when nothing arrives for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(5);
/// A client's handshake budget.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `wss://host:port`, or several comma-separated: clients are spread over them.
    pub url: String,
    /// Where the publisher connects; the first of `url` when `None`.
    pub publish_url: Option<String>,
    /// CA certificate to trust (a self-signed server's cert.pem); the web PKI otherwise.
    pub ca: Option<PathBuf>,
    pub clients: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Broadcasts per second; 0 measures connections only.
    pub rate: u32,
    /// How long broadcasts go out.
    pub duration: Duration,
    /// The server's pids (a cluster's nodes), for RSS and CPU from `/proc`, added up.
    pub server_pids: Vec<u32>,
    /// How long connections sit idle before the memory reading.
    pub settle: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub clients: usize,
    pub connected: usize,
    pub connect_failures: usize,
    pub handshakes_per_sec: f64,
    pub handshake_p50_ms: f64,
    pub handshake_p99_ms: f64,
    /// Server RSS growth per connected client, KiB.
    pub rss_kib_per_conn: Option<f64>,
    pub rss_kib_total: Option<u64>,
    pub broadcasts: usize,
    pub expected: u64,
    pub delivered: u64,
    /// Clients the server dropped (or that failed) during the broadcasts.
    pub disconnects: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_p999_ms: f64,
    pub latency_max_ms: f64,
    /// Per broadcast, until its slowest client had it.
    pub completion_p50_ms: f64,
    pub completion_p99_ms: f64,
    pub completion_max_ms: f64,
    pub deliveries_per_sec: f64,
    pub server_cpu_us_per_delivery: Option<f64>,
    /// From each publish's emit to the publisher's ack: how long the server took to take a
    /// signal in while it fanned out the ones before (none when a publish was refused).
    pub publish_ack_p50_ms: Option<f64>,
    pub publish_ack_p99_ms: Option<f64>,
}

/// Connects the clients, drives the broadcasts and measures.
pub async fn run(options: &Options, keys: &KeyRing) -> anyhow::Result<Report> {
    let targets: Vec<Target> = options
        .url
        .split(',')
        .map(|u| Target::parse(u.trim(), options.ca.as_ref()))
        .collect::<anyhow::Result<_>>()?;
    let publish_target = match &options.publish_url {
        Some(url) => Target::parse(url, options.ca.as_ref())?,
        None => targets[0].clone(),
    };
    let mut report = Report {
        clients: options.clients,
        ..Default::default()
    };
    let pids = &options.server_pids;
    let sum = |read: fn(u32) -> Option<u64>| -> Option<u64> {
        (!pids.is_empty())
            .then(|| pids.iter().map(|p| read(*p)).sum::<Option<u64>>())
            .flatten()
    };
    let rss_before = sum(rss_kib);
    let broadcasts = options.rate as usize * options.duration.as_secs() as usize;
    let recorder = Arc::new(Recorder::new(broadcasts));
    let stop = CancellationToken::new();
    let disconnects = Arc::new(AtomicU64::new(0));

    // Connect everyone, `concurrency` at a time.
    let gate = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let handshakes = Arc::new(std::sync::Mutex::new(Vec::with_capacity(options.clients)));
    let settled = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    spawn_progress(
        options.clients,
        settled.clone(),
        recorder.clone(),
        stop.clone(),
    );
    for client in 0..options.clients {
        let token = keys.issue_scoped(
            &format!("bench-{client}"),
            Duration::from_secs(3600),
            None,
            &Scope::default(),
        )?;
        let (target, gate, handshakes, settled) = (
            targets[client % targets.len()].clone(),
            gate.clone(),
            handshakes.clone(),
            settled.clone(),
        );
        let (recorder, stop, disconnects) = (recorder.clone(), stop.clone(), disconnects.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let t = Instant::now();
            let ws = tokio::time::timeout(CONNECT_TIMEOUT, target.connect(&token)).await;
            drop(permit);
            let ws = match ws {
                Ok(Ok(ws)) => {
                    let took = t.elapsed();
                    handshakes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(took.as_micros() as u32);
                    settled.fetch_add(1, Ordering::Relaxed);
                    ws
                }
                Ok(Err(e)) => {
                    tracing::debug!(client, error = %e, "connect failed");
                    settled.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(_) => {
                    settled.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            listen(client, ws, &recorder, stop, &disconnects).await;
        });
    }
    while settled.load(Ordering::Relaxed) < options.clients {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let connect_time = started.elapsed();
    let mut took = std::mem::take(&mut *handshakes.lock().unwrap_or_else(|p| p.into_inner()));
    took.sort_unstable();
    report.connected = took.len();
    report.connect_failures = options.clients - took.len();
    report.handshakes_per_sec = took.len() as f64 / connect_time.as_secs_f64();
    report.handshake_p50_ms = quantile(&took, 0.5) as f64 / 1000.0;
    report.handshake_p99_ms = quantile(&took, 0.99) as f64 / 1000.0;

    tokio::time::sleep(options.settle).await;
    if let (Some(before), Some(after)) = (rss_before, sum(rss_kib)) {
        report.rss_kib_total = Some(after);
        if report.connected > 0 {
            report.rss_kib_per_conn =
                Some(after.saturating_sub(before) as f64 / report.connected as f64);
        }
    }

    if broadcasts > 0 {
        let publisher_token = keys.issue_scoped(
            "bench-publisher",
            Duration::from_secs(3600),
            None,
            &Scope {
                publisher: true,
                ..Scope::default()
            },
        )?;
        let publisher = publish_target.connect(&publisher_token).await?;
        let cpu_before = sum(cpu_micros);
        let first_emit = now_ns();
        let held = publish(publisher, options.rate, broadcasts, &recorder, stop.clone()).await?;
        drain(&recorder, broadcasts as u64 * report.connected as u64).await;
        let cpu_after = sum(cpu_micros);
        drop(held);
        report.broadcasts = broadcasts;
        report.expected = broadcasts as u64 * report.connected as u64;
        report.delivered = recorder.delivered();
        report.disconnects = disconnects.load(Ordering::Relaxed);
        let span = recorder.last_arrival().saturating_sub(first_emit) as f64 / 1e9;
        if span > 0.0 {
            report.deliveries_per_sec = report.delivered as f64 / span;
        }
        if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
            if report.delivered > 0 {
                report.server_cpu_us_per_delivery =
                    Some(b.saturating_sub(a) as f64 / report.delivered as f64);
            }
        }
        stop.cancel();
        // Let clients flush their last latencies.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let latencies = recorder.latencies();
        let ms = |us: u32| us as f64 / 1000.0;
        report.latency_p50_ms = ms(quantile(&latencies, 0.5));
        report.latency_p99_ms = ms(quantile(&latencies, 0.99));
        report.latency_p999_ms = ms(quantile(&latencies, 0.999));
        report.latency_max_ms = ms(latencies.last().copied().unwrap_or(0));
        if let Some(acks) = recorder.ack_latencies().filter(|a| !a.is_empty()) {
            report.publish_ack_p50_ms = Some(ms(quantile(&acks, 0.5)));
            report.publish_ack_p99_ms = Some(ms(quantile(&acks, 0.99)));
        }
        let mut completions: Vec<u64> = (0..broadcasts)
            .filter_map(|i| {
                let emit = recorder.emitted_at(i)?;
                Some(recorder.completed_at(i)?.saturating_sub(emit) / 1000)
            })
            .collect();
        completions.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        report.completion_p50_ms = ms(quantile(&completions, 0.5));
        report.completion_p99_ms = ms(quantile(&completions, 0.99));
        report.completion_max_ms = ms(completions.last().copied().unwrap_or(0));
    }
    stop.cancel();
    Ok(report)
}

/// A line on stderr every second while the run lasts: handshakes settled, then deliveries.
fn spawn_progress(
    clients: usize,
    settled: Arc<AtomicUsize>,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            eprintln!(
                "bench: {:>4.0}s  {}/{clients} clients settled  {} delivered",
                started.elapsed().as_secs_f64(),
                settled.load(Ordering::Relaxed),
                recorder.delivered()
            );
        }
    });
}

/// One client: reads until stopped, noting each benchmark delivery.
async fn listen(
    client: usize,
    mut ws: Ws,
    recorder: &Recorder,
    stop: CancellationToken,
    disconnects: &AtomicU64,
) {
    let mut local = Vec::with_capacity(256);
    // Made once: a fresh `cancelled()` per message would register and unregister with the
    // token's lock every time, which at 200k deliveries/s is measurable generator load.
    let mut stopped = std::pin::pin!(stop.cancelled());
    loop {
        let message = tokio::select! {
            _ = &mut stopped => break,
            m = ws.next() => m,
        };
        match message {
            Some(Ok(Message::Text(text))) => match stamp(text.as_str()) {
                Some((index, emit)) => recorder.arrived(client, index, emit, now_ns(), &mut local),
                None => {
                    recorder.other.fetch_add(1, Ordering::Relaxed);
                }
            },
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                disconnects.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    recorder.flush(client, &mut local);
    let _ = ws.close(None).await;
}

/// Sends `count` broadcasts at `rate` per second through the publish API. Returns the
/// connection's sending half, to be dropped only after the drain: closing a socket whose
/// acks are unread makes the kernel reset it, and the server would lose the last commands.
async fn publish(
    ws: Ws,
    rate: u32,
    count: usize,
    recorder: &Arc<Recorder>,
    stop: CancellationToken,
) -> anyhow::Result<futures_util::stream::SplitSink<Ws, Message>> {
    let (mut sink, mut stream) = ws.split();
    // Acks are timed and the rest dropped until the run stops, so the socket flows; the
    // reader ends with how the connection ended, if the server ended it.
    let acks = recorder.clone();
    let mut reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break None,
                m = stream.next() => match m {
                    Some(Ok(Message::Close(Some(frame)))) => {
                        break Some(format!("close {} \"{}\"", u16::from(frame.code), frame.reason));
                    }
                    Some(Ok(Message::Close(None))) | None => break Some("closed".to_string()),
                    Some(Err(e)) => break Some(e.to_string()),
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ack) = reply_kind(text.as_str()) {
                            acks.answered(ack, now_ns());
                        }
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    });
    // The server cut the publisher: say how, with what that usually means.
    let gone = |i: usize, why: Option<String>| {
        let why = why.unwrap_or_else(|| "closed".into());
        let hint = if why.starts_with("close 4000") {
            ": the server fell behind this rate (its slow-consumer policy cut the publisher, which also receives every signal)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "the server ended the publisher's connection after {i} broadcasts ({why}){hint}"
        )
    };
    let start = tokio::time::Instant::now();
    let step = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    for i in 0..count {
        tokio::time::sleep_until(start + step * i as u32).await;
        if reader.is_finished() {
            return Err(gone(i, (&mut reader).await.ok().flatten()));
        }
        let emit = now_ns();
        recorder.emitted(i, emit);
        let body = format!(
            r#"{{"type":"publish","signal":{{"type":"buy","content":{{"symbol":"BTCUSDT","price":75000.5,"timestamp":{},"strategy":"bench","reason":"bench:{i}:{emit}"}},"is_test":false}}}}"#,
            crate::clock::unix_now(),
        );
        if let Err(e) = sink.send(Message::text(body)).await {
            // The reader sees the close frame a moment after the sink refuses to send.
            return match tokio::time::timeout(Duration::from_secs(1), &mut reader).await {
                Ok(why) => Err(gone(i, why.ok().flatten())),
                Err(_) => Err(e.into()),
            };
        }
    }
    Ok(sink)
}

/// Waits until everything expected arrived, nothing arrived for a while, or the limit.
async fn drain(recorder: &Recorder, expected: u64) {
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut last = (recorder.delivered(), Instant::now());
    while Instant::now() < deadline {
        let delivered = recorder.delivered();
        if delivered >= expected {
            return;
        }
        if delivered != last.0 {
            last = (delivered, Instant::now());
        } else if last.1.elapsed() >= DRAIN_QUIET {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Where and how clients connect.
#[derive(Clone)]
struct Target {
    url: String,
    addr: String,
    host: ServerName<'static>,
    tls: TlsConnector,
}

impl Target {
    fn parse(url: &str, ca: Option<&PathBuf>) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("wss://")
            .ok_or_else(|| anyhow::anyhow!("{url}: expected wss://host:port"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .trim_matches(['[', ']']);
        let mut config = (*crate::client::tls_config(ca).map_err(|e| anyhow::anyhow!(e))?).clone();
        // Every client does a full handshake, as separate consumers would.
        config.resumption = rustls::client::Resumption::disabled();
        // The chain's path validation once per run, each handshake's signature every time.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(crate::client::roots(ca).map_err(|e| anyhow::anyhow!(e))?);
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider).build()?;
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(verified::VerifiedOnce::new(webpki)));
        Ok(Target {
            url: url.to_string(),
            addr: if authority.contains(':') {
                authority.to_string()
            } else {
                format!("{authority}:443")
            },
            host: ServerName::try_from(host.to_string())?,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect(&self, token: &str) -> anyhow::Result<Ws> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.host.clone(), tcp).await?;
        let mut request = self.url.as_str().into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        // Reads of 512 bytes: a delivery is ~250, and tungstenite zeroes the room it reads
        // into, which with a bigger buffer costs more than the read.
        let config = WebSocketConfig::default()
            .read_buffer_size(512)
            .write_buffer_size(0);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(config)).await?;
        Ok(ws)
    }
}

/// The report as text, one figure per line.
pub fn describe(r: &Report) -> String {
    let mut out = format!(
        "clients: {} connected, {} failed; {:.0} handshakes/s (p50 {:.1} ms, p99 {:.1} ms)\n",
        r.connected,
        r.connect_failures,
        r.handshakes_per_sec,
        r.handshake_p50_ms,
        r.handshake_p99_ms
    );
    if let (Some(per), Some(total)) = (r.rss_kib_per_conn, r.rss_kib_total) {
        out += &format!("server memory: {per:.1} KiB per connection ({total} KiB RSS)\n");
    }
    if r.broadcasts > 0 {
        out += &format!(
            "delivered: {} of {} ({:.2}%), {} disconnects; {:.0} deliveries/s\n",
            r.delivered,
            r.expected,
            100.0 * r.delivered as f64 / r.expected.max(1) as f64,
            r.disconnects,
            r.deliveries_per_sec
        );
        out += &format!(
            "latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms\n",
            r.latency_p50_ms, r.latency_p99_ms, r.latency_p999_ms, r.latency_max_ms
        );
        out += &format!(
            "broadcast completion (slowest client): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            r.completion_p50_ms, r.completion_p99_ms, r.completion_max_ms
        );
        if let Some(cpu) = r.server_cpu_us_per_delivery {
            out += &format!("server CPU: {cpu:.2} µs per delivery\n");
        }
        if let (Some(p50), Some(p99)) = (r.publish_ack_p50_ms, r.publish_ack_p99_ms) {
            out += &format!("publish acks: p50 {p50:.2} ms, p99 {p99:.2} ms\n");
        }
    }
    out
}

/// What a message to the publisher answers: `Some(true)` an ack, `Some(false)` a refused
/// publish (an `error` reply), `None` anything else (the broadcasts it receives too, whose
/// `type` is a side). A server that does not ack (the peers) leaves the figure out.
fn reply_kind(text: &str) -> Option<bool> {
    if text.contains(r#""type":"publish_ack""#) {
        Some(true)
    } else if text.contains(r#""type":"error""#) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_to_a_publisher_are_told_from_the_broadcasts_it_receives() {
        let ack = serde_json::json!({"type": "publish_ack", "seq": 7, "timestamp": 1}).to_string();
        let refused = serde_json::json!({"type": "error", "error_code": "x"}).to_string();
        let signal = r#"{"type":"buy","content":{"symbol":"BTCUSDT","price":1.0,"timestamp":1,"reason":"bench:3:9"},"is_test":false,"seq":8}"#;
        assert_eq!(reply_kind(&ack), Some(true));
        assert_eq!(reply_kind(&refused), Some(false));
        assert_eq!(reply_kind(signal), None);
    }
}
