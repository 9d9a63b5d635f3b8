//! `sigcast bench`'s load generator against a real server: every client connects with its
//! own token, every broadcast published through the publish API reaches every client, and
//! the figures it reports are consistent.

use crate::common;

use std::time::Duration;

use common::TestServer;
use sigcast::auth::KeyRing;
use sigcast::loadgen::{Options, run};

/// A run against `server`: `clients` at `rate` broadcasts a second for `duration`.
fn options(server: &TestServer, clients: usize, rate: u32, duration: Duration) -> Options {
    Options {
        url: server.url(),
        publish_url: None,
        ca: Some(server.material.path("cert.pem")),
        clients,
        concurrency: 8,
        rate,
        duration,
        // The server runs in this process.
        server_pids: vec![std::process::id()],
        settle: Duration::from_millis(100),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_measures_a_real_server() {
    let server = TestServer::start(&[]).await;
    let keys = KeyRing::from_settings(&server.config.auth).unwrap();
    let options = options(&server, 40, 50, Duration::from_secs(1));
    let report = common::within(Duration::from_secs(60), run(&options, &keys))
        .await
        .unwrap();
    assert_eq!((report.connected, report.connect_failures), (40, 0));
    assert!(report.handshakes_per_sec > 0.0 && report.handshake_p99_ms >= report.handshake_p50_ms);
    assert_eq!(report.broadcasts, 50);
    assert_eq!(report.expected, 2000);
    assert_eq!(
        report.delivered, 2000,
        "every broadcast reached every client"
    );
    assert_eq!(report.disconnects, 0);
    assert!(report.latency_p50_ms > 0.0);
    assert!(report.latency_p99_ms >= report.latency_p50_ms);
    assert!(report.latency_max_ms >= report.latency_p999_ms);
    assert!(report.completion_p99_ms >= report.latency_p50_ms);
    assert!(report.deliveries_per_sec > 0.0);
    assert!(report.rss_kib_total.is_some());
    assert!(report.server_cpu_us_per_delivery.is_some());
    let (ack_p50, ack_p99) = (report.publish_ack_p50_ms, report.publish_ack_p99_ms);
    assert!(
        matches!((ack_p50, ack_p99), (Some(a), Some(b)) if a > 0.0 && b >= a),
        "every publish acked: {ack_p50:?} / {ack_p99:?}"
    );
    assert_eq!(
        server.hub.last_seq(),
        50,
        "published through the hub, numbered"
    );
    let text = sigcast::loadgen::describe(&report);
    assert!(text.contains("delivered: 2000 of 2000 (100.00%)"), "{text}");
    assert!(text.contains("publish acks: p50 "), "{text}");
}

/// A server that ends the publisher's connection mid-run stops the run with an error that
/// says how it ended it, not a bare WebSocket error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_cut_by_the_server_is_reported_with_the_close() {
    let server = TestServer::start(&[]).await;
    let keys = KeyRing::from_settings(&server.config.auth).unwrap();
    let options = options(&server, 4, 50, Duration::from_secs(20));
    let shutdown = server.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        shutdown.cancel();
    });
    let error = common::within(Duration::from_secs(30), run(&options, &keys))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("the server ended the publisher's connection after")
            && error.contains("(close 1001 \"server shutting down\")"),
        "{error}"
    );
}
