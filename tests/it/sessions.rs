//! Sessions against a real server: broadcast contract, `test`, bad frames, timeouts, limits, shutdown.

use crate::common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::Value;
use sigcast::strategy::Side;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn valid_token_receives_broadcasts_in_the_contract_shape() {
    let server = TestServer::start(&[]).await;
    let mut ws = server.connect(Some(&server.token("alice"))).await.unwrap();
    server.wait_listeners(1).await;

    server.hub.publish(&signal("BTCUSDT", Side::Buy, 75000.0));
    server.hub.publish(&signal("ETHUSDT", Side::Sell, 3512.25));

    let first = next_text(&mut ws).await;
    assert!(
        first.starts_with(
            r#"{"type":"buy","content":{"symbol":"BTCUSDT","price":75000.0,"timestamp":1720000000,"#
        ),
        "{first}"
    );
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["is_test"], Value::Bool(false));
    assert!(
        v["content"]["timestamp"].is_i64(),
        "timestamp is integer seconds"
    );
    assert!(v["content"]["price"].is_f64(), "price is a JSON number");
    assert_eq!(v["content"]["strategy"], "test-harness");

    let second: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(second["type"], "sell");
    assert_eq!(second["content"]["symbol"], "ETHUSDT");
    assert_eq!(second["content"]["price"], 3512.25);
}

#[tokio::test]
async fn two_clients_receive_byte_identical_broadcasts() {
    let server = TestServer::start(&[]).await;
    let mut a = server.connect(Some(&server.token("a"))).await.unwrap();
    let mut b = server.connect(Some(&server.token("b"))).await.unwrap();
    server.wait_listeners(2).await;
    for i in 0..20 {
        server
            .hub
            .publish(&signal("SOLUSDT", Side::Buy, 150.0 + i as f64 / 8.0));
    }
    for _ in 0..20 {
        let (x, y) = (next_text(&mut a).await, next_text(&mut b).await);
        assert_eq!(x.as_bytes(), y.as_bytes());
    }
}

#[tokio::test]
async fn test_replies_reach_only_the_requester() {
    let server = TestServer::start(&[]).await;
    server.hub.mark_price("BTCUSDT", 74321.5);
    let mut a = server.connect(Some(&server.token("a"))).await.unwrap();
    let mut b = server.connect(Some(&server.token("b"))).await.unwrap();
    server.wait_listeners(2).await;

    send_text(&mut a, "  test \n").await;
    let buy: Value = serde_json::from_str(&next_text(&mut a).await).unwrap();
    let sell: Value = serde_json::from_str(&next_text(&mut a).await).unwrap();
    assert_eq!(
        (buy["type"].as_str(), sell["type"].as_str()),
        (Some("buy"), Some("sell"))
    );
    for v in [&buy, &sell] {
        assert_eq!(v["is_test"], true);
        assert_eq!(v["content"]["symbol"], "BTCUSDT");
        assert_eq!(v["content"]["price"], 74321.5, "priced at the latest price");
        assert!(v["content"]["timestamp"].is_u64());
    }

    // b got nothing from a's request: the next thing b sees is a real broadcast.
    expect_silence(&mut b, Duration::from_millis(300)).await;
    server.hub.publish(&signal("BTCUSDT", Side::Sell, 1.0));
    let real: Value = serde_json::from_str(&next_text(&mut b).await).unwrap();
    assert_eq!(real["is_test"], false);
}

#[tokio::test]
async fn test_is_rate_limited_and_the_connection_stays_open() {
    let server =
        TestServer::start(&[("server.test_burst", "2"), ("server.test_interval", "1h")]).await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    server.wait_listeners(1).await;
    for _ in 0..2 {
        send_text(&mut ws, "test").await;
        assert!(next_text(&mut ws).await.contains(r#""is_test":true"#));
        assert!(next_text(&mut ws).await.contains(r#""is_test":true"#));
    }
    send_text(&mut ws, "test").await;
    let err: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error_code"], "rate_limited");
    // Still open and still served.
    server.hub.publish(&signal("BTCUSDT", Side::Buy, 2.0));
    assert!(next_text(&mut ws).await.contains(r#""is_test":false"#));
}

#[tokio::test]
async fn unknown_text_gets_invalid_message_and_the_connection_stays_open() {
    let server = TestServer::start(&[]).await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    server.wait_listeners(1).await;
    for text in ["hello", "{\"type\":\"subscribe\"", "TEST!"] {
        send_text(&mut ws, text).await;
        let err: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(err["type"], "error");
        assert_eq!(err["error_code"], "invalid_message");
        assert!(err["error_message"].as_str().unwrap().contains("test"));
    }
    server.hub.publish(&signal("BTCUSDT", Side::Buy, 2.0));
    assert!(next_text(&mut ws).await.contains("BTCUSDT"));
}

#[tokio::test]
async fn binary_frames_are_closed_with_1003() {
    let server = TestServer::start(&[]).await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 1003, "{reason}");
}

#[tokio::test]
async fn oversized_messages_are_closed_with_1009() {
    let server = TestServer::start(&[("server.max_message_size", "1024")]).await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    ws.send(Message::text("x".repeat(4096))).await.unwrap();
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("1024"), "{reason}");
}

#[tokio::test]
async fn session_closes_with_1008_at_token_expiry() {
    let server = TestServer::start(&[]).await;
    let token = {
        let ring = sigcast::auth::KeyRing::from_settings(&server.config.auth).unwrap();
        ring.issue("short", Duration::from_secs(2), None).unwrap()
    };
    let mut ws = server.connect(Some(&token)).await.unwrap();
    let started = std::time::Instant::now();
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(6)).await;
    assert_eq!(code, 1008);
    assert_eq!(reason, "token expired");
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "closed at exp, not exp + leeway"
    );
}

// sigcast's own timers (ping, idle, handshake) decide this test: tokio's paused clock
// runs them without waiting them out.
#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_by_idle_timeout() {
    let server = TestServer::start(&[
        ("server.ping_interval", "100ms"),
        ("server.idle_timeout", "400ms"),
    ])
    .await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    // Not reading means not answering pings: the server hears nothing.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (code, _) = expect_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 4001);
    // Operators see it by reason on /metrics.
    let metrics = server
        .metrics_with("sigcast_sessions_ended_total{reason=\"idle\"} 1\n")
        .await;
    assert!(metrics.contains("sigcast_sessions_ended_total{reason=\"client\"} 0\n"));
}

// sigcast's own timers (ping, idle, handshake) decide this test: tokio's paused clock
// runs them without waiting them out.
#[tokio::test(start_paused = true)]
async fn responsive_client_survives_pings() {
    let server = TestServer::start(&[
        ("server.ping_interval", "100ms"),
        ("server.idle_timeout", "400ms"),
    ])
    .await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    server.wait_listeners(1).await;
    // Reading answers pings with pongs; a second later the session is still there.
    expect_silence(&mut ws, Duration::from_millis(1000)).await;
    server.hub.publish(&signal("BTCUSDT", Side::Buy, 3.0));
    assert!(next_text(&mut ws).await.contains("BTCUSDT"));
}

#[tokio::test]
async fn slow_consumer_is_cut_off_with_4000() {
    let server = TestServer::start(&[("server.queue_capacity", "4")]).await;
    let mut ws = server.connect(Some(&server.token("slow"))).await.unwrap();
    server.wait_listeners(1).await;
    // Publish far faster than anyone could drain a 4-signal ring.
    for i in 0..20_000 {
        server.hub.publish(&signal("BTCUSDT", Side::Buy, i as f64));
    }
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(code, 4000, "{reason}");
    assert!(reason.starts_with("slow consumer"), "{reason}");
}

/// A client reading, but slower than its signals come, is silent too: its pongs wait behind
/// the backlog it has not read. The server tells it from a vanished client by what it sent
/// and the client has not taken: the client is cut as a slow consumer (4000), not as idle
/// (4001), even though its ring (65536 deep here) never overflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_silent_behind_its_backlog_is_a_slow_consumer_not_idle() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start(&[
        ("server.ping_interval", "100ms"),
        ("server.idle_timeout", "400ms"),
        ("server.queue_capacity", "65536"),
    ])
    .await;
    let mut ws = server.connect(Some(&server.token("slow"))).await.unwrap();
    server.wait_listeners(1).await;
    // About a megabyte, most of it in the kernel at once: the pongs wait behind it.
    for i in 0..6000 {
        server.hub.publish(&signal("BTCUSDT", Side::Buy, i as f64));
    }
    let code = within(Duration::from_secs(30), async {
        let started = std::time::Instant::now();
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
            // Slow (500 a second) for two seconds, then quick to the close frame.
            if started.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    })
    .await;
    let metrics = server
        .metrics_with("sigcast_sessions_ended_total{reason=\"slow_consumer\"} 1\n")
        .await;
    assert!(
        metrics.contains("sigcast_sessions_ended_total{reason=\"idle\"} 0\n"),
        "{metrics}"
    );
    // The close frame waits behind the backlog; a client that read on finds it there.
    assert_eq!(code, Some(4000));
}

/// A client that stops reading leaves its session waiting on a write, while signals keep
/// coming and its ring overwrites ones it has not taken. The server cuts it as a slow
/// consumer then, not after the write timeout (a minute here): the waiting write could
/// not make up what is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_losing_signals_while_a_write_waits_is_cut_then() {
    let server = TestServer::start(&[
        ("server.queue_capacity", "256"),
        ("server.send_buffer", "4096"),
        ("server.write_timeout", "60s"),
        ("server.idle_timeout", "60s"),
    ])
    .await;
    // A small receive buffer the kernel does not grow: the client's socket is soon full.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let token = server.token("stalled");
    let ws = server.connect_socket(socket, &token).await.unwrap();
    server.wait_listeners(1).await;
    // 2,000 signals a second, which the session drains easily until the client's socket
    // is full; from then on, its ring overflows within 130 ms.
    for round in 0..200 {
        for i in 0..10 {
            let price = f64::from(round * 10 + i);
            server.hub.publish(&signal("BTCUSDT", Side::Buy, price));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let metrics = server
        .metrics_with("sigcast_sessions_ended_total{reason=\"slow_consumer\"} 1\n")
        .await;
    assert!(
        metrics.contains("sigcast_sessions_ended_total{reason=\"network\"} 0\n"),
        "{metrics}"
    );
    drop(ws);
}

/// Publishes a signal and keeps the runtime from running meanwhile (the tests here run the
/// server on their own one-thread runtime): the session gets to it late, as when it shares
/// a busy runtime. The wait starts once the journal has offered the signal to the ring, as
/// sessions measure it: a slow commit on a loaded machine must not eat the busy time (CI
/// caught a 5 ms sleep that started at the publish).
fn publish_while_busy(server: &TestServer, price: f64) {
    let mut ring = server.hub.subscribe();
    server.hub.publish(&signal("BTCUSDT", Side::Buy, price));
    let started = std::time::Instant::now();
    while ring.try_recv().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the journal did not offer the signal"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(Duration::from_millis(5));
}

fn price_of(text: &str) -> f64 {
    let v: Value = serde_json::from_str(text).unwrap();
    v["content"]["price"].as_f64().unwrap()
}

/// Against a server with this `server.coalesce`: a signal published while the runtime is
/// busy, read; then another, and a third behind it. How long after the first was read the
/// second came (the third checked to follow it).
async fn second_write_after_busy(coalesce: &str) -> Duration {
    let server = TestServer::start(&[("server.coalesce", coalesce)]).await;
    let mut ws = server.connect(Some(&server.token("busy"))).await.unwrap();
    server.wait_listeners(1).await;
    publish_while_busy(&server, 1.0);
    assert_eq!(price_of(&next_text(&mut ws).await), 1.0);
    let first_written = std::time::Instant::now();
    publish_while_busy(&server, 2.0);
    server.hub.publish(&signal("BTCUSDT", Side::Buy, 3.0));
    assert_eq!(price_of(&next_text(&mut ws).await), 2.0);
    let waited = first_written.elapsed();
    assert_eq!(price_of(&next_text(&mut ws).await), 3.0);
    waited
}

/// While the runtime is busy, a client's writes are `server.coalesce` apart: a signal that
/// comes sooner after the last write waits for that time, and what follows it goes with it,
/// every signal in order.
#[tokio::test]
async fn a_busy_runtime_coalesces_a_clients_writes() {
    let waited = second_write_after_busy("400ms").await;
    assert!(
        waited >= Duration::from_millis(300),
        "the second write followed the first after {waited:?}, within server.coalesce"
    );
}

/// `server.coalesce = 0` turns it off: a busy runtime's sessions write each signal as
/// soon as they get to it.
#[tokio::test]
async fn coalescing_off_writes_at_once_however_busy() {
    let waited = second_write_after_busy("0s").await;
    assert!(
        waited < Duration::from_millis(300),
        "the second signal waited {waited:?} with coalescing off"
    );
}

/// An idle runtime sends each signal at once, whatever `server.coalesce` is: a session is
/// held only while the signals it gets to have waited for it.
#[tokio::test]
async fn an_idle_runtime_does_not_coalesce() {
    let server = TestServer::start(&[("server.coalesce", "1s")]).await;
    let mut ws = server.connect(Some(&server.token("idle"))).await.unwrap();
    server.wait_listeners(1).await;
    // A busy moment first: the session coalesces, then sees the runtime idle again.
    publish_while_busy(&server, 0.0);
    assert_eq!(price_of(&next_text(&mut ws).await), 0.0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Held, each would wait out the window (about a second). A machine busy elsewhere may
    // hold one now and then; the next one is sent at once again.
    let mut waits = Vec::new();
    for i in 1..=6 {
        let published = std::time::Instant::now();
        server
            .hub
            .publish(&signal("BTCUSDT", Side::Buy, f64::from(i)));
        assert_eq!(price_of(&next_text(&mut ws).await), f64::from(i));
        waits.push(published.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = waits
        .iter()
        .filter(|w| **w >= Duration::from_millis(700))
        .count();
    assert!(held <= 2, "signals waited {waits:?}");
}

/// Time a signal spent being journaled (committed, sealed) is not a busy runtime: signals
/// that waited on the disk are still sent at once, not held for the coalescing window. (CI
/// caught the journal's time counted as busy once signals were sealed.)
#[tokio::test]
async fn a_slow_journal_is_not_a_busy_runtime() {
    let server = TestServer::start(&[("server.coalesce", "1s")]).await;
    let mut ws = server.connect(Some(&server.token("disk"))).await.unwrap();
    server.wait_listeners(1).await;
    let path = server.config.data.journal_path();
    let mut waits = Vec::new();
    for i in 1..=3 {
        // Another process holds the database a moment: the commit waits for it.
        let lock = rusqlite::Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let published = std::time::Instant::now();
        server
            .hub
            .publish(&signal("BTCUSDT", Side::Buy, f64::from(i)));
        tokio::time::sleep(Duration::from_millis(30)).await;
        lock.execute_batch("ROLLBACK").unwrap();
        assert_eq!(price_of(&next_text(&mut ws).await), f64::from(i));
        waits.push(published.elapsed());
    }
    assert!(
        waits.iter().all(|w| *w < Duration::from_millis(700)),
        "signals waited {waits:?}"
    );
}

/// A client whose connection ends without a close frame was dropped by the network: the
/// server counts it so, and does not answer it as a protocol violation (1002).
#[tokio::test]
async fn a_connection_ended_without_a_close_frame_counts_as_dropped() {
    let server = TestServer::start(&[]).await;
    let ws = server.connect(Some(&server.token("gone"))).await.unwrap();
    server.wait_listeners(1).await;
    drop(ws);
    server.wait_listeners(0).await;
    let metrics = server
        .metrics_with("sigcast_sessions_ended_total{reason=\"network\"} 1\n")
        .await;
    assert!(
        metrics.contains("sigcast_sessions_ended_total{reason=\"protocol\"} 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn over_the_connection_limit_gets_503_before_upgrade() {
    let server = TestServer::start(&[("server.max_connections", "1")]).await;
    let _first = server.connect(Some(&server.token("a"))).await.unwrap();
    server.wait_listeners(1).await;
    let refusal = server.connect(Some(&server.token("b"))).await.unwrap_err();
    assert_eq!(refusal.status, 503);
    assert_eq!(server.hub.listeners(), 1);
}

#[tokio::test]
async fn slot_is_freed_when_a_client_leaves() {
    let server = TestServer::start(&[("server.max_connections", "1")]).await;
    let mut first = server.connect(Some(&server.token("a"))).await.unwrap();
    server.wait_listeners(1).await;
    first.close(None).await.unwrap();
    server.wait_listeners(0).await;
    within(Duration::from_secs(5), async {
        loop {
            match server.connect(Some(&server.token("b"))).await {
                Ok(_) => break,
                Err(r) if r.status == 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(r) => panic!("{r:?}"),
            }
        }
    })
    .await;
}

// sigcast's own timers (ping, idle, handshake) decide this test: tokio's paused clock
// runs them without waiting them out.
#[tokio::test(start_paused = true)]
async fn silent_socket_is_dropped_at_handshake_timeout() {
    let server = TestServer::start(&[("server.handshake_timeout", "300ms")]).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = within(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "server closed the silent socket");

    // Also after TLS, when the HTTP request never completes.
    let mut tls = tls_connect(server.addr, &server.material.path("cert.pem")).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let n = within(Duration::from_secs(3), tls.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn shutdown_closes_every_session_with_1001() {
    let server = TestServer::start(&[]).await;
    let mut a = server.connect(Some(&server.token("a"))).await.unwrap();
    let mut b = server.connect(Some(&server.token("b"))).await.unwrap();
    server.wait_listeners(2).await;
    server.shutdown.cancel();
    for ws in [&mut a, &mut b] {
        let (code, reason) = expect_close(ws, Duration::from_secs(5)).await;
        assert_eq!(code, 1001);
        assert_eq!(reason, "server shutting down");
    }
    within(Duration::from_secs(5), server.task).await.unwrap();
}
