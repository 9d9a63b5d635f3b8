//! Market-data topics over real TLS WebSocket clients: klines, the top of book and their
//! conflation for a slow client, from a replayed recording and on demand from a Binance mock.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::binance_mock::{MockBinance, Settings, Tape};
use common::{Client, TestServer, expect_silence, next_text, send_text, within};
use futures_util::StreamExt;
use serde_json::Value;
use sigcast::auth::Scope;
use sigcast::market::binance::{Parsed, parse};
use sigcast::market::kline::KlineBuilder;
use sigcast::market::recording::RecordingReader;
use sigcast::market::{Interval, Kline, MarketEvent, MarketEventKind};
use sigcast::strategy::Side;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn recording(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/binance")
        .join(name)
}

/// Every event of `symbol` in the recordings, in order.
fn events(files: &[PathBuf], symbol: &str) -> Vec<MarketEvent> {
    let mut all = Vec::new();
    for file in files {
        for r in RecordingReader::open(file).unwrap() {
            let r = r.unwrap();
            if let Ok(Parsed::Event(e)) = parse(r.market, &r.text, SystemTime::now()) {
                if e.symbol == symbol {
                    all.push(e);
                }
            }
        }
    }
    all
}

/// The `update_id` of the last book ticker among `events`.
fn last_book_update(events: &[MarketEvent]) -> u64 {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            MarketEventKind::BookTicker(b) => Some(b.update_id),
            _ => None,
        })
        .expect("the recording holds book tickers")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Sends a command and returns the reply.
async fn command(ws: &mut Client, body: Value) -> Value {
    send_text(ws, &body.to_string()).await;
    json(&next_text(ws).await)
}

async fn subscribe(ws: &mut Client, topic: &str) {
    let reply = command(ws, serde_json::json!({"type":"subscribe","topic":topic})).await;
    assert_eq!(reply["type"], "subscribe_ack", "{topic}: {reply}");
    assert_eq!(reply["topic"], topic);
}

/// The fields of a kline message that must equal the kline sigcast relayed or built.
fn same_kline(got: &Value, want: &Kline) -> bool {
    let c = &got["content"];
    let num = |d: sigcast::market::Decimal| d.normalize().to_string().parse::<f64>().unwrap();
    c["open_time_ms"] == want.open_time_ms
        && c["open"].as_f64() == Some(num(want.open))
        && c["high"].as_f64() == Some(num(want.high))
        && c["low"].as_f64() == Some(num(want.low))
        && c["close"].as_f64() == Some(num(want.close))
        && c["volume"].as_f64() == Some(num(want.volume))
        && c["trades"] == want.trades
        && c["closed"] == want.closed
}

/// Reads messages until `done` says so; returns them all.
async fn read_until(ws: &mut Client, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    within(Duration::from_secs(30), async {
        let mut got = Vec::new();
        loop {
            match ws.next().await.expect("stream ended").expect("read error") {
                Message::Text(t) => {
                    let v = json(t.as_str());
                    let finished = done(&v);
                    got.push(v);
                    if finished {
                        return got;
                    }
                }
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
}

/// A replayed recording with native klines: subscribers get every kline and book update as
/// recorded, ending on the recording's last values; a plain client gets no market data; the
/// token scope and the syntax are enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_klines_and_book_reach_subscribers_only() {
    let file = recording("usdm_multi_2021-07-22.cryptofeed.txt");
    let server = TestServer::start(&[
        ("source.kind", "replay"),
        ("source.replay", file.to_str().unwrap()),
        ("source.replay_speed", "max"),
    ])
    .await;
    let recorded = events(std::slice::from_ref(&file), "SUSHIUSDT");
    let klines: Vec<&Kline> = recorded
        .iter()
        .filter_map(|e| match &e.kind {
            MarketEventKind::Kline(k) => Some(k),
            _ => None,
        })
        .collect();
    let last_book = last_book_update(&recorded);
    let last_kline = *klines.last().unwrap();
    let closed: Vec<&&Kline> = klines.iter().filter(|k| k.closed).collect();
    assert!(!closed.is_empty(), "the recording holds a closed kline");

    let mut market = server.connect(Some(&server.token("market"))).await.unwrap();
    subscribe(&mut market, "futures.SUSHIUSDT.1m").await;
    subscribe(&mut market, "futures.SUSHIUSDT.1m.closed").await;
    subscribe(&mut market, "futures.SUSHIUSDT.book").await;
    // Refusals: bad syntax, outside the token's scope, not subscribed.
    let reply = command(
        &mut market,
        serde_json::json!({"type":"subscribe","topic":"futures.SUSHIUSDT.7m"}),
    )
    .await;
    assert_eq!(reply["error_code"], "invalid_topic", "{reply}");
    let reply = command(
        &mut market,
        serde_json::json!({"type":"unsubscribe","topic":"spot.SUSHIUSDT.book"}),
    )
    .await;
    assert_eq!(reply["error_code"], "subscription_failed", "{reply}");
    let scoped = server.token_scoped(
        "btc-only",
        &Scope {
            symbols: Some(vec!["BTCUSDT".into()]),
            strategies: None,
            publisher: false,
        },
    );
    let mut narrow = server.connect(Some(&scoped)).await.unwrap();
    let reply = command(
        &mut narrow,
        serde_json::json!({"type":"subscribe","topic":"futures.SUSHIUSDT.book"}),
    )
    .await;
    assert_eq!(reply["error_code"], "subscription_failed", "{reply}");
    let mut plain = server.connect(Some(&server.token("plain"))).await.unwrap();

    let stop = CancellationToken::new();
    sigcast::node::start_pipeline(&server.config, vec![], server.hub.clone(), stop.clone())
        .unwrap();

    let (mut saw_book, mut saw_kline, mut saw_closed) = (false, false, 0);
    let got = read_until(&mut market, |v| {
        match v["topic"].as_str() {
            Some("futures.SUSHIUSDT.book") => saw_book |= v["content"]["update_id"] == last_book,
            Some("futures.SUSHIUSDT.1m") => saw_kline |= same_kline(v, last_kline),
            Some("futures.SUSHIUSDT.1m.closed") => saw_closed += 1,
            other => panic!("unexpected message {other:?}: {v}"),
        }
        saw_book && saw_kline && saw_closed == closed.len()
    })
    .await;
    // Every kline message is one the recording holds, in order.
    let updates: Vec<&Value> = got
        .iter()
        .filter(|v| v["topic"] == "futures.SUSHIUSDT.1m")
        .collect();
    let mut at = 0;
    for u in &updates {
        let found = klines[at..].iter().position(|k| same_kline(u, k));
        at += found.unwrap_or_else(|| panic!("not a recorded kline, or out of order: {u}"));
    }
    let closed_got: Vec<&Value> = got
        .iter()
        .filter(|v| v["topic"] == "futures.SUSHIUSDT.1m.closed")
        .collect();
    for (g, want) in closed_got.iter().zip(&closed) {
        assert!(same_kline(g, want), "{g} vs {want:?}");
    }
    for v in &got {
        assert_eq!(v["content"]["market"], "futures");
        assert_eq!(v["content"]["symbol"], "SUSHIUSDT");
    }

    // Unsubscribing stops the topic; the plain and the narrow client never got market data.
    let reply = command(
        &mut market,
        serde_json::json!({"type":"unsubscribe","topic":"futures.SUSHIUSDT.book"}),
    )
    .await;
    assert_eq!(reply["type"], "unsubscribe_ack", "{reply}");
    expect_silence(&mut plain, Duration::from_millis(300)).await;
    expect_silence(&mut narrow, Duration::from_millis(100)).await;
    stop.cancel();
}

/// A client that stops reading while the book moves fast is not cut off: its book updates
/// are conflated (the latest wins), every closed kline built from the trades still reaches
/// it, and every signal published meanwhile arrives, none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_conflated_market_data_and_every_signal() {
    let files = [
        recording("spot_btcusdt_20240808.gz"),
        recording("spot_btcusdt_20240809.gz"),
    ];
    let replay = format!("{},{}", files[0].display(), files[1].display());
    let server = TestServer::start(&[
        ("source.kind", "replay"),
        ("source.replay", &replay),
        ("source.replay_speed", "max"),
        ("server.write_timeout", "30s"),
    ])
    .await;
    let recorded = events(&files, "BTCUSDT");
    let books = recorded
        .iter()
        .filter(|e| matches!(e.kind, MarketEventKind::BookTicker(_)))
        .count();
    let last_book = last_book_update(&recorded);
    // The 1m klines sigcast must build from the trades.
    let mut builder = KlineBuilder::new(Interval::M1).unwrap();
    let closed: Vec<Kline> = recorded
        .iter()
        .filter_map(|e| match &e.kind {
            MarketEventKind::Trade(t) => builder.push_trade(t),
            _ => None,
        })
        .collect();
    assert!(closed.len() >= 5, "{} closed minutes", closed.len());

    let mut slow = server.connect(Some(&server.token("slow"))).await.unwrap();
    subscribe(&mut slow, "spot.BTCUSDT.book").await;
    subscribe(&mut slow, "spot.BTCUSDT.1m.closed").await;
    server.wait_listeners(1).await;

    let stop = CancellationToken::new();
    sigcast::node::start_pipeline(&server.config, vec![], server.hub.clone(), stop.clone())
        .unwrap();
    const SIGNALS: u64 = 300;
    let hub = server.hub.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..SIGNALS {
            hub.publish(&common::signal("BTCUSDT", Side::Buy, 60_000.0 + i as f64));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // Not reading while the whole recording plays and the signals go out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    publisher.await.unwrap();

    let mut seqs = Vec::new();
    let (mut books_got, mut saw_last_book, mut klines_got) = (0, false, Vec::new());
    read_until(&mut slow, |v| {
        match v["topic"].as_str() {
            Some("spot.BTCUSDT.book") => {
                books_got += 1;
                saw_last_book |= v["content"]["update_id"] == last_book;
            }
            Some("spot.BTCUSDT.1m.closed") => klines_got.push(v.clone()),
            _ => {
                assert_eq!(v["type"], "buy", "{v}");
                seqs.push(v["seq"].as_u64().unwrap());
            }
        }
        saw_last_book && seqs.len() as u64 == SIGNALS && klines_got.len() == closed.len()
    })
    .await;
    assert_eq!(
        seqs,
        (1..=SIGNALS).collect::<Vec<_>>(),
        "signals are never conflated"
    );
    for (got, want) in klines_got.iter().zip(&closed) {
        assert!(same_kline(got, want), "{got} vs {want:?}");
    }
    assert!(
        books_got < books / 2,
        "book updates conflated: {books_got} of {books} written"
    );
    assert!(server.hub.feed().conflated() > 0);
    assert_eq!(
        server
            .shared
            .stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "conflation, not a slow-consumer cut"
    );
    stop.cancel();
}

/// With the live source, a topic is subscribed upstream when the first client asks for it
/// and unsubscribed when the last one leaves; symbols outside the offer are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_topics_subscribe_upstream_on_demand() {
    let tape = Tape::from_recordings(&[&recording("usdm_multi_2021-07-22.cryptofeed.txt")]);
    let mock = MockBinance::start(tape, Settings::default()).await;
    let material = common::Material::new();
    let config = mock.sigcast_config(&material, &[("market_data.symbols", "SUSHIUSDT")]);
    let server = TestServer::start_with(material, config).await;
    let stop = CancellationToken::new();
    sigcast::node::start_pipeline(&server.config, vec![], server.hub.clone(), stop.clone())
        .unwrap();

    let mut a = server.connect(Some(&server.token("a"))).await.unwrap();
    let reply = command(
        &mut a,
        serde_json::json!({"type":"subscribe","topic":"futures.CTKUSDT.1m"}),
    )
    .await;
    assert_eq!(reply["error_code"], "subscription_failed", "{reply}");
    assert!(
        reply["error_message"]
            .as_str()
            .unwrap()
            .contains("market_data.symbols")
    );
    subscribe(&mut a, "futures.SUSHIUSDT.1m").await;
    wait_for("kline subscribed upstream", || {
        mock.stats().last_subscriptions == ["sushiusdt@kline_1m"]
    })
    .await;
    let mut b = server.connect(Some(&server.token("b"))).await.unwrap();
    subscribe(&mut b, "futures.SUSHIUSDT.book").await;
    wait_for("book subscribed upstream", || {
        mock.stats().last_subscriptions == ["sushiusdt@bookTicker"]
    })
    .await;

    let last_kline = mock
        .tape()
        .entries
        .iter()
        .rev()
        .find(|e| e.stream == "sushiusdt@kline_1m")
        .map(
            |e| match parse(mock.tape().market, &e.text, SystemTime::now()) {
                Ok(Parsed::Event(MarketEvent {
                    kind: MarketEventKind::Kline(k),
                    ..
                })) => k,
                other => panic!("{other:?}"),
            },
        )
        .unwrap();
    mock.play(5000);
    let got = read_until(&mut a, |v| same_kline(v, &last_kline)).await;
    assert!(
        got.iter().all(|v| v["type"] == "kline"),
        "only klines for a"
    );
    let book = read_until(&mut b, |v| v["type"] == "book").await;
    assert_eq!(book[0]["content"]["symbol"], "SUSHIUSDT");

    // The last subscriber leaving (unsubscribe, or disconnect) unsubscribes upstream.
    let reply = command(
        &mut a,
        serde_json::json!({"type":"unsubscribe","topic":"futures.SUSHIUSDT.1m"}),
    )
    .await;
    assert_eq!(reply["type"], "unsubscribe_ack");
    drop(b);
    wait_for("both unsubscribed upstream", || {
        mock.stats().unsubscribe_requests >= 2
    })
    .await;
    stop.cancel();
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
