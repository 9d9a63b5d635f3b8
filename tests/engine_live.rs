//! The strategy engine on the live upstream (a Binance mock): warm-up history from REST
//! klines, and reloads that change upstream subscriptions by the difference.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::binance_mock::{MockBinance, Settings, Tape};
use serde_json::Value;
use sigcast::hub::Hub;
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
    let _pipeline = sigcast::cli::start_pipeline(
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
    let pipeline = sigcast::cli::start_pipeline(
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
