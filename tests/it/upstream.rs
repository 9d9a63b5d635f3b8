//! The live Binance upstream against the Binance-compatible mock, fed with real recordings.
//! Each test asserts the exact aggTrade id sequence the strategies receive: every id of the
//! tape, once, in order, whatever the mock does to the connection.
//!
//! About 700 lines: each fault of the mock (drops, stalls, gaps, limits) is a test with its
//! own exact-sequence check; they share the tape and the helpers that read it.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::binance_mock::{MockBinance, Settings, Tape};
use sigcast::config::BinanceSettings;
use sigcast::market::binance::live;
use sigcast::market::{Gap, Market, MarketEvent, MarketEventKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn recording(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/binance")
        .join(name)
}

/// USD-M futures: aggTrade, kline_1m, depth@100ms and bookTicker of eight symbols.
fn futures_tape() -> Tape {
    Tape::from_recordings(&[
        &recording("usdm_multi_2021-04-17.cryptofeed.txt"),
        &recording("usdm_multi_2021-07-22.cryptofeed.txt"),
    ])
}

/// Upstream settings pointing at the mock, with quick recovery for tests.
fn upstream(mock: &MockBinance) -> BinanceSettings {
    BinanceSettings {
        spot_ws: mock.ws_base(),
        futures_ws_public: format!("{}/public", mock.ws_base()),
        futures_ws_market: format!("{}/market", mock.ws_base()),
        spot_rest: mock.rest_base(),
        futures_rest: mock.rest_base(),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        watchdog: Duration::from_secs(30),
        ..BinanceSettings::default()
    }
}

/// What the strategies were given.
#[derive(Default, Debug)]
struct Seen {
    agg_ids: HashMap<String, Vec<u64>>,
    /// Open times of the final (closed) klines, per symbol, in arrival order.
    closed_klines: HashMap<String, Vec<i64>>,
    reconnects: usize,
    gaps: Vec<(String, Gap)>,
}

impl Seen {
    fn record(&mut self, e: MarketEvent) {
        if std::env::var_os("SIGCAST_TRACE_EVENTS").is_some() {
            eprintln!("event: {} {:?}", e.symbol, e.kind);
        }
        match e.kind {
            MarketEventKind::AggTrade(t) => self
                .agg_ids
                .entry(e.symbol.to_string())
                .or_default()
                .push(t.id),
            MarketEventKind::Kline(k) if k.closed => self
                .closed_klines
                .entry(e.symbol.to_string())
                .or_default()
                .push(k.open_time_ms),
            MarketEventKind::Reconnected => self.reconnects += 1,
            MarketEventKind::Gap(g) => self.gaps.push((e.symbol.to_string(), g)),
            _ => {}
        }
    }

    fn agg_gaps(&self) -> usize {
        self.gaps
            .iter()
            .filter(|(_, g)| g.stream == "aggTrade")
            .count()
    }
}

/// Reads events until `done` says so (checked as events arrive) or a minute passes, then
/// 500 ms more, so a late duplicate would still show.
async fn collect_until(
    rx: &mut mpsc::Receiver<MarketEvent>,
    mut done: impl FnMut(&Seen, Instant) -> bool,
) -> Seen {
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_trade = Instant::now();
    while Instant::now() < deadline && !done(&seen, last_trade) {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            if matches!(e.kind, MarketEventKind::AggTrade(_)) {
                last_trade = Instant::now();
            }
            seen.record(e);
        }
    }
    let drain_until = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(e)) = tokio::time::timeout_at(drain_until, rx.recv()).await {
        seen.record(e);
    }
    seen
}

/// Until every symbol has at least the tape's count of aggTrades.
async fn collect(rx: &mut mpsc::Receiver<MarketEvent>, mock: &MockBinance) -> Seen {
    let expected = mock.tape().agg_ids();
    collect_until(rx, |seen, _| {
        mock.finished()
            && expected
                .iter()
                .all(|(s, ids)| seen.agg_ids.get(s).map_or(0, Vec::len) >= ids.len())
    })
    .await
}

/// Until the tape has played and no aggTrade came for 3 s (for runs that lose data on purpose).
async fn collect_quiet(rx: &mut mpsc::Receiver<MarketEvent>, mock: &MockBinance) -> Seen {
    collect_until(rx, |_, last_trade| {
        mock.finished() && last_trade.elapsed() > Duration::from_secs(3)
    })
    .await
}

/// Every symbol's ids exactly as on the tape: none missing, none doubled, in order.
fn assert_exact(seen: &Seen, mock: &MockBinance) {
    let expected = mock.tape().agg_ids();
    assert!(!expected.is_empty());
    for (symbol, ids) in &expected {
        let got = seen.agg_ids.get(symbol).cloned().unwrap_or_default();
        assert_eq!(
            &got, ids,
            "{symbol}: the strategy's aggTrade ids differ from the tape"
        );
    }
}

/// Every symbol's ids form the tape's sequence from the first id the client saw to the end:
/// nothing missing after that, nothing doubled. (Trades made before a client ever saw a
/// symbol are history for warm-up, not a gap.)
fn assert_complete_from_first_seen(seen: &Seen, mock: &MockBinance) {
    for (symbol, ids) in mock.tape().agg_ids() {
        let got = seen.agg_ids.get(&symbol).cloned().unwrap_or_default();
        let first = *got
            .first()
            .unwrap_or_else(|| panic!("{symbol}: nothing seen"));
        let start = ids
            .iter()
            .position(|id| *id == first)
            .expect("first id is on the tape");
        assert_eq!(
            got,
            ids[start..],
            "{symbol}: ids after the first seen differ from the tape"
        );
    }
}

/// Starts the live upstream for every stream on the tape; its events, its stop, and the
/// counters it keeps for the metrics.
fn start(
    mock: &MockBinance,
    settings: BinanceSettings,
) -> (
    mpsc::Receiver<MarketEvent>,
    CancellationToken,
    std::sync::Arc<sigcast::market::SourceStats>,
) {
    let streams: Vec<(Market, String)> = mock
        .tape()
        .streams()
        .into_iter()
        .map(|s| (mock.tape().market, s))
        .collect();
    let stop = CancellationToken::new();
    let stats = std::sync::Arc::new(sigcast::market::SourceStats::default());
    let (_upstream, rx) =
        live::spawn(settings, &streams, vec![], stats.clone(), stop.clone()).unwrap();
    (rx, stop, stats)
}

/// Waits until the mock has seen `n` connections subscribe.
async fn wait_connections(mock: &MockBinance, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.stats().subscribe_requests < n || mock.stats().connections < n {
        assert!(Instant::now() < deadline, "only {:?}", mock.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_reconnects_resubscribes_and_backfills_every_trade() {
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let (mut rx, stop, source) = start(&mock, upstream(&mock));
    wait_connections(&mock, 2).await; // futures /market and /public shards
    let total = mock.tape().entries.len();
    mock.play(2000);
    mock.wait_played(total / 3).await;
    mock.stop();
    tokio::time::sleep(Duration::from_millis(500)).await; // trades keep happening meanwhile
    mock.restart().await;
    let seen = collect(&mut rx, &mock).await;
    let counted = source.snapshot(); // what /metrics shows of it, before stopping
    stop.cancel();

    assert_exact(&seen, &mock);
    let stats = mock.stats();
    assert!(stats.connections >= 4, "both shards reconnected: {stats:?}");
    assert!(seen.reconnects > 0, "strategies were told of the reconnect");
    assert!(
        stats.rest_requests > 0,
        "missed trades came from REST backfill"
    );
    assert_eq!(seen.agg_gaps(), 0, "{:?}", seen.gaps);
    assert_eq!((counted.planned, counted.connected), (2, 2), "{counted:?}");
    assert!(counted.reconnects >= 2, "{counted:?}");
    assert!(
        counted.gaps_backfilled >= 1,
        "the outage's trades: {counted:?}"
    );
    let unfilled = seen.gaps.len() as u64; // other kinds (depth) cannot be backfilled
    assert_eq!(
        counted.gaps_detected,
        counted.gaps_backfilled + unfilled,
        "{counted:?} {:?}",
        seen.gaps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_stream_trips_the_watchdog() {
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let mut settings = upstream(&mock);
    settings.watchdog = Duration::from_millis(400);
    let (mut rx, stop, _stats) = start(&mock, settings);
    wait_connections(&mock, 2).await;
    let total = mock.tape().entries.len();
    mock.play(2000);
    mock.wait_played(total / 4).await;
    mock.set_silent(true); // connected, pinging, but no data
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = mock.stats().connections;
    mock.set_silent(false);
    let seen = collect_quiet(&mut rx, &mock).await;
    stop.cancel();

    assert!(
        during >= 4,
        "the watchdog reconnected silent shards: {during}"
    );
    assert!(seen.reconnects > 0);
    assert_complete_from_first_seen(&seen, &mock);
    // Symbols that traded before the silence lost nothing at all.
    let before_silence: Vec<&str> = mock.tape().entries[..total / 4]
        .iter()
        .filter_map(|e| e.agg.as_ref().map(|(s, _)| s.as_str()))
        .collect();
    assert!(!before_silence.is_empty());
    for symbol in before_silence {
        assert_eq!(
            seen.agg_ids[symbol],
            mock.tape().agg_ids()[symbol],
            "{symbol}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_loses_and_doubles_nothing() {
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let mut settings = upstream(&mock);
    settings.rotate_after = Duration::from_millis(600);
    let (mut rx, stop, source) = start(&mock, settings);
    wait_connections(&mock, 2).await;
    mock.play(1000); // ~5 s of feed: several rotations per shard
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();

    let stats = mock.stats();
    assert!(stats.connections >= 6, "shards rotated: {stats:?}");
    // Every connection the mock accepted is counted, but for one per shard that may have
    // been on its way when the source stopped.
    let counted = source.snapshot().connects;
    assert!(
        counted + 2 >= stats.connections as u64,
        "sigcast_upstream_connects_total counts rotations: {counted} of {}",
        stats.connections
    );
    assert_exact(&seen, &mock);
    assert_eq!(seen.reconnects, 0, "a rotation is not a reconnect");
    assert!(
        seen.gaps.is_empty(),
        "no gap of any stream: {:?}",
        seen.gaps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_500_streams_stays_under_the_message_limit() {
    // Spot: Binance allows 5 incoming messages per second, pongs included.
    let tape = Tape::from_recordings(&[&recording("spot_multi_2021-04-17.cryptofeed.txt")]);
    let mock = MockBinance::start(
        tape,
        Settings {
            message_limit: 5,
            ping_interval: Duration::from_secs(1),
            ..Settings::default()
        },
    )
    .await;
    let mut settings = upstream(&mock);
    settings.streams_per_connection = 1024;
    settings.subscribe_batch = 25; // 20 SUBSCRIBE requests for 500 streams
    let streams: Vec<(Market, String)> = (0..500)
        .map(|i| (Market::Spot, format!("sym{i}usdt@aggTrade")))
        .collect();
    let stop = CancellationToken::new();
    let _rx = live::spawn(settings, &streams, vec![], Default::default(), stop.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.stats().last_subscriptions.len() < 500 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            mock.stats().subscribe_requests
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Crash and restart: everything is resubscribed, again within the limit.
    let before = mock.stats().subscribe_requests;
    mock.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    mock.restart().await;
    while mock.stats().subscribe_requests < before + 20 {
        assert!(Instant::now() < deadline, "{:?}", mock.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // pongs keep coming
    stop.cancel();
    let stats = mock.stats();
    assert_eq!(
        stats.rate_closes, 0,
        "never closed for sending too fast: {stats:?}"
    );
    assert!(stats.max_messages_per_second <= 5, "{stats:?}");
    assert_eq!(stats.last_subscriptions.len(), 500);
    assert_eq!(stats.connections, 2);
    assert!(stats.pongs > 0, "pings were answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_survived() {
    let mock = MockBinance::start(
        futures_tape(),
        Settings {
            malformed_every: Some(7),
            ..Settings::default()
        },
    )
    .await;
    let (mut rx, stop, stats) = start(&mock, upstream(&mock));
    wait_connections(&mock, 2).await;
    mock.play(3000);
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();
    assert_exact(&seen, &mock);
    assert_eq!(mock.stats().connections, 2, "no reconnect over bad frames");
    assert_eq!(seen.reconnects, 0);
    let bad = mock.tape().entries.len() as u64 / 7;
    let counted = stats.snapshot().malformed;
    assert!(
        counted + 2 >= bad && counted > 0,
        "{counted} of about {bad} counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_history_becomes_an_explicit_gap() {
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let (mut rx, stop, stats) = start(&mock, upstream(&mock));
    wait_connections(&mock, 2).await;
    let total = mock.tape().entries.len();
    mock.play(2000);
    mock.wait_played(total / 3).await;
    mock.pause();
    mock.stop();
    // REST keeps no history at all: nothing missed can be recovered.
    mock.set_rest_history_from(u64::MAX);
    // Trades made during the outage, sent to no one; live trades follow the reconnect (the
    // feed waits for it, so a slow reconnect cannot let the tape run out first).
    mock.skip_to(mock.played() + total / 6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    mock.restart().await;
    wait_connections(&mock, 4).await;
    mock.play(2000);
    let seen = collect_quiet(&mut rx, &mock).await;
    stop.cancel();

    assert!(seen.agg_gaps() > 0, "the loss is reported: {:?}", seen.gaps);
    let counted = stats.snapshot();
    assert!(
        counted.gaps_detected > counted.gaps_backfilled,
        "unfilled gaps show in the metrics: {counted:?}"
    );
    for (symbol, ids) in &seen.agg_ids {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{symbol}: in order, none doubled"
        );
    }
}

/// `sigcast record` saves exactly what the upstream sent, per stream in order, in a file
/// the replay source reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_saves_every_message_for_replay() {
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("capture.jsonl");
    let streams = mock.tape().streams().join(",");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigcast"))
        .args([
            "record",
            "--market",
            "futures",
            "--streams",
            &streams,
            "--duration",
            "30s",
        ])
        .arg("--out")
        .arg(&out)
        .args([
            "--set",
            &format!("binance.futures_ws_market={}/market", mock.ws_base()),
        ])
        .args([
            "--set",
            &format!("binance.futures_ws_public={}/public", mock.ws_base()),
        ])
        .current_dir(tmp.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_connections(&mock, 2).await;
    mock.play(3000);
    let total = mock.tape().entries.len();
    mock.wait_played(total).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Ctrl-C ends the recording cleanly.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("recording: ") && stderr.contains("messages"),
        "progress shown: {stderr}"
    );

    let recorded: Vec<_> = sigcast::market::recording::RecordingReader::open(&out)
        .unwrap()
        .map(Result::unwrap)
        .filter(|r| r.text.starts_with("{\"stream\""))
        .collect();
    assert_eq!(recorded.len(), total, "every message once");
    assert!(
        recorded
            .iter()
            .all(|r| r.market == Market::Futures && r.received_ns > 0)
    );
    // Per stream, the same messages in the same order as sent.
    let mut sent: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &mock.tape().entries {
        sent.entry(e.stream.as_str())
            .or_default()
            .push(e.text.as_str());
    }
    let mut got: HashMap<String, Vec<&str>> = HashMap::new();
    for r in &recorded {
        let stream = r.text["{\"stream\":\"".len()..]
            .split('"')
            .next()
            .unwrap()
            .to_string();
        got.entry(stream).or_default().push(r.text.as_str());
    }
    for (stream, texts) in &sent {
        assert_eq!(
            got.get(*stream).map(Vec::as_slice),
            Some(texts.as_slice()),
            "{stream}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_notice_rotates_without_loss() {
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let (mut rx, stop, _stats) = start(&mock, upstream(&mock));
    wait_connections(&mock, 2).await;
    let total = mock.tape().entries.len();
    mock.play(1000);
    mock.wait_played(total / 3).await;
    mock.announce_shutdown();
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();
    assert!(
        mock.stats().connections >= 4,
        "each shard opened a replacement: {:?}",
        mock.stats()
    );
    assert_exact(&seen, &mock);
    assert_eq!(seen.reconnects, 0, "handled as a rotation, not a reconnect");
    assert!(seen.gaps.is_empty(), "{:?}", seen.gaps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_lifetime_cuts_are_recovered() {
    // Binance cuts every connection at 24 h; the mock does it every 700 ms.
    let mock = MockBinance::start(
        futures_tape(),
        Settings {
            lifetime: Some(Duration::from_millis(700)),
            ..Settings::default()
        },
    )
    .await;
    let (mut rx, stop, _stats) = start(&mock, upstream(&mock));
    wait_connections(&mock, 2).await;
    mock.play(1000);
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();
    assert!(mock.stats().connections >= 6, "{:?}", mock.stats());
    assert!(seen.reconnects > 0);
    assert_exact(&seen, &mock);
    assert_eq!(seen.agg_gaps(), 0, "{:?}", seen.gaps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_proxy_carries_streams_and_backfill() {
    let proxy = common::socks5::Socks5::start().await;
    let mock = MockBinance::start(futures_tape(), Settings::default()).await;
    let mut settings = upstream(&mock);
    settings.proxy = proxy.url();
    let (mut rx, stop, _stats) = start(&mock, settings);
    wait_connections(&mock, 2).await;
    let total = mock.tape().entries.len();
    mock.play(2000);
    mock.wait_played(total / 3).await;
    mock.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    mock.restart().await;
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();
    assert_exact(&seen, &mock);
    let stats = mock.stats();
    // Two shards twice, plus the REST backfill requests: all through the proxy.
    assert!(
        proxy.relayed() >= 4 + stats.rest_requests,
        "proxy relayed {} of {stats:?}",
        proxy.relayed()
    );
    assert!(stats.rest_requests > 0);
}

/// An aggTrade tape entry as Binance futures sends it.
fn agg_entry(symbol: &str, id: u64, t: i64) -> common::binance_mock::Entry {
    let stream = format!("{}@aggTrade", symbol.to_lowercase());
    let text = format!(
        r#"{{"stream":"{stream}","data":{{"e":"aggTrade","E":{t},"s":"{symbol}","a":{id},"p":"1.{id}","q":"2","f":{id},"l":{id},"T":{t},"m":false}}}}"#
    );
    let agg =
        match sigcast::market::binance::parse(Market::Futures, &text, std::time::SystemTime::now())
        {
            Ok(sigcast::market::binance::Parsed::Event(e)) => match e.kind {
                MarketEventKind::AggTrade(a) => Some((e.symbol.to_string(), a)),
                _ => None,
            },
            _ => None,
        };
    common::binance_mock::Entry { stream, text, agg }
}

/// A tape over four minutes of one symbol: aggTrades and kline_1m updates.
fn minutes_tape() -> (Tape, Vec<usize>) {
    use common::binance_mock::Entry;
    let mut entries = Vec::new();
    let mut minute_ends = Vec::new();
    let mut id = 1u64;
    for minute in 0..4i64 {
        let open = minute * 60_000;
        for k in 0..5i64 {
            entries.push(agg_entry("TSTUSDT", id, open + k * 1000));
            id += 1;
        }
        // The previous minute's final update, then this minute's first.
        for (kopen, closed) in [(open - 60_000, true), (open, false)] {
            if kopen < 0 {
                continue;
            }
            let e = open + 5_000;
            let text = format!(
                r#"{{"stream":"tstusdt@kline_1m","data":{{"e":"kline","E":{e},"s":"TSTUSDT","k":{{"t":{kopen},"T":{},"s":"TSTUSDT","i":"1m","f":1,"L":{},"o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":{closed},"q":"1","V":"0","Q":"0","B":"0"}}}}}}"#,
                kopen + 59_999,
                id - 1
            );
            entries.push(Entry {
                stream: "tstusdt@kline_1m".into(),
                text,
                agg: None,
            });
        }
        minute_ends.push(entries.len());
    }
    (
        Tape {
            market: Market::Futures,
            entries,
        },
        minute_ends,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_klines_are_backfilled_from_rest() {
    let (tape, minute_ends) = minutes_tape();
    let mock = MockBinance::start(tape, Settings::default()).await;
    let (mut rx, stop, _stats) = start(&mock, upstream(&mock));
    wait_connections(&mock, 1).await;
    mock.play(40);
    mock.wait_played(minute_ends[0]).await;
    mock.stop(); // minutes 1 and 2 happen while the connection is down
    mock.wait_played(minute_ends[2]).await;
    mock.pause();
    mock.restart().await;
    wait_connections(&mock, 2).await; // resubscribed
    mock.play(40); // minute 3, live
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();
    assert_exact(&seen, &mock);
    // Minute 0's and 1's final klines came from REST, minute 2's live: each once, in order.
    assert_eq!(seen.closed_klines["TSTUSDT"], vec![0, 60_000, 120_000]);
    assert!(seen.gaps.is_empty(), "{:?}", seen.gaps);
    assert!(
        mock.stats().rest_requests >= 2,
        "aggTrade catch-up and kline backfill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_trades_made_during_an_outage_are_recovered() {
    // AAAUSDT trades throughout; BBBUSDT trades for the first time while the connection is
    // down, and never again: no later trade could reveal what was missed.
    let mut entries = Vec::new();
    for i in 0..5 {
        entries.push(agg_entry("AAAUSDT", 100 + i, i as i64));
    }
    let outage_starts = entries.len();
    for i in 0..4 {
        entries.push(agg_entry("BBBUSDT", 7_000 + i, 10 + i as i64));
    }
    let outage_ends = entries.len();
    for i in 5..10 {
        entries.push(agg_entry("AAAUSDT", 100 + i, 20 + i as i64));
    }
    let tape = Tape {
        market: Market::Futures,
        entries,
    };
    let mock = MockBinance::start(tape, Settings::default()).await;
    let (mut rx, stop, _stats) = start(&mock, upstream(&mock));
    wait_connections(&mock, 1).await;
    mock.play(50);
    mock.wait_played(outage_starts).await;
    mock.stop();
    mock.wait_played(outage_ends).await;
    mock.pause();
    mock.restart().await;
    wait_connections(&mock, 2).await;
    mock.play(50);
    let seen = collect(&mut rx, &mock).await;
    stop.cancel();
    assert_exact(&seen, &mock);
    assert_eq!(seen.agg_ids["BBBUSDT"], vec![7_000, 7_001, 7_002, 7_003]);
}
