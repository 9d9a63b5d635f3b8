//! An ack means durable: `sigcast serve` killed with SIGKILL in the middle of a burst of
//! publishes keeps every signal it acked, and never gives a `seq` out twice.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::served::Served;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sigcast::auth::Scope;
use tokio_tungstenite::tungstenite::Message;

/// A publish of a buy of BTCUSDT at `price`, named by `id`.
fn publish(price: f64, id: &str) -> Message {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Message::text(
        json!({"type": "publish", "id": id, "signal": {"type": "buy", "content": {"symbol": "BTCUSDT", "price": price, "timestamp": now}}})
            .to_string(),
    )
}

/// The journal's signals by `seq`: the price in each frame.
fn journaled(material: &common::Material) -> BTreeMap<u64, f64> {
    let db = rusqlite::Connection::open(material.path("data/sigcast.db")).unwrap();
    let mut stmt = db.prepare("SELECT seq, frame FROM signals").unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (seq, frame) = row.unwrap();
            let v: Value = serde_json::from_str(&frame).unwrap();
            (seq as u64, v["content"]["price"].as_f64().unwrap())
        })
        .collect()
}

/// Publishes a burst without waiting for acks, and kills the server at the `kill_at`th ack;
/// returns the acks it got: `seq` by price.
async fn burst_and_kill(
    served: Served,
    trial: usize,
    burst: usize,
    kill_at: usize,
) -> (Vec<(u64, f64)>, common::Material) {
    let publisher = served.token_scoped(
        "publisher",
        &Scope {
            publisher: true,
            ..Scope::default()
        },
    );
    let ws = served.connect(&publisher).await;
    let (mut tx, mut rx) = ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..burst {
            let price = 70_000.0 + i as f64;
            if tx
                .send(publish(price, &format!("{trial}-{i}")))
                .await
                .is_err()
            {
                break;
            }
        }
        tx
    });
    let mut acks = Vec::new();
    let mut prices = BTreeMap::new();
    for i in 0..burst {
        prices.insert(format!("{trial}-{i}"), 70_000.0 + i as f64);
    }
    let mut served = Some(served);
    let mut material = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await
    {
        let Message::Text(text) = message else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["type"] != "publish_ack" {
            continue;
        }
        // Acks come in the order of the publishes (the id names it too).
        let price = 70_000.0 + acks.len() as f64;
        if let Some(id) = v["id"].as_str() {
            assert_eq!(prices[id], price, "acks in publish order");
        }
        acks.push((v["seq"].as_u64().unwrap(), price));
        if acks.len() == kill_at {
            material = served.take().map(Served::kill);
        }
    }
    let _ = sender.await;
    (acks, material.expect("the server was killed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_signal_survives_a_kill_and_no_seq_is_given_twice() {
    let mut material = common::Material::new();
    let mut highest_acked = 0;
    for trial in 0..4 {
        let served = Served::start_with(material, &[("source.tick", "1h")]);
        let (acks, left) = burst_and_kill(served, trial, 300, 100).await;
        material = left;
        assert!(acks.len() >= 100, "trial {trial}: {} acks", acks.len());
        let journal = journaled(&material);
        for (seq, price) in &acks {
            assert!(
                *seq > highest_acked,
                "trial {trial}: seq {seq} given out again"
            );
            assert_eq!(
                journal.get(seq),
                Some(price),
                "trial {trial}: acked seq {seq} is not in the journal with its signal"
            );
        }
        highest_acked = acks.iter().map(|(seq, _)| *seq).max().unwrap();
    }
}

/// Publishes and returns the `seq` of its ack.
async fn ack(ws: &mut common::Client, price: f64, id: &str) -> u64 {
    ws.send(publish(price, id)).await.unwrap();
    loop {
        let v: Value = serde_json::from_str(&common::next_text(ws).await).unwrap();
        if v["type"] == "publish_ack" {
            assert_eq!(v["id"], id);
            return v["seq"].as_u64().unwrap();
        }
    }
}

/// A publish retried with the same `id` stores nothing new and is answered with the first
/// one's `seq`, also after a restart; another publisher's same `id` is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_publish_is_stored_once() {
    let served = Served::start(&[("source.tick", "1h")]);
    let scope = Scope {
        publisher: true,
        ..Scope::default()
    };
    let (alice, bob) = (
        served.token_scoped("alice", &scope),
        served.token_scoped("bob", &scope),
    );
    let mut a = served.connect(&alice).await;
    let first = ack(&mut a, 70_000.0, "order-1").await;
    assert_eq!(ack(&mut a, 70_000.0, "order-1").await, first, "a retry");
    let mut b = served.connect(&bob).await;
    let bobs = ack(&mut b, 70_001.0, "order-1").await;
    assert_ne!(bobs, first, "another publisher's id");
    drop((a, b));
    let material = served.kill();
    assert_eq!(journaled(&material).len(), 2, "stored once each");

    let served = Served::start_with(material, &[("source.tick", "1h")]);
    let mut a = served.connect(&alice).await;
    assert_eq!(
        ack(&mut a, 70_000.0, "order-1").await,
        first,
        "after a restart"
    );
    let next = ack(&mut a, 70_002.0, "order-2").await;
    assert!(next > bobs, "numbering goes on above: {next}");
}
