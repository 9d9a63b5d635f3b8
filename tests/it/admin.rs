//! The admin listener: `/metrics` counts what real clients did, `/healthz` answers,
//! `/readyz` follows the upstream and the strategies' warm-up, and anything else is refused.

use crate::common;

use std::time::Duration;

use common::binance_mock::{MockBinance, Settings, Tape};
use common::{TestServer, next_text, within};
use sigcast::admin::Observed;
use sigcast::strategy::{Side, definition};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// One HTTP request to the admin listener; the whole response.
async fn get(addr: std::net::SocketAddr, request: &str) -> String {
    within(Duration::from_secs(5), async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        response
    })
    .await
}

/// The value of the sample `line` starts with (name and labels), as a number.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_handshakes_signals_and_deliveries() {
    let server = TestServer::start(&[]).await;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = admin.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(sigcast::admin::run(
        admin,
        Observed::new(server.shared.clone()),
        stop.clone(),
    ));

    let mut client = server.connect(Some(&server.token("m"))).await.unwrap();
    assert!(server.connect(None).await.is_err());
    assert!(server.connect(Some("not.a.token")).await.is_err());
    server.wait_listeners(1).await;
    for _ in 0..3 {
        server
            .hub
            .publish(&common::signal("BTCUSDT", Side::Buy, 1.0));
    }
    server
        .hub
        .publish(&common::signal("BTCUSDT", Side::Sell, 1.0));
    for _ in 0..4 {
        next_text(&mut client).await;
    }

    // A session counts its deliveries once the flush returns, which can be just after the
    // client has read them: ask again until the count has caught up.
    let mut response = String::new();
    for _ in 0..50 {
        response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if body.contains("sigcast_messages_delivered_total 4") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert_eq!(
        sample(body, r#"sigcast_handshakes_total{outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        sample(body, r#"sigcast_handshakes_total{outcome="no_token"}"#),
        1.0
    );
    assert_eq!(
        sample(body, r#"sigcast_handshakes_total{outcome="invalid_token"}"#),
        1.0
    );
    assert_eq!(sample(body, r#"sigcast_connections{state="open"}"#), 1.0);
    assert_eq!(
        sample(
            body,
            r#"sigcast_signals_total{strategy="test-harness",side="buy"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            body,
            r#"sigcast_signals_total{strategy="test-harness",side="sell"}"#
        ),
        1.0
    );
    assert_eq!(sample(body, "sigcast_messages_delivered_total"), 4.0);
    assert_eq!(sample(body, "sigcast_slow_consumer_disconnects_total"), 0.0);
    assert_eq!(sample(body, "sigcast_last_seq"), 4.0);
    // Every sample belongs to a family announced with HELP and TYPE.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .any(|base| body.contains(&format!("# TYPE {base} histogram\n")));
        assert!(
            histogram || body.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE"
        );
    }

    // A session adds its histogram counts when it ends (and at each ping).
    drop(client);
    let mut body = String::new();
    for _ in 0..50 {
        let response = get(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        body = response.split_once("\r\n\r\n").unwrap().1.to_string();
        // Both, as one scrape may fall between the session adding the one and the other.
        if sample(&body, "sigcast_fanout_latency_seconds_count") > 0.0
            && sample(&body, "sigcast_session_queue_depth_count") > 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let writes = sample(&body, "sigcast_fanout_latency_seconds_count");
    assert!(
        (1.0..=4.0).contains(&writes),
        "4 signals in 1 to 4 writes: {writes}"
    );
    assert_eq!(
        sample(&body, r#"sigcast_fanout_latency_seconds_bucket{le="+Inf"}"#),
        writes
    );
    assert!(sample(&body, "sigcast_fanout_latency_seconds_sum") < 5.0 * writes);
    assert_eq!(sample(&body, "sigcast_session_queue_depth_count"), writes);
    assert!(
        body.contains("sigcast_fanout_latency_seconds_bucket{le=\"0.00005\"}"),
        "{body}"
    );
    assert!(sample(&body, "sigcast_journal_size_bytes") > 0.0);
    let not_ready = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(
        not_ready.starts_with("HTTP/1.1 503"),
        "no source feeds this hub: {not_ready}"
    );

    let health = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 200 OK") && health.ends_with("ok\n"),
        "{health}"
    );
    let missing = get(addr, "GET /admin HTTP/1.1\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let post = get(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let junk = get(addr, "\x16\x03\x01garbage\r\n\r\n").await;
    assert!(junk.starts_with("HTTP/1.1 400"), "{junk}");
    stop.cancel();
}

/// Prometheus's own text-format parser (the Python `prometheus_client`) reads `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_parser_reads_the_metrics() {
    let Some(python) = common::e2e_tool("SIGCAST_E2E_PYTHON") else {
        return;
    };
    let server = TestServer::start(&[]).await;
    let _client = server.connect(Some(&server.token("p"))).await.unwrap();
    server.wait_listeners(1).await;
    server
        .hub
        .publish(&common::signal("ETHUSDT", Side::Sell, 2.0));
    let metrics = sigcast::admin::render(&Observed::new(server.shared.clone()));
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(family.type, s.name, sorted(s.labels.items()), s.value)
"#;
    let mut child = tokio::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(metrics.as_bytes()).await.unwrap();
    drop(stdin);
    let out = within(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "gauge sigcast_build_info [('version', ",
        "counter sigcast_handshakes_total [('outcome', 'ok')] 1\n",
        "counter sigcast_signals_total [('side', 'sell'), ('strategy', 'test-harness')] 1\n",
        "gauge sigcast_connections [('state', 'open')] 1\n",
        "counter sigcast_slow_consumer_disconnects_total [] 0\n",
        "gauge sigcast_journal_lag_signals [] ",
        "histogram sigcast_fanout_latency_seconds_count [] ",
        "histogram sigcast_session_queue_depth_bucket [('le', '+Inf')] ",
        "counter sigcast_upstream_messages_total [('kind', 'aggTrade')] 0\n",
        "gauge sigcast_upstream_connections [('state', 'up')] 0\n",
    ] {
        assert!(stdout.contains(expected), "{expected} not in\n{stdout}");
    }
}

/// Polls `/readyz` until it answers `status` with `needle` in its body; the whole response.
async fn await_readyz(addr: std::net::SocketAddr, status: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..400 {
        last = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        if last.starts_with(&format!("HTTP/1.1 {status}")) && last.contains(needle) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("/readyz never answered {status} with {needle:?}; last:\n{last}");
}

/// `/readyz` is ready only while the upstream (a Binance mock) is connected and subscribed
/// and the strategies are warm, and the upstream's metrics count what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_upstream_and_the_warmup() {
    let tape = Tape::per_second(
        "TSTUSDT",
        &["10", "9", "8", "7", "6", "6.5", "12", "13", "13", "13"],
    );
    let mock = MockBinance::start(tape, Settings::default()).await;
    mock.stop();
    let material = common::Material::new();
    let config = mock.sigcast_config(&material, &[]);
    let server = TestServer::start_with(material, config).await;
    let stop = CancellationToken::new();
    let pipeline = sigcast::node::start_pipeline(
        &server.config,
        definition::from_text(common::CROSS).unwrap(),
        server.hub.clone(),
        stop.clone(),
    )
    .unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = admin.local_addr().unwrap();
    let observed = Observed {
        server: server.shared.clone(),
        source: pipeline.source.clone(),
        warmup: pipeline.warmup.clone(),
        cluster: None,
    };
    tokio::spawn(sigcast::admin::run(admin, observed, stop.clone()));

    let down = await_readyz(addr, "503", "upstream: not ready (0 of 1 connections up").await;
    assert!(
        down.contains("strategies: not ready (0 of 1 warm)"),
        "{down}"
    );

    mock.restart().await;
    let cold = await_readyz(addr, "503", "upstream: ok (1 of 1").await;
    assert!(
        cold.contains("strategies: not ready (0 of 1 warm)"),
        "warm-up waits for data: {cold}"
    );

    mock.play(20);
    await_readyz(addr, "200", "strategies: ok (1 of 1 warm)").await;

    mock.stop();
    await_readyz(addr, "503", "upstream: not ready (0 of 1").await;
    mock.restart().await;
    await_readyz(addr, "200", "upstream: ok (1 of 1").await;

    let observed = Observed {
        server: server.shared.clone(),
        source: pipeline.source.clone(),
        warmup: pipeline.warmup.clone(),
        cluster: None,
    };
    // The reconnect's own event reaches the pipeline just after the connection is up.
    let mut metrics = sigcast::admin::render(&observed);
    for _ in 0..100 {
        if sample(
            &metrics,
            r#"sigcast_upstream_messages_total{kind="reconnected"}"#,
        ) >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        metrics = sigcast::admin::render(&observed);
    }
    assert_eq!(
        sample(&metrics, r#"sigcast_upstream_connections{state="planned"}"#),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"sigcast_upstream_connections{state="up"}"#),
        1.0
    );
    assert!(
        sample(&metrics, "sigcast_upstream_connects_total") >= 2.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "sigcast_upstream_reconnects_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            r#"sigcast_upstream_messages_total{kind="aggTrade"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &metrics,
            r#"sigcast_upstream_messages_total{kind="reconnected"}"#
        ) >= 1.0
    );
    assert_eq!(
        sample(&metrics, r#"sigcast_strategy_instances{state="warm"}"#),
        1.0
    );
    stop.cancel();
}
