//! Runs a plugin process and keeps it running: writes queued lines to its stdin, reads
//! signals from its stdout, logs its stderr, and restarts it with backoff when it crashes,
//! hangs or writes garbage.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::protocol::{PluginSignal, parse_signal};
use super::{Launch, Link};

/// First restart delay; doubles per failure in a row up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A plugin that ran this long before failing starts the backoff over.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// A plugin may stay silent this long while it has input (then the read simply starts over).
const IDLE: Duration = Duration::from_secs(24 * 3600);
/// How long a plugin may take to exit after its input closed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Starts the supervisor task; `None` (logged) outside a Tokio runtime.
pub(super) fn start(launch: Arc<Launch>, hello: String, queue: usize) -> Option<Link> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(plugin = %launch.label, "plugins run only inside sigcast serve or backtest");
        return None;
    };
    let (events, events_rx) = mpsc::channel(queue);
    let (signals_tx, signals) = mpsc::unbounded_channel();
    let done = runtime.spawn(supervise(launch, hello, events_rx, signals_tx));
    Some(Link {
        events: Some(events),
        signals,
        done: Some(done),
    })
}

/// How one run of the plugin ended.
enum Ended {
    /// Our side closed the input and the plugin finished: done for good.
    InputClosed,
    Failed(String),
}

async fn supervise(
    launch: Arc<Launch>,
    hello: String,
    mut events: mpsc::Receiver<String>,
    signals: mpsc::UnboundedSender<PluginSignal>,
) {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        match run_once(&launch, &hello, &mut events, &signals).await {
            Ended::InputClosed => return,
            Ended::Failed(reason) => {
                if started.elapsed() > HEALTHY_AFTER {
                    failures = 0;
                }
                failures += 1;
                let delay = FIRST_BACKOFF
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(MAX_BACKOFF);
                tracing::warn!(plugin = %launch.label, %reason, failures, restart_in = ?delay, "plugin failed; restarting");
                tokio::time::sleep(delay).await;
                if events.is_closed() && events.is_empty() {
                    return;
                }
            }
        }
    }
}

async fn run_once(
    launch: &Launch,
    hello: &str,
    events: &mut mpsc::Receiver<String>,
    signals: &mpsc::UnboundedSender<PluginSignal>,
) -> Ended {
    let mut child = match Command::new(&launch.program)
        .args(&launch.args)
        .current_dir(&launch.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Ended::Failed(format!("cannot start {}: {e}", launch.program.display()));
        }
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Ended::Failed("no pipes to the plugin".into());
    };
    tracing::info!(plugin = %launch.label, pid = child.id(), "plugin started");
    let label = launch.label.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(plugin = %label, "{}", line.chars().take(500).collect::<String>());
        }
    });
    let mut stdin = Some(BufWriter::new(stdin));
    let mut stdout = BufReader::new(stdout).lines();
    let symbol = launch
        .label
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if let Err(reason) = write(&mut stdin, hello, true, launch.hang_after).await {
        return fail(&mut child, reason).await;
    }
    // A plugin may close its output and go on reading (one that records or forwards events
    // and never signals); from then on its exit is watched instead of its output's end.
    let mut output_open = true;
    loop {
        tokio::select! {
            line = events.recv(), if stdin.is_some() => match line {
                Some(line) => {
                    let flush = events.is_empty();
                    if let Err(reason) = write(&mut stdin, &line, flush, launch.hang_after).await {
                        return fail(&mut child, reason).await;
                    }
                }
                None => {
                    // Input done (backtest end): close stdin, read what is left.
                    if let Some(mut w) = stdin.take() {
                        let _ = w.flush().await;
                    }
                    if !output_open {
                        let _ = tokio::time::timeout(EXIT_GRACE, child.wait()).await;
                        return Ended::InputClosed;
                    }
                }
            },
            status = child.wait(), if !output_open && stdin.is_some() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return Ended::Failed(format!("exited ({status})"));
            }
            out = tokio::time::timeout(if stdin.is_some() { IDLE } else { EXIT_GRACE }, stdout.next_line()), if output_open => {
                let draining = stdin.is_none();
                match out {
                    Ok(Ok(Some(line))) => match parse_signal(&line, &symbol) {
                        Ok(Some(s)) => { let _ = signals.send(s); }
                        Ok(None) => {}
                        Err(e) if draining => tracing::warn!(plugin = %launch.label, error = %e, "plugin wrote garbage at its end"),
                        Err(e) => {
                            let shown: String = line.chars().take(80).collect();
                            return fail(&mut child, format!("wrote garbage ({e}): {shown:?}")).await;
                        }
                    },
                    Ok(_) if draining => {
                        let _ = tokio::time::timeout(EXIT_GRACE, child.wait()).await;
                        return Ended::InputClosed;
                    }
                    Ok(Ok(None)) => output_open = false,
                    Ok(Err(e)) => return fail(&mut child, format!("its output failed: {e}")).await,
                    Err(_) if draining => {
                        let _ = child.kill().await;
                        return Ended::InputClosed;
                    }
                    Err(_) => {} // quiet for a long while is fine while input flows
                }
            }
        }
    }
}

/// Writes one line; a plugin that does not take it within `hang_after` is hung.
async fn write(
    stdin: &mut Option<BufWriter<tokio::process::ChildStdin>>,
    line: &str,
    flush: bool,
    hang_after: Duration,
) -> Result<(), String> {
    let Some(w) = stdin else {
        return Ok(());
    };
    let io = async {
        w.write_all(line.as_bytes()).await?;
        w.write_all(b"\n").await?;
        if flush {
            w.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(hang_after, io).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("its input closed: {e}")),
        Err(_) => Err(format!("hung: did not read its input for {hang_after:?}")),
    }
}

async fn fail(child: &mut Child, reason: String) -> Ended {
    let _ = child.kill().await;
    Ended::Failed(reason)
}
