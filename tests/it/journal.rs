//! Delivery you can verify: every broadcast signal has a `seq`, is journaled, and a client
//! that comes back with its last `seq` gets exactly what it missed, across server restarts.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use sigcast::strategy::Side;

fn seq_of(text: &str) -> u64 {
    let v: Value = serde_json::from_str(text).unwrap();
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {text}"))
}

async fn read_seqs(ws: &mut Client, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        seqs.push(seq_of(&next_text(ws).await));
    }
    seqs
}

fn publish(server: &TestServer, n: usize) {
    for i in 0..n {
        server
            .hub
            .publish(&signal("BTCUSDT", Side::Buy, 70_000.0 + i as f64));
    }
}

/// Stops `server` (its journal flushed) and starts a new one on the same data directory.
async fn restart(server: TestServer, extra: &[(&str, &str)]) -> TestServer {
    let last = server.hub.last_seq();
    server
        .hub
        .journal()
        .unwrap()
        .wait_flushed(last)
        .await
        .unwrap();
    let TestServer {
        material,
        shutdown,
        task,
        hub,
        shared,
        ..
    } = server;
    shutdown.cancel();
    let _ = task.await;
    // Every handle on the hub goes, so its journal's writer stops (and applies retention).
    drop(shared);
    drop(hub);
    let config = material.config(extra);
    TestServer::start_with(material, config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_carry_increasing_seq_and_test_signals_none() {
    let server = TestServer::start(&[]).await;
    let mut ws = server.connect(Some(&server.token("a"))).await.unwrap();
    server.wait_listeners(1).await;
    publish(&server, 3);
    assert_eq!(read_seqs(&mut ws, 3).await, vec![1, 2, 3]);
    send_text(&mut ws, "test").await;
    let test: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(test["is_test"], true);
    assert!(test.get("seq").is_none(), "{test}");
}

/// A client killed mid-stream comes back with `X-Sigcast-Last-Seq` and gets exactly the
/// missing signals, in order, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_stream_resumes_with_exactly_the_missing_seqs() {
    let server = TestServer::start(&[]).await;
    let token = server.token("r");
    let ws = server.connect(Some(&token)).await.unwrap();
    server.wait_listeners(1).await;
    let mut ws = ws;
    publish(&server, 10);
    let seen = read_seqs(&mut ws, 4).await;
    assert_eq!(seen, vec![1, 2, 3, 4]);
    drop(ws); // killed: no close handshake
    publish(&server, 5);
    let mut again = server.connect_resuming(&token, "4").await.unwrap();
    assert_eq!(
        read_seqs(&mut again, 11).await,
        (5..=15).collect::<Vec<_>>()
    );
    server.wait_listeners(1).await;
    publish(&server, 1);
    assert_eq!(read_seqs(&mut again, 1).await, vec![16]);
    expect_silence(&mut again, Duration::from_millis(300)).await;
}

/// Signals published while history is being sent are neither lost nor doubled at the seam.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seam_between_history_and_live_loses_and_doubles_nothing() {
    let server = TestServer::start(&[("server.queue_capacity", "100000")]).await;
    publish(&server, 3000);
    let hub = server.hub.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..2000 {
            hub.publish(&signal("ETHUSDT", Side::Sell, 3000.0 + i as f64));
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut ws = server
        .connect_resuming(&server.token("seam"), "0")
        .await
        .unwrap();
    publisher.await.unwrap();
    let got = within(Duration::from_secs(30), read_seqs(&mut ws, 5000)).await;
    assert_eq!(got, (1..=5000).collect::<Vec<_>>());
    expect_silence(&mut ws, Duration::from_millis(300)).await;
}

/// `{"type":"resume","since":N}` works like the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_by_message() {
    let server = TestServer::start(&[]).await;
    publish(&server, 6);
    let mut ws = server.connect(Some(&server.token("m"))).await.unwrap();
    send_text(&mut ws, r#"{"type":"resume","since":2}"#).await;
    assert_eq!(read_seqs(&mut ws, 4).await, vec![3, 4, 5, 6]);
    send_text(&mut ws, r#"{"type":"resume","since":"two"}"#).await;
    let err: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(err["error_code"], "invalid_message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_last_seq_header_is_refused_with_400() {
    let server = TestServer::start(&[]).await;
    match server.connect_resuming(&server.token("b"), "soon").await {
        Err(r) => {
            assert_eq!(r.status, 400);
            assert!(r.body.contains("X-Sigcast-Last-Seq"), "{}", r.body);
        }
        Ok(_) => panic!("accepted a bad X-Sigcast-Last-Seq"),
    }
}

/// Numbering and history survive a restart: clients resume across it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_across_a_server_restart() {
    let server = TestServer::start(&[]).await;
    let token = server.token("restart");
    publish(&server, 5);
    let server = restart(server, &[]).await;
    publish(&server, 3);
    let mut ws = server.connect_resuming(&token, "2").await.unwrap();
    assert_eq!(read_seqs(&mut ws, 6).await, vec![3, 4, 5, 6, 7, 8]);
}

/// A resume from before what retention keeps gets `history_expired` with the oldest `seq`
/// kept, then what is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_retention_gives_history_expired() {
    let keep3 = [("journal.retention_count", "3")];
    let server = TestServer::start(&keep3).await;
    let token = server.token("old");
    publish(&server, 10);
    let db = server.material.path("data/sigcast.db");
    // Retention runs in the journal's writer, at the latest when it stops: the new server
    // is asked only once the old writer has applied it.
    let server = restart(server, &keep3).await;
    let oldest = || {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT MIN(seq) FROM signals", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    within(Duration::from_secs(10), async {
        while oldest() != 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut ws = server.connect_resuming(&token, "2").await.unwrap();
    let err: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error_code"], "history_expired");
    assert_eq!(err["oldest_seq"], 8);
    assert_eq!(read_seqs(&mut ws, 3).await, vec![8, 9, 10]);
}

/// A client that falls a ring behind while its history is being sent is cut off (4000)
/// then, not after the rest of a history that could not join the live stream anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_falling_a_ring_behind_during_its_resume_is_cut_off_then() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    // A small send buffer keeps the server from writing the whole history into the kernel's
    // buffers ahead of the client: it is still sending history when the ring overflows.
    let server = TestServer::start(&[
        ("server.queue_capacity", "16"),
        ("server.send_buffer", "4096"),
    ])
    .await;
    publish(&server, 5000);
    let journal = server.hub.journal().unwrap();
    journal.wait_flushed(5000).await.unwrap();
    let mut ws = server
        .connect_resuming(&server.token("slow"), "0")
        .await
        .unwrap();
    assert_eq!(read_seqs(&mut ws, 10).await, (1..=10).collect::<Vec<_>>());
    // The market goes on while it takes its history: more live signals than the ring holds,
    // all in the ring before the client reads on.
    publish(&server, 100);
    journal.wait_flushed(5100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (last, close) = within(Duration::from_secs(20), async {
        let mut last = 10;
        loop {
            match ws.next().await.expect("open").expect("read") {
                Message::Text(t) => {
                    let seq = seq_of(t.as_str());
                    assert_eq!(seq, last + 1, "history in order");
                    last = seq;
                }
                Message::Close(frame) => break (last, frame),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 4000, "{}", close.reason);
    assert!(
        close.reason.starts_with("slow consumer"),
        "{}",
        close.reason
    );
    assert!(last < 5000, "cut during its history, at {last}");
}

/// A client cut off as a slow consumer (4000) that resumes loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_cut_off_resumes_without_loss() {
    let server = TestServer::start(&[("server.queue_capacity", "16")]).await;
    let token = server.token("slow");
    let mut ws = server.connect(Some(&token)).await.unwrap();
    server.wait_listeners(1).await;
    publish(&server, 3000); // far faster than one session drains a 16-deep ring
    let mut last = 0;
    let (code, reason) = within(Duration::from_secs(10), async {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match ws.next().await.expect("open").expect("read") {
                Message::Text(t) => {
                    let seq = seq_of(t.as_str());
                    assert_eq!(seq, last + 1, "in order before the cut");
                    last = seq;
                }
                Message::Close(Some(f)) => break (u16::from(f.code), f.reason.to_string()),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(code, 4000, "{reason}");
    assert!(reason.starts_with("slow consumer"), "{reason}");
    let metrics = sigcast::admin::render(&sigcast::admin::Observed::new(server.shared.clone()));
    assert!(
        metrics.contains("\nsigcast_slow_consumer_disconnects_total 1\n"),
        "{metrics}"
    );
    assert!(last < 3000);
    let mut again = server
        .connect_resuming(&token, &last.to_string())
        .await
        .unwrap();
    let rest = within(
        Duration::from_secs(30),
        read_seqs(&mut again, (3000 - last) as usize),
    )
    .await;
    assert_eq!(rest, (last + 1..=3000).collect::<Vec<_>>());
}
