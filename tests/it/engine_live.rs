//! The strategy engine on the live upstream (a Binance mock): warm-up history from REST
//! klines, reloads that change upstream subscriptions by the difference, and restarts that
//! continue after the last trade the strategies took.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::binance_mock::{Entry, MockBinance, Settings, Tape};
use serde_json::Value;
use sigcast::hub::Hub;
use sigcast::market::kline::KlineBuilder;
use sigcast::strategy::definition;
use tokio_util::sync::CancellationToken;

async fn next_signal(rx: &mut tokio::sync::broadcast::Receiver<sigcast::hub::Published>) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a signal within 20 s")
        .unwrap();
    serde_json::from_str(frame.frame.as_str()).unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Seconds 0-5 happened before sigcast started: it fetches them as klines and can signal on
/// its second live candle, which it could not do from live candles alone (it needs four).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_rest_klines_warms_strategies_before_live_data() {
    let tape = Tape::per_second(
        "TSTUSDT",
        &["10", "9", "8", "7", "6", "6.5", "12", "13", "13", "13"],
    );
    let mock = MockBinance::start(tape, Settings::default()).await;
    mock.skip_to(6);
    let material = common::Material::new();
    let config = mock.sigcast_config(&material, &[]);
    let hub = Arc::new(Hub::new(vec![], 64));
    let mut rx = hub.subscribe();
    let stop = CancellationToken::new();
    let _pipeline = sigcast::node::start_pipeline(
        &config,
        definition::from_text(common::CROSS).unwrap(),
        hub.clone(),
        stop.clone(),
    )
    .unwrap();
    wait_for("subscribed", || mock.stats().subscribe_requests >= 1).await;
    let rest_before = mock.stats().rest_requests;
    mock.play(20);
    let signal = next_signal(&mut rx).await;
    stop.cancel();
    assert_eq!(signal["type"], "buy");
    assert_eq!(signal["content"]["price"], 12.0);
    assert_eq!(
        signal["content"]["timestamp"], 7,
        "on the close of second 6, the first live candle"
    );
    assert_eq!(signal["content"]["strategy"], "cross");
    assert!(
        mock.stats().rest_requests > rest_before,
        "history came from REST klines"
    );
}

/// A reload adds and drops strategies: the upstream subscribes and unsubscribes just the
/// difference on the connection it has, without reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_subscriptions_by_the_difference() {
    let mock = MockBinance::start(
        Tape::per_second("TSTUSDT", &["1", "2"]),
        Settings::default(),
    )
    .await;
    let material = common::Material::new();
    let config = mock.sigcast_config(&material, &[]);
    let hub = Arc::new(Hub::new(vec![], 64));
    let stop = CancellationToken::new();
    let pipeline = sigcast::node::start_pipeline(
        &config,
        definition::from_text(common::CROSS).unwrap(),
        hub,
        stop.clone(),
    )
    .unwrap();
    wait_for("subscribed", || mock.stats().subscribe_requests >= 1).await;
    assert_eq!(mock.stats().last_subscriptions, vec!["tstusdt@aggTrade"]);

    // Add an aggTrade strategy on another symbol (same endpoint: same connection).
    let more = format!(
        "{}{}",
        common::CROSS,
        common::CROSS
            .replace("\"cross\"", "\"other\"")
            .replace("TSTUSDT", "XYZUSDT")
    );
    pipeline
        .reload
        .send(definition::from_text(&more).unwrap())
        .await
        .unwrap();
    wait_for("xyz subscribed", || {
        mock.stats().last_subscriptions == vec!["tstusdt@aggTrade", "xyzusdt@aggTrade"]
    })
    .await;
    assert_eq!(
        mock.stats().subscribe_requests,
        2,
        "one SUBSCRIBE for the new stream"
    );

    // Drop the first one.
    let fewer = common::CROSS
        .replace("\"cross\"", "\"other\"")
        .replace("TSTUSDT", "XYZUSDT");
    pipeline
        .reload
        .send(definition::from_text(&fewer).unwrap())
        .await
        .unwrap();
    wait_for("tst unsubscribed", || {
        mock.stats().last_subscriptions == vec!["xyzusdt@aggTrade"]
    })
    .await;
    let stats = mock.stats();
    stop.cancel();
    assert_eq!(stats.unsubscribe_requests, 1);
    assert_eq!(stats.connections, 1, "no reconnect for a reload");
}

/// A plugin strategy that writes every line it is given to `file`: candles (with warm-up
/// history) and trades.
fn recorder(file: &std::path::Path) -> String {
    format!(
        "[[strategy]]\nname = \"rec\"\nkind = \"exec\"\nmarket = \"futures\"\nsymbol = \"TSTUSDT\"\ninterval = \"1s\"\n[strategy.params]\nwarmup = 3\ntrades = true\ncommand = [\"sh\", \"-c\", \"exec cat >> {}\"]\n",
        file.display()
    )
}

fn lines(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn trade_ids(file: &std::path::Path) -> Vec<u64> {
    lines(file)
        .iter()
        .filter(|l| l["type"] == "trade")
        .map(|l| l["id"].as_u64().unwrap())
        .collect()
}

/// sigcast stopped mid-candle while trading went on: started again on the same data
/// directory, its strategies get the trades made meanwhile (fetched by id), none twice, and
/// the candle the stop cut through closes with exactly Binance's figures: warm-up history
/// stops at it and the candle as the last run left it is continued, not Binance's (which
/// already holds the fetched trades).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_after_the_last_trade_the_strategies_took() {
    // Four trades a second for twelve seconds; each second's prices differ.
    let entries = (1..=48u64)
        .map(|id| {
            let price = format!("{}.{}", 100 + id % 7, id % 4);
            Entry::agg_trade("TSTUSDT", id, (id as i64 - 1) * 250, &price)
        })
        .collect();
    let tape = Tape {
        market: sigcast::market::Market::Futures,
        entries,
    };
    let reference: Vec<sigcast::market::Kline> = {
        let mut builder = KlineBuilder::new(sigcast::market::Interval::S1).unwrap();
        let mut done: Vec<_> = tape
            .entries
            .iter()
            .filter_map(|e| builder.push_agg(&e.agg.as_ref().unwrap().1))
            .collect();
        done.extend(builder.current().cloned());
        done
    };
    let mock = MockBinance::start(tape, Settings::default()).await;
    mock.skip_to(12); // seconds 0-2 happened before sigcast started
    let material = common::Material::new();
    let config = mock.sigcast_config(&material, &[]);
    let run = |file: &std::path::Path| {
        let hub = Arc::new(Hub::new(vec![], 64));
        let stop = CancellationToken::new();
        let pipeline = sigcast::node::start_pipeline(
            &config,
            definition::from_text(&recorder(file)).unwrap(),
            hub,
            stop.clone(),
        )
        .unwrap();
        (pipeline, stop)
    };
    let first = material.path("first.jsonl");
    let second = material.path("second.jsonl");

    // The first run takes trades up to the middle of second 5 (ids 21-24), then stops.
    let (pipeline, stop) = run(&first);
    wait_for("subscribed", || mock.stats().subscribe_requests >= 1).await;
    mock.play(20);
    mock.wait_played(22).await;
    mock.pause();
    let played = mock.played();
    wait_for("the first run took what was played", || {
        trade_ids(&first).last() == Some(&(played as u64))
    })
    .await;
    stop.cancel();
    pipeline.task.await.unwrap();

    // Trading goes on while sigcast is stopped.
    mock.play(20);
    mock.wait_played(38).await;
    mock.pause();
    let subscribed = mock.stats().subscribe_requests;
    let (pipeline, stop) = run(&second);
    wait_for("subscribed again", || {
        mock.stats().subscribe_requests > subscribed
    })
    .await;
    wait_for("the trades made meanwhile", || {
        trade_ids(&second).last() == Some(&38)
    })
    .await;
    mock.play(20);
    wait_for("the rest of the tape", || {
        trade_ids(&second).last() == Some(&48)
    })
    .await;
    stop.cancel();
    pipeline.task.await.unwrap();

    let before = trade_ids(&first);
    let after = trade_ids(&second);
    assert_eq!(
        before.first(),
        Some(&13),
        "the first run starts live at second 3"
    );
    assert_eq!(
        after.first(),
        Some(&(played as u64 + 1)),
        "the second run starts right after the first one's last trade"
    );
    let all: Vec<u64> = before.iter().chain(&after).copied().collect();
    assert_eq!(
        all,
        (13..=48).collect::<Vec<u64>>(),
        "every trade once, in order"
    );

    // Warm-up history of the second run: the three seconds before the one cut through.
    let cut_open = (played as i64 - 1) * 250 / 1000 * 1000;
    let second_lines = lines(&second);
    let history: Vec<i64> = second_lines
        .iter()
        .filter(|l| l["type"] == "candle" && l["history"] == true)
        .map(|l| l["open_time"].as_i64().unwrap())
        .collect();
    assert_eq!(
        history,
        vec![cut_open - 3000, cut_open - 2000, cut_open - 1000]
    );
    // Every candle it closed live, the one cut through first, is Binance's to the digit.
    let live: Vec<&Value> = second_lines
        .iter()
        .filter(|l| l["type"] == "candle" && l["history"] == false)
        .collect();
    assert_eq!(
        live.first().map(|l| l["open_time"].as_i64().unwrap()),
        Some(cut_open)
    );
    assert!(live.len() >= 5, "{} live candles", live.len());
    for candle in live {
        let open_time = candle["open_time"].as_i64().unwrap();
        let k = reference
            .iter()
            .find(|k| k.open_time_ms == open_time)
            .unwrap();
        let f = |d: &sigcast::market::Decimal| d.to_string().parse::<f64>().unwrap();
        assert_eq!(
            (
                candle["open"].as_f64(),
                candle["high"].as_f64(),
                candle["low"].as_f64(),
                candle["close"].as_f64(),
                candle["volume"].as_f64()
            ),
            (
                Some(f(&k.open)),
                Some(f(&k.high)),
                Some(f(&k.low)),
                Some(f(&k.close)),
                Some(f(&k.volume))
            ),
            "candle at {open_time}"
        );
    }
}
