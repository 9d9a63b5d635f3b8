//! `kind = "exec"` plugins: the shipped Python example gives signals, and a plugin that
//! crashes, hangs or writes garbage is restarted while other strategies carry on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sigcast::market::{AggTrade, Decimal, Market, MarketEvent, MarketEventKind};
use sigcast::strategy::{Engine, Signal, definition};

/// An aggTrade of BTCUSDT at second `sec`.
fn trade(sec: i64, price: f64) -> MarketEvent {
    MarketEvent {
        market: Market::Spot,
        symbol: "BTCUSDT".into(),
        exchange_time_ms: sec * 1000,
        received_at: SystemTime::now(),
        kind: MarketEventKind::AggTrade(AggTrade {
            id: sec as u64,
            price: Decimal::try_from(price).unwrap(),
            quantity: Decimal::ONE,
            first_trade_id: sec as u64,
            last_trade_id: sec as u64,
            time_ms: sec * 1000,
            buyer_is_maker: false,
        }),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `text` as `name` in `dir` and loads that directory.
fn load(dir: &Path, name: &str, text: &str) -> Engine {
    std::fs::write(dir.join(name), text).unwrap();
    Engine::new(definition::load(dir, None).unwrap())
}

/// Polls until `n` signals arrived or `limit` passed.
async fn collect(engine: &mut Engine, n: usize, limit: Duration) -> Vec<Signal> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        engine.poll(&mut out);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_plugin_gives_signals() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("plugins")).unwrap();
    std::fs::copy(
        repo().join("signals/plugins/breakout.py"),
        tmp.path().join("plugins/breakout.py"),
    )
    .unwrap();
    let text = std::fs::read_to_string(repo().join("signals/plugin.toml"))
        .unwrap()
        .replace("enabled = false", "enabled = true");
    let mut engine = load(tmp.path(), "plugin.toml", &text);
    let mut out = Vec::new();
    // Six flat candles, then a jump: a breakout above the last five closes.
    for (sec, price) in [100., 100., 100., 100., 100., 100., 110., 111.]
        .iter()
        .enumerate()
    {
        engine.on_event(&trade(sec as i64, *price), &mut out);
    }
    let signals = collect(&mut engine, 1, Duration::from_secs(20)).await;
    assert_eq!(signals.len(), 1, "{signals:?}");
    let s = &signals[0];
    assert_eq!((s.side.as_str(), s.price, s.timestamp), ("buy", 110.0, 7));
    assert_eq!(s.strategy, "py-breakout");
    assert_eq!(s.reason, "close above the last 5 closes");
}

/// A shell plugin that notes each start in `starts.log`, then does `body`.
fn broken(dir: &Path, body: &str, extra: &str) -> String {
    std::fs::write(
        dir.join("plugin.sh"),
        format!("#!/bin/sh\necho start >> starts.log\n{body}\n"),
    )
    .unwrap();
    format!(
        "[[strategy]]\nname = \"broken\"\nkind = \"exec\"\nsymbol = \"BTCUSDT\"\ninterval = \"1s\"\n[strategy.params]\ncommand = [\"sh\", \"plugin.sh\"]\n{extra}\n\
         [[strategy]]\nname = \"builtin\"\nkind = \"ma_cross\"\nsymbol = \"BTCUSDT\"\ninterval = \"1s\"\n[strategy.params]\nfast = 1\nslow = 2\n"
    )
}

fn starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("starts.log"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Feeds a zig-zag for `secs` seconds of market time and returns the built-in's signals;
/// feeding never waits for the broken plugin.
async fn run_beside(engine: &mut Engine, dir: &Path, want_starts: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut builtin = 0;
    let mut sec = 0;
    while starts(dir) < want_starts {
        assert!(
            Instant::now() < deadline,
            "plugin restarted {} times only",
            starts(dir)
        );
        let mut out = Vec::new();
        let began = Instant::now();
        for _ in 0..200 {
            let price = if sec % 2 == 0 { 100.0 } else { 101.0 };
            engine.on_event(&trade(sec, price), &mut out);
            sec += 1;
        }
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "the engine waited on the plugin"
        );
        builtin += out.iter().filter(|s| s.strategy == "builtin").count();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    builtin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_plugin_is_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = load(tmp.path(), "s.toml", &broken(tmp.path(), "exit 3", ""));
    assert!(
        run_beside(&mut engine, tmp.path(), 3).await > 0,
        "others carry on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_writing_garbage_is_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "echo 'this is not JSON'\nsleep 60";
    let mut engine = load(tmp.path(), "s.toml", &broken(tmp.path(), body, ""));
    assert!(
        run_beside(&mut engine, tmp.path(), 3).await > 0,
        "others carry on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_plugin_is_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    // Never reads its input: once the pipe is full, writes stall past the timeout.
    let extra = "trades = true\ntimeout = \"300ms\"";
    let mut engine = load(tmp.path(), "s.toml", &broken(tmp.path(), "sleep 60", extra));
    assert!(
        run_beside(&mut engine, tmp.path(), 2).await > 0,
        "others carry on"
    );
}

/// A plugin that closes its output and only records what it is given (here `cat` into a
/// file) still gets every event; once it exits, it is restarted like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_without_output_gets_every_event_and_its_exit_is_noticed() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = "trades = true";
    // `exec` keeps the shell's pid: the one to kill later.
    let body = "echo $$ > plugin.pid\nexec cat >> events.jsonl";
    let mut engine = load(tmp.path(), "s.toml", &broken(tmp.path(), body, extra));
    let mut out = Vec::new();
    for sec in 0..50 {
        engine.on_event(&trade(sec, 100.0 + sec as f64), &mut out);
        if sec == 0 {
            // Live pace: the plugin is up and its output's end seen before more events come.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let file = tmp.path().join("events.jsonl");
    let trades = || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"trade\""))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while trades() < 50 {
        assert!(Instant::now() < deadline, "only {} of 50 trades", trades());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(r#""id":49,"#),
        "trades carry their id: {text}"
    );
    // Its exit (killed from outside) is noticed without any output: it starts again.
    assert_eq!(starts(tmp.path()), 1);
    let pid = std::fs::read_to_string(tmp.path().join("plugin.pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(killed.success());
    run_beside(&mut engine, tmp.path(), 2).await;
}

/// A reconnect of the market source reaches an exec plugin as `{"type":"reconnected"}`, as
/// docs/strategies.md's plugin table says (the engine routes reconnects apart from other events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_hears_of_a_reconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "exec cat >> events.jsonl";
    let mut engine = load(tmp.path(), "s.toml", &broken(tmp.path(), body, ""));
    let mut out = Vec::new();
    engine.on_event(&trade(0, 100.0), &mut out);
    let reconnected = MarketEvent {
        kind: MarketEventKind::Reconnected,
        ..trade(1, 100.0)
    };
    engine.on_event(&reconnected, &mut out);
    let file = tmp.path().join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"reconnected\"")) {
            assert!(line.contains("\"BTCUSDT\""), "names its symbol: {line}");
            break;
        }
        assert!(Instant::now() < deadline, "no reconnected line: {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
