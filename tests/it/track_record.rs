//! The track record of `sigcast backtest`: `report.json`'s figures and trades, the flags and
//! a definition's `[strategy.ledger]` over the defaults, and the figures recomputed on their
//! own by `tests/e2e/track_record.py` (numpy) from the signals and the equity curve.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every built-in kind on futures BTCUSDT, and `f-ma-flip`: `f-ma` again, traded long and
/// short without fees by its own `[strategy.ledger]`.
fn signals(dir: &Path) -> PathBuf {
    let signals = dir.join("signals");
    std::fs::create_dir_all(&signals).unwrap();
    let mut text =
        std::fs::read_to_string(root().join("tests/data/backtest_signals.toml")).unwrap();
    text.push_str(
        "[[strategy]]\nname = \"f-ma-flip\"\nkind = \"ma_cross\"\nmarket = \"futures\"\nsymbol = \"BTCUSDT\"\ninterval = \"1s\"\n[strategy.params]\nfast = 3\nslow = 8\n[strategy.ledger]\npositions = \"long_short\"\nfee_bps = 0\n",
    );
    std::fs::write(signals.join("all.toml"), text).unwrap();
    signals
}

fn backtest(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let data = root().join("../shared/data/binance/usdm_btcusdt_20240808.gz");
    backtest_of(&data, &signals(dir), out, extra)
}

/// `sigcast backtest` over `data` with the definitions in `signals`, writing to `out`.
fn backtest_of(data: &Path, signals: &Path, out: &Path, extra: &[&str]) -> Output {
    common::sigcast_command()
        .args(["backtest", "--data"])
        .arg(data)
        .arg("--signals")
        .arg(signals)
        .arg("--out")
        .arg(out)
        .args(extra)
        .current_dir(out.parent().unwrap())
        .output()
        .unwrap()
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strategy<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["strategy"] == name)
        .unwrap_or_else(|| panic!("no {name} in the report"))
}

const FIGURES: [&str; 24] = [
    "closed_trades",
    "open_trades",
    "win_rate_pct",
    "avg_trade_return_pct",
    "median_trade_return_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "total_return_pct",
    "annualized_return_pct",
    "realized_pnl",
    "unrealized_pnl",
    "profit_factor",
    "expectancy",
    "expectancy_ratio",
    "longest_win_streak",
    "longest_loss_streak",
    "max_drawdown_pct",
    "max_drawdown_duration_s",
    "sharpe",
    "sortino",
    "calmar",
    "exposure_pct",
    "buy_and_hold_pct",
    "span_s",
];

/// Runs the independent check over `out`, when the e2e Python is there.
fn recompute(out: &Path) {
    let Some(python) = common::e2e_tool("SIGCAST_E2E_PYTHON") else {
        return;
    };
    let run = std::process::Command::new(python)
        .arg(root().join("tests/e2e/track_record.py"))
        .arg(out)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&run.stdout).to_string() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{said}");
    assert!(said.contains("agree"), "{said}");
}

#[test]
fn the_backtest_writes_its_track_record() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let run = backtest(tmp.path(), &out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("track record") && stdout.contains("report.json"),
        "{stdout}"
    );
    let report = json(out.join("report.json"));
    let signals: Vec<Value> = std::fs::read_to_string(out.join("signals.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_seq = |seq: &Value| -> &Value { &signals[seq.as_u64().unwrap() as usize - 1] };
    assert_eq!(report["strategies"].as_array().unwrap().len(), 8);
    for s in report["strategies"].as_array().unwrap() {
        for figure in FIGURES {
            assert!(
                s["figures"].get(figure).is_some(),
                "{}: no {figure}",
                s["strategy"]
            );
        }
        assert_eq!(s["symbols"][0]["symbol"], "BTCUSDT");
        assert!(s["equity"].as_array().unwrap().len() >= 2);
        // Every trade opens and closes on signals of its own strategy, in order.
        for t in s["trades"].as_array().unwrap() {
            let entry = by_seq(&t["entry_seq"]);
            assert_eq!(entry["content"]["strategy"], s["strategy"]);
            if let Some(exit) = t["exit_seq"].as_u64() {
                assert!(exit > t["entry_seq"].as_u64().unwrap());
                assert_eq!(by_seq(&t["exit_seq"])["content"]["strategy"], s["strategy"]);
            }
        }
    }
    // The defaults: long only, 10 bps a side, 2 bps slippage; every entry is a buy's fill.
    let ma = strategy(&report, "f-ma");
    assert_eq!(ma["settings"]["positions"], "long_only");
    for t in ma["trades"].as_array().unwrap() {
        assert_eq!(t["direction"], "long");
        let price = by_seq(&t["entry_seq"])["content"]["price"]
            .as_f64()
            .unwrap();
        let fill = t["entry_price"].as_f64().unwrap();
        assert!((fill - price * 1.0002).abs() < 1e-6, "{fill} vs {price}");
        assert!((t["entry_fee"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    }
    // Its own [strategy.ledger]: long and short, no fee.
    let flip = strategy(&report, "f-ma-flip");
    assert_eq!(flip["settings"]["positions"], "long_short");
    assert_eq!(flip["settings"]["fee_bps"], 0.0);
    assert!(
        flip["trades"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["direction"] == "short")
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Track record"));
    assert_eq!(
        html.matches("class=\"equity\"").count(),
        8,
        "an equity curve each"
    );
    assert_eq!(
        html.matches("class=\"drawdown\"").count(),
        8,
        "a drawdown chart each"
    );
    recompute(&out);
}

#[test]
fn flags_win_over_the_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let flags = [
        "--positions",
        "long_short",
        "--fee-bps",
        "0",
        "--slippage-bps",
        "0",
    ];
    let run = backtest(tmp.path(), &out, &flags);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = json(out.join("report.json"));
    for s in report["strategies"].as_array().unwrap() {
        assert_eq!(
            s["settings"]["positions"], "long_short",
            "{}",
            s["strategy"]
        );
        assert_eq!(s["settings"]["fee_bps"], 0.0);
    }
    // f-ma and f-ma-flip are the same strategy now traded the same way.
    let (ma, flip) = (strategy(&report, "f-ma"), strategy(&report, "f-ma-flip"));
    assert_eq!(ma["figures"], flip["figures"]);
    recompute(&out);

    let bad = backtest(tmp.path(), &out, &["--fee-bps", "-1"]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--fee-bps: expected 0 to 1000 basis points"),
        "{stderr}"
    );
}

/// With spot BTCUSDT in the same run, the futures strategies are still marked by futures
/// prices alone: their trades, buy-and-hold and final return equal a futures-only run's.
/// (Spot's prices are about 0.1 % off futures' on this tape.)
#[test]
fn futures_strategies_are_marked_by_futures_prices_beside_spot() {
    let tmp = tempfile::tempdir().unwrap();
    let (alone, beside) = (tmp.path().join("alone"), tmp.path().join("beside"));
    let run = backtest(tmp.path(), &alone, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let spot = root().join("../shared/data/binance/spot_btcusdt_20240808.gz");
    let run = backtest(tmp.path(), &beside, &["--data", spot.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (alone, beside) = (
        json(alone.join("report.json")),
        json(beside.join("report.json")),
    );
    for s in alone["strategies"].as_array().unwrap() {
        let name = s["strategy"].as_str().unwrap();
        let other = strategy(&beside, name);
        assert_eq!(other["symbols"][0]["market"], "futures", "{name}");
        assert_eq!(other["trades"], s["trades"], "{name}");
        for figure in ["buy_and_hold_pct", "total_return_pct", "unrealized_pnl"] {
            assert_eq!(
                other["figures"][figure], s["figures"][figure],
                "{name}: {figure}"
            );
        }
    }
}

#[test]
fn a_bad_ledger_table_is_named_by_config_check() {
    let tmp = tempfile::tempdir().unwrap();
    let signals = tmp.path().join("signals");
    std::fs::create_dir_all(&signals).unwrap();
    std::fs::write(
        signals.join("a.toml"),
        "[[strategy]]\nname = \"x\"\nkind = \"rsi\"\nsymbol = \"BTCUSDT\"\ninterval = \"1m\"\n[strategy.ledger]\nfee_bps = 5000\n",
    )
    .unwrap();
    let run = common::sigcast_command()
        .args(["backtest", "--data"])
        .arg(root().join("../shared/data/binance/spot_btcusdt_20240808.gz"))
        .arg("--signals")
        .arg(&signals)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("strategy \"x\": ledger.fee_bps: expected 0 to 1000 basis points, got 5000"),
        "{stderr}"
    );
}

/// `GET /v1/performance` of a `serve` process, over TLS with `token`.
async fn performance(served: &common::served::Served, token: &str) -> (u16, Value) {
    let (status, _, body) =
        common::https_get(served.addr, &served.ca(), "/v1/performance", Some(token)).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The record once `strategies` strategies are in it and it holds still (the market has
/// played to its end).
async fn settled(served: &common::served::Served, token: &str, strategies: usize) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, now) = performance(served, token).await;
        assert_eq!(status, 200, "{now}");
        if now["strategies"].as_array().map(Vec::len) == Some(strategies) && now == last {
            break;
        }
        last = now;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    last
}

/// The closed trades of `strategy` in a record.
fn closed(record: &Value, name: &str) -> Vec<Value> {
    strategy(record, name)["trades"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["exit_seq"].is_null())
        .cloned()
        .collect()
}

/// After a kill and a restart on the same data directory, with no new market data, the
/// record holds the same closed trades and realized P&L, rebuilt from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_the_record_from_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let tape = root().join("../shared/data/binance/usdm_btcusdt_20240808.gz");
    let dir = signals(tmp.path());
    let replay = |delay: &'static str| {
        vec![
            ("source.kind", "replay".to_string()),
            ("source.replay", tape.display().to_string()),
            ("source.replay_speed", "max".to_string()),
            ("source.replay_delay", delay.to_string()),
            ("signals.dir", dir.display().to_string()),
        ]
    };
    let settings = replay("0s");
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let served = common::served::Served::start(&settings);
    let token = served.token("trader");
    let before = settled(&served, &token, 8).await;
    let material = served.kill();
    // Offline, from the journal: the same closed trades.
    let offline = common::sigcast_command()
        .args(["performance", "--json", "--journal"])
        .arg(material.path("data/sigcast.db"))
        .arg("--config")
        .arg(material.path("sigcast.toml"))
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let offline: Value = serde_json::from_slice(&offline.stdout).unwrap();
    // And from the journal's export, the same record.
    let export = common::sigcast_command()
        .args(["journal", "export", "--config"])
        .arg(material.path("sigcast.toml"))
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported = tmp.path().join("export.jsonl");
    std::fs::write(&exported, &export.stdout).unwrap();
    let from_export = common::sigcast_command()
        .args(["performance", "--json", "--export"])
        .arg(&exported)
        .arg("--config")
        .arg(material.path("sigcast.toml"))
        .output()
        .unwrap();
    let from_export: Value = serde_json::from_slice(&from_export.stdout).unwrap();
    // The equity samples, but for the closing point at the latest mark.
    let curve = |record: &Value, name: &str| {
        let mut equity = strategy(record, name)["equity"].as_array().unwrap().clone();
        equity.pop();
        equity
    };
    for s in before["strategies"].as_array().unwrap() {
        let name = s["strategy"].as_str().unwrap();
        // An export holds the signals alone: the same closed trades; a coarser curve, and
        // open trades marked at the last signal's price.
        assert_eq!(
            closed(&from_export, name),
            closed(&offline, name),
            "{name}: an export's trades are the journal's"
        );
        // The journal's checkpoints give the samples the server took live.
        assert!(
            curve(&before, name).len() >= 5,
            "{name}: a sample a minute of the tape"
        );
        assert_eq!(
            curve(&offline, name),
            curve(&before, name),
            "{name}: offline equity samples"
        );
        let all = strategy(&offline, name)["trades"]
            .as_array()
            .unwrap()
            .clone();
        let closed_offline: Vec<Value> = all
            .into_iter()
            .filter(|t| !t["exit_seq"].is_null())
            .collect();
        let latest = &closed_offline[closed_offline
            .len()
            .saturating_sub(closed(&before, name).len())..];
        assert_eq!(
            latest,
            closed(&before, name).as_slice(),
            "{name}: offline trades"
        );
    }
    // Nothing plays within the test: the record is the journal's alone.
    let settings = replay("1h");
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let served = common::served::Served::start_with(material, &settings);
    let after = settled(&served, &served.token("trader"), 8).await;
    for s in before["strategies"].as_array().unwrap() {
        let name = s["strategy"].as_str().unwrap();
        let (was, is) = (&s["figures"], &strategy(&after, name)["figures"]);
        assert_eq!(was["closed_trades"], is["closed_trades"], "{name}");
        let (a, b) = (
            was["realized_pnl"].as_f64().unwrap(),
            is["realized_pnl"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{name}: realized {a} then {b}");
        assert_eq!(
            closed(&before, name),
            closed(&after, name),
            "{name}: trades"
        );
        // The equity samples are the ones taken live, from the checkpoints kept beside the
        // journal.
        assert_eq!(
            curve(&before, name),
            curve(&after, name),
            "{name}: equity samples"
        );
    }
    assert!(
        served
            .log_text()
            .contains("track record rebuilt from the journal")
    );
}

/// `live` (`GET /v1/performance`) holds every strategy of `expected` (a backtest's
/// report.json) with the same rules, figures, per-symbol figures, equity curve and latest 100
/// trades, exactly.
fn assert_same_record(live: &Value, expected: &Value) {
    for want in expected["strategies"].as_array().unwrap() {
        let name = want["strategy"].as_str().unwrap();
        let got = strategy(live, name);
        for part in ["settings", "figures", "symbols", "equity"] {
            assert_eq!(got[part], want[part], "{name}: {part}");
        }
        let trades = want["trades"].as_array().unwrap();
        let latest = &trades[trades.len().saturating_sub(100)..];
        assert_eq!(
            got["trades"].as_array().unwrap().as_slice(),
            latest,
            "{name}: trades"
        );
    }
}

/// The live path itself: `sigcast serve` follows a Binance mock playing the recorded USD-M
/// BTCUSDT trades (as aggTrades, which candle strategies follow) over WebSocket, and its
/// track record equals `sigcast backtest`'s over the same messages, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_track_record_over_the_binance_mock_equals_the_backtest() {
    use common::binance_mock::{MockBinance, Settings, Tape};
    let tmp = tempfile::tempdir().unwrap();
    let recording = root().join("../shared/data/binance/usdm_btcusdt_20240808.gz");
    let tape = Tape::from_recordings(&[&recording]).trades_as_agg_trades();
    let total = tape.entries.len();
    assert!(total > 20_000, "{total} trades");
    let data = tmp.path().join("tape.jsonl");
    tape.write_recording(&data);
    // The candle strategies of the other tests (the book ones follow streams the recording
    // holds for another day).
    let dir = tmp.path().join("candles");
    std::fs::create_dir_all(&dir).unwrap();
    let all = std::fs::read_to_string(signals(tmp.path()).join("all.toml")).unwrap();
    let candles: Vec<&str> = all
        .split("[[strategy]]")
        .filter(|b| b.contains("name =") && !b.contains("book_imbalance"))
        .collect();
    std::fs::write(
        dir.join("candles.toml"),
        format!("[[strategy]]{}", candles.join("[[strategy]]")),
    )
    .unwrap();
    let out = tmp.path().join("report");
    let run = backtest_of(&data, &dir, &out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected = json(out.join("report.json"));
    let n = expected["strategies"].as_array().unwrap().len();
    assert_eq!(n, candles.len(), "every strategy traded");

    let mock = MockBinance::start(tape, Settings::default()).await;
    let mut settings: Vec<(&str, String)> = mock.sigcast_settings();
    settings.push(("signals.dir", dir.display().to_string()));
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let served = common::served::Served::start(&settings);
    let token = served.token("trader");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while mock.stats().subscribe_requests == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sigcast never subscribed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    mock.play(5_000);
    mock.wait_played(total).await;
    let live = settled(&served, &token, n).await;
    assert_same_record(&live, &expected);
}

/// The same tape and strategies through `sigcast serve` (a replay) give the same track
/// record as `sigcast backtest`: every strategy's rules, figures, per-symbol figures, equity
/// curve and latest trades, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_track_record_equals_the_backtest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let run = backtest(tmp.path(), &out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let expected = json(out.join("report.json"));
    let tape = root().join("../shared/data/binance/usdm_btcusdt_20240808.gz");
    let dir = signals(tmp.path());
    let served = common::served::Served::start(&[
        ("source.kind", "replay"),
        ("source.replay", tape.to_str().unwrap()),
        ("source.replay_speed", "max"),
        ("signals.dir", dir.to_str().unwrap()),
    ]);
    let token = served.token("trader");
    let (status, refused) = performance(&served, "not-a-token").await;
    assert_eq!(status, 401, "{refused}");
    let live = settled(&served, &token, 8).await;
    assert_same_record(&live, &expected);
    // A token scoped to one strategy sees that one only.
    let scoped = served.token_scoped(
        "one",
        &sigcast::auth::Scope {
            strategies: Some(vec!["f-ma-flip".into()]),
            ..Default::default()
        },
    );
    let (_, one) = performance(&served, &scoped).await;
    assert_eq!(one["strategies"].as_array().unwrap().len(), 1);
    assert_eq!(one["strategies"][0]["strategy"], "f-ma-flip");
    // `sigcast performance` asks the server and prints the same figures as a table.
    let addr = served.addr;
    let ca = served.ca();
    let asked = tokio::task::spawn_blocking(move || {
        common::sigcast_command()
            .args([
                "performance",
                "--url",
                &format!("https://localhost:{}", addr.port()),
            ])
            .arg("--ca")
            .arg(ca)
            .env("SIGCAST_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&asked.stdout);
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("f-ma "))
        .unwrap_or_else(|| panic!("{table}"));
    let ma = &strategy(&expected, "f-ma")["figures"];
    assert_eq!(
        row.split_whitespace().nth(1),
        Some(ma["closed_trades"].to_string().as_str()),
        "{table}"
    );
    let metrics = served.metrics();
    assert!(
        metrics.contains(&format!(
            "sigcast_track_closed_trades{{strategy=\"f-ma\"}} {}",
            ma["closed_trades"]
        )),
        "{metrics}"
    );
}
