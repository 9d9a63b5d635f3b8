//! `sigcast record`: saves live upstream messages, as received, in the JSON-lines replay
//! format (`{"recv_ns":N,"market":"spot","msg":{...}}`), with a progress line.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::plan;
use super::shard::{ShardSpec, backoff, connect};
use crate::config::BinanceSettings;
use crate::market::Market;
use crate::market::recording::json_line;

/// What a recording run wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub messages: u64,
    pub bytes: u64,
}

/// One received message, on its way to the file.
struct Line {
    market: Market,
    received_ns: i64,
    text: String,
}

/// Records `streams` into `out` until `stop` (or `duration`) ends it.
pub async fn record(
    settings: BinanceSettings,
    streams: &[(Market, String)],
    out: PathBuf,
    duration: Option<Duration>,
    stop: CancellationToken,
) -> anyhow::Result<Summary> {
    let file =
        File::create(&out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let (tx, rx) = mpsc::channel::<Line>(8192);
    // Files are written on a plain thread: the runtime never waits on the disk.
    let writer = std::thread::Builder::new()
        .name("sigcast-record".into())
        .spawn(move || write_lines(file, rx))?;
    let settings = Arc::new(settings);
    let mut tasks = Vec::new();
    for spec in plan(streams, &settings) {
        tasks.push(tokio::spawn(keep_recording(
            Arc::new(spec),
            settings.clone(),
            tx.clone(),
            stop.clone(),
        )));
    }
    drop(tx);
    if let Some(d) = duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.cancel();
        });
    }
    for t in tasks {
        let _ = t.await;
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the recording writer failed"))?
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))
}

/// Keeps one shard's connection up and forwards every text message, until `stop`.
async fn keep_recording(
    spec: Arc<ShardSpec>,
    settings: Arc<BinanceSettings>,
    tx: mpsc::Sender<Line>,
    stop: CancellationToken,
) {
    let ids = Arc::new(AtomicI64::new(1));
    let mut failures = 0;
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => return,
            c = connect(spec.clone(), settings.clone(), ids.clone()) => c,
        };
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                failures += 1;
                let delay = backoff(&settings, failures);
                tracing::warn!(shard = %spec.name, error = %e, retry_in = ?delay, "record: connect failed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        failures = 0;
        for text in conn.pending.drain(..) {
            if tx.send(line(spec.market, text)).await.is_err() {
                return;
            }
        }
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = conn.ws.next() => m,
            };
            match message {
                Some(Ok(Message::Text(t))) => {
                    if tx
                        .send(line(spec.market, t.as_str().to_owned()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Ok(Message::Ping(_))) => conn.budget.note_sent(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    tracing::warn!(shard = %spec.name, "record: connection lost; reconnecting");
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

fn line(market: Market, text: String) -> Line {
    let received_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Line {
        market,
        received_ns,
        text,
    }
}

/// Writes lines until every sender is gone, printing progress to stderr.
fn write_lines(file: File, mut rx: mpsc::Receiver<Line>) -> std::io::Result<Summary> {
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut summary = Summary {
        messages: 0,
        bytes: 0,
    };
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let every = if terminal {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    while let Some(l) = rx.blocking_recv() {
        let text = json_line(l.market, l.received_ns, &l.text);
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        summary.messages += 1;
        summary.bytes += text.len() as u64 + 1;
        if last_report.elapsed() >= every {
            progress(&summary, started, terminal);
            out.flush()?;
            last_report = Instant::now();
        }
    }
    out.flush()?;
    progress(&summary, started, terminal);
    if terminal {
        eprintln!();
    }
    Ok(summary)
}

fn progress(s: &Summary, started: Instant, terminal: bool) {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let text = format!(
        "recording: {} messages, {:.0}/s, {:.1} MiB",
        s.messages,
        s.messages as f64 / secs,
        s.bytes as f64 / (1024.0 * 1024.0)
    );
    if terminal {
        eprint!("\r{text}   ");
    } else {
        eprintln!("{text}");
    }
}
