//! `kind = "exec"`: a strategy in any language, run as a child process that reads market
//! events as JSON lines on stdin and writes signals as JSON lines on stdout (the protocol is
//! in [`protocol`] and the README).
//!
//! The instance never waits for its plugin: events go into a bounded queue a supervisor task
//! writes to the child, and signals come back through [`Strategy::poll`]. A plugin that
//! crashes, stops reading (hangs) or writes garbage is killed, reported and restarted with
//! backoff; meanwhile its events are dropped and counted, and other strategies carry on.
//! Only a backtest waits for plugins (see [`set_lossless`]), so they see every event there.

pub mod protocol;
mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::common::Common;
use super::{Signal, Strategy};
use crate::market::kline::KlineBuilder;
use crate::market::{Kline, MarketEvent, MarketEventKind};
use protocol::PluginSignal;

/// Lines queued for a plugin before new events are dropped (live) or waited on (backtest).
const QUEUE: usize = 8192;

static LOSSLESS: AtomicBool = AtomicBool::new(false);

/// Backtests call this: instances then wait for room in their plugin's queue rather than
/// drop events, and [`Strategy::finish`] waits for the plugin's last signals.
pub fn set_lossless(on: bool) {
    LOSSLESS.store(on, Ordering::Relaxed);
}

/// `[strategy.params]` of `kind = "exec"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecParams {
    /// Program and arguments; a relative program path is taken from the definition file's
    /// directory (`["python3", "plugins/momentum.py"]` runs python3 from PATH with the
    /// script beside the file).
    pub command: Vec<String>,
    /// Also send every trade (candles are always sent).
    #[serde(default)]
    pub trades: bool,
    /// Subscribe to the symbol's bookTicker and send each update.
    #[serde(default)]
    pub book: bool,
    /// Closed candles of history the plugin needs before it may signal.
    #[serde(default)]
    pub warmup: usize,
    /// A plugin that does not take its input for this long is hung and restarted.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Passed to the plugin in its `hello` line.
    #[serde(default)]
    pub settings: toml::Table,
}

fn default_timeout() -> String {
    "5s".into()
}

/// How to run one plugin process.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The definition file's directory: the child's working directory.
    pub dir: PathBuf,
    pub hang_after: Duration,
    /// Names the plugin in logs: `instance/SYMBOL`.
    pub label: String,
}

/// A running plugin instance.
pub struct Exec {
    common: Common,
    params: ExecParams,
    launch: Arc<Launch>,
    builder: KlineBuilder,
    /// Closed candles seen since the last reset (history included).
    seen: usize,
    /// The latest event time, the default time of a signal that names none.
    last_ms: i64,
    /// Started on first use (it needs the runtime, which loading definitions does not).
    link: Option<Link>,
    /// Events dropped because the plugin was not keeping up (or restarting).
    dropped: u64,
}

/// The two ends the instance holds of its supervisor.
struct Link {
    events: Option<mpsc::Sender<String>>,
    signals: mpsc::UnboundedReceiver<PluginSignal>,
    /// The supervisor task: it ends once the plugin has had every queued line and exited.
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Exec {
    pub fn new(common: Common, params: ExecParams, file: &Path) -> Result<Self, String> {
        let (program, args) = params
            .command
            .split_first()
            .ok_or("params.command: name the program to run, e.g. [\"python3\", \"plugin.py\"]")?;
        let hang_after = humantime::parse_duration(&params.timeout).map_err(|e| {
            format!(
                "params.timeout: {:?} is not a duration: {e}",
                params.timeout
            )
        })?;
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let program_path = Path::new(program);
        let program = if program_path.components().count() > 1 && program_path.is_relative() {
            dir.join(program_path)
        } else {
            program_path.to_path_buf()
        };
        Ok(Self {
            builder: KlineBuilder::new(common.interval).map_err(|e| e.to_string())?,
            launch: Arc::new(Launch {
                program,
                args: args.to_vec(),
                dir,
                hang_after,
                label: format!("{}/{}", common.name, common.symbol),
            }),
            common,
            params,
            seen: 0,
            last_ms: 0,
            link: None,
            dropped: 0,
        })
    }

    /// Queues one line for the plugin, starting it first if needed.
    fn send(&mut self, line: String) {
        if self.link.is_none() {
            let hello = protocol::hello(&self.common, &self.params.settings);
            self.link = supervisor::start(self.launch.clone(), hello, QUEUE);
        }
        let Some(events) = self.link.as_ref().and_then(|l| l.events.as_ref()) else {
            return;
        };
        let sent = match events.try_send(line) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(line)) if LOSSLESS.load(Ordering::Relaxed) => {
                events.blocking_send(line).is_ok()
            }
            Err(_) => false,
        };
        if !sent {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(plugin = %self.launch.label, dropped = self.dropped, "plugin is not keeping up; events dropped");
            }
        }
    }

    fn candle(&mut self, kline: &Kline, history: bool) {
        self.seen += 1;
        let line = protocol::candle(&self.common.symbol, kline, history);
        self.send(line);
    }
}

impl Strategy for Exec {
    fn common(&self) -> &Common {
        &self.common
    }

    fn streams(&self) -> Vec<String> {
        let mut streams = vec![self.common.trade_stream()];
        if self.params.book {
            streams.push(format!("{}@bookTicker", self.common.symbol.to_lowercase()));
        }
        streams
    }

    fn warmup(&self) -> usize {
        self.params.warmup
    }

    fn on_history(&mut self, kline: &Kline) {
        if kline.interval != self.common.interval {
            return;
        }
        if kline.closed {
            self.candle(kline, true);
        } else {
            self.builder.seed(kline.clone());
        }
    }

    fn on_event(&mut self, event: &MarketEvent, _out: &mut Vec<Signal>) {
        self.last_ms = event.exchange_time_ms;
        let closed = match &event.kind {
            MarketEventKind::AggTrade(t) => self.builder.push_agg(t),
            MarketEventKind::Trade(t) => self.builder.push_trade(t),
            _ => None,
        };
        if let Some(kline) = closed {
            self.candle(&kline, false);
        }
        let line = match &event.kind {
            MarketEventKind::AggTrade(_) | MarketEventKind::Trade(_) if self.params.trades => {
                protocol::trade(event)
            }
            MarketEventKind::BookTicker(_) if self.params.book => protocol::book(event),
            _ => None,
        };
        if let Some(line) = line {
            self.send(line);
        }
    }

    /// The engine routes a reconnect here, not to `on_event`: the plugin hears of it.
    fn on_reconnect(&mut self) {
        if let Some(line) = protocol::marker("reconnected", &self.common.symbol) {
            self.send(line);
        }
    }

    fn on_gap(&mut self) {
        self.builder.reset();
        self.seen = 0;
        self.common.cooldown.reset();
        if let Some(line) = protocol::marker("gap", &self.common.symbol) {
            self.send(line);
        }
    }

    fn poll(&mut self, out: &mut Vec<Signal>) {
        let Some(link) = &mut self.link else {
            return;
        };
        while let Ok(s) = link.signals.try_recv() {
            if self.seen < self.params.warmup {
                continue; // not warmed up yet: the plugin's opinion is premature
            }
            let time_ms = s.timestamp.map_or(self.last_ms, |t| t * 1000);
            out.extend(self.common.signal(s.side, s.price, time_ms, s.reason));
        }
    }

    fn close(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let link = self.link.as_mut()?;
        // The supervisor writes what is queued, closes the plugin's stdin and waits for it.
        link.events = None;
        link.done.take()
    }

    fn finish(&mut self, out: &mut Vec<Signal>) {
        let Some(link) = &mut self.link else {
            return;
        };
        // Closing the queue closes the plugin's stdin; it answers the rest and exits.
        link.events = None;
        let mut rest = Vec::new();
        while let Some(s) = link.signals.blocking_recv() {
            rest.push(s);
        }
        for s in rest {
            let time_ms = s.timestamp.map_or(self.last_ms, |t| t * 1000);
            out.extend(self.common.signal(s.side, s.price, time_ms, s.reason));
        }
        if self.dropped > 0 {
            tracing::warn!(plugin = %self.launch.label, dropped = self.dropped, "events the plugin never saw");
        }
    }
}
