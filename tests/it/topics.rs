//! The JSON command protocol (subscribe, unsubscribe, ping) and token scopes: what each
//! client receives is its scope, narrowed by its topics.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use sigcast::auth::Scope;
use sigcast::strategy::{Side, Signal};

fn from(symbol: &str, strategy: &str) -> Signal {
    Signal {
        strategy: strategy.into(),
        ..signal(symbol, Side::Buy, 100.0)
    }
}

async fn reply(ws: &mut Client, command: &str) -> Value {
    send_text(ws, command).await;
    serde_json::from_str(&next_text(ws).await).unwrap()
}

/// Reads `n` signals as (symbol, strategy).
async fn signals(ws: &mut Client, n: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let v: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        got.push((
            v["content"]["symbol"].as_str().unwrap().to_string(),
            v["content"]["strategy"].as_str().unwrap().to_string(),
        ));
    }
    got
}

/// (symbol, strategy) pairs as `signals` returns them.
fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn publish_mix(server: &TestServer) {
    for (symbol, strategy) in [
        ("BTCUSDT", "fast"),
        ("ETHUSDT", "fast"),
        ("BTCUSDT", "slow"),
        ("ETHUSDT", "slow"),
    ] {
        server.hub.publish(&from(symbol, strategy));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_filter_by_symbol_and_strategy() {
    let server = TestServer::start(&[]).await;
    let mut ws = server.connect(Some(&server.token("t"))).await.unwrap();
    server.wait_listeners(1).await;

    let pong = reply(&mut ws, r#"{"type":"ping"}"#).await;
    assert_eq!(pong["type"], "pong");
    let ack = reply(
        &mut ws,
        r#"{"type":"subscribe","topic":"signals.BTCUSDT.*"}"#,
    )
    .await;
    assert_eq!(ack["type"], "subscribe_ack");
    assert_eq!(ack["topic"], "signals.BTCUSDT.*");
    let ack = reply(&mut ws, r#"{"type":"subscribe","topic":"signals.*.slow"}"#).await;
    assert_eq!(ack["type"], "subscribe_ack");
    publish_mix(&server);
    let got = signals(&mut ws, 3).await;
    let want = [
        ("BTCUSDT", "fast"),
        ("BTCUSDT", "slow"),
        ("ETHUSDT", "slow"),
    ];
    assert_eq!(got, owned(&want));
    expect_silence(&mut ws, Duration::from_millis(300)).await;

    let ack = reply(
        &mut ws,
        r#"{"type":"unsubscribe","topic":"signals.*.slow"}"#,
    )
    .await;
    assert_eq!(ack["type"], "unsubscribe_ack");
    publish_mix(&server);
    assert_eq!(
        signals(&mut ws, 2).await,
        owned(&[("BTCUSDT", "fast"), ("BTCUSDT", "slow")])
    );

    let bad = reply(&mut ws, r#"{"type":"subscribe","topic":"stock.AAPL.1m"}"#).await;
    assert_eq!(bad["error_code"], "invalid_topic");
    let bad = reply(
        &mut ws,
        r#"{"type":"unsubscribe","topic":"signals.SOLUSDT.*"}"#,
    )
    .await;
    assert_eq!(bad["error_code"], "subscription_failed");
    let bad = reply(&mut ws, r#"{"type":"subscribe"}"#).await;
    assert_eq!(bad["error_code"], "invalid_message");
    let bad = reply(&mut ws, r#"{"type":"dance"}"#).await;
    assert_eq!(bad["error_code"], "invalid_message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_filter_and_refuse_subscriptions_outside_them() {
    let server = TestServer::start(&[]).await;
    let scope = Scope {
        symbols: Some(vec!["BTCUSDT".into()]),
        strategies: None,
        publisher: false,
    };
    let token = server.token_scoped("scoped", &scope);
    let mut ws = server.connect(Some(&token)).await.unwrap();
    server.wait_listeners(1).await;
    publish_mix(&server);
    assert_eq!(
        signals(&mut ws, 2).await,
        owned(&[("BTCUSDT", "fast"), ("BTCUSDT", "slow")])
    );
    expect_silence(&mut ws, Duration::from_millis(300)).await;
    let refused = reply(
        &mut ws,
        r#"{"type":"subscribe","topic":"signals.ETHUSDT.*"}"#,
    )
    .await;
    assert_eq!(refused["error_code"], "subscription_failed");

    // A resume delivers only what the scope allows, too.
    drop(ws);
    let mut again = server.connect_resuming(&token, "0").await.unwrap();
    let resumed: Vec<u64> = {
        let mut seqs = Vec::new();
        for _ in 0..2 {
            let v: Value = serde_json::from_str(&next_text(&mut again).await).unwrap();
            assert_eq!(v["content"]["symbol"], "BTCUSDT");
            seqs.push(v["seq"].as_u64().unwrap());
        }
        seqs
    };
    assert_eq!(resumed, vec![1, 3]);
    expect_silence(&mut again, Duration::from_millis(300)).await;
}

/// `test` answers within the token's scope: only its symbols (at their latest price), under
/// its strategies; a scope with no tracked symbol gets a clear error, never another symbol.
/// A resume asked by message is scoped as the handshake's is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_signals_and_resumes_stay_in_scope() {
    let server = TestServer::start(&[("server.test_burst", "10")]).await;
    server.hub.mark_price("BTCUSDT", 75000.0);
    server.hub.mark_price("ETHUSDT", 3456.5);
    publish_mix(&server);
    // Committed, and so broadcast, before the client comes: it sees them only by resuming.
    let journal = server.hub.journal().unwrap();
    journal.wait_flushed(4).await.unwrap();
    let eth = Scope {
        symbols: Some(vec!["ETHUSDT".into()]),
        strategies: Some(vec!["fast".into()]),
        publisher: false,
    };
    let mut ws = server
        .connect(Some(&server.token_scoped("eth", &eth)))
        .await
        .unwrap();
    for round in 0..3 {
        send_text(&mut ws, "test").await;
        for side in ["buy", "sell"] {
            let v: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
            assert_eq!(v["type"], side, "round {round}: {v}");
            assert_eq!(v["is_test"], true);
            assert_eq!(v["content"]["symbol"], "ETHUSDT", "round {round}: {v}");
            assert_eq!(v["content"]["price"], 3456.5);
            assert_eq!(v["content"]["strategy"], "fast");
        }
    }
    // Resume by message: ETHUSDT from `fast` only (seq 2 of the mix).
    send_text(&mut ws, r#"{"type":"resume","since":0}"#).await;
    let v: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(
        (v["seq"].as_u64(), v["content"]["symbol"].as_str()),
        (Some(2), Some("ETHUSDT"))
    );
    expect_silence(&mut ws, Duration::from_millis(300)).await;

    let doge = Scope {
        symbols: Some(vec!["DOGEUSDT".into()]),
        ..Scope::default()
    };
    let mut ws = server
        .connect(Some(&server.token_scoped("doge", &doge)))
        .await
        .unwrap();
    let refused = reply(&mut ws, "test").await;
    assert_eq!(refused["error_code"], "test_unavailable", "{refused}");
    assert!(
        refused["error_message"]
            .as_str()
            .unwrap()
            .contains("DOGEUSDT"),
        "{refused}"
    );
    expect_silence(&mut ws, Duration::from_millis(300)).await;
}

/// A publisher's signal reaches subscribers with a seq; a subscriber cannot publish; a bad
/// signal is refused with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_publish_and_subscribers_cannot() {
    let server = TestServer::start(&[]).await;
    let publisher_scope = Scope {
        publisher: true,
        ..Scope::default()
    };
    let mut publisher = server
        .connect(Some(&server.token_scoped("feed", &publisher_scope)))
        .await
        .unwrap();
    let mut subscriber = server.connect(Some(&server.token("reader"))).await.unwrap();
    server.wait_listeners(2).await;
    let now = sigcast::clock::unix_now();
    let body = format!(
        r#"{{"type":"publish","signal":{{"type":"buy","content":{{"symbol":"BTCUSDT","price":75000.0,"timestamp":{now},"strategy":"tv-alert","reason":"breakout"}},"is_test":false}}}}"#
    );
    let ack = reply(&mut publisher, &body).await;
    assert_eq!(ack["type"], "publish_ack");
    assert_eq!(ack["seq"], 1);
    let got: Value = serde_json::from_str(&next_text(&mut subscriber).await).unwrap();
    assert_eq!(got["type"], "buy");
    assert_eq!(got["content"]["symbol"], "BTCUSDT");
    assert_eq!(got["content"]["price"], 75000.0);
    assert_eq!(got["content"]["timestamp"], now);
    assert_eq!(got["content"]["strategy"], "tv-alert");
    assert_eq!(got["seq"], 1);

    // The publisher is a client too: it gets the broadcast like everyone.
    let own: Value = serde_json::from_str(&next_text(&mut publisher).await).unwrap();
    assert_eq!(own["seq"], 1);

    let denied = reply(&mut subscriber, &body).await;
    assert_eq!(denied["error_code"], "publish_denied");
    let bad = body.replace("75000.0", "-5");
    let refused = reply(&mut publisher, &bad).await;
    assert_eq!(refused["error_code"], "invalid_signal");
    assert!(
        refused["error_message"]
            .as_str()
            .unwrap()
            .contains("content.price")
    );
    expect_silence(&mut subscriber, Duration::from_millis(300)).await;
}

/// One HTTP request over TLS; returns the status and the JSON body.
async fn http_post(
    server: &TestServer,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, Value) {
    http_post_with(server, path, auth, "", body).await
}

/// The status and JSON body of the answer on `tls`, read to its end.
async fn answer<S: tokio::io::AsyncRead + Unpin>(tls: &mut S) -> (u16, Value) {
    use tokio::io::AsyncReadExt;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// [`http_post`] with `extra` header lines (each ending in CRLF).
async fn http_post_with(
    server: &TestServer,
    path: &str,
    auth: Option<&str>,
    extra: &str,
    body: &str,
) -> (u16, Value) {
    use tokio::io::AsyncWriteExt;
    let mut tls = tls_connect(server.addr, &server.material.path("cert.pem")).await;
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: sigcast\r\n{auth}{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    answer(&mut tls).await
}

/// `POST /v1/signals` with `body` sent in chunks (`Transfer-Encoding: chunked`, 4 KiB each).
async fn http_post_chunked(server: &TestServer, token: &str, body: &str) -> (u16, Value) {
    use tokio::io::AsyncWriteExt;
    let mut tls = tls_connect(server.addr, &server.material.path("cert.pem")).await;
    let mut request = format!(
        "POST /v1/signals HTTP/1.1\r\nHost: sigcast\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(4096) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer 413 and close before it has read everything.
    let _ = tls.write_all(request.as_bytes()).await;
    answer(&mut tls).await
}

/// `POST /v1/signals` with a publisher token publishes; the answers name what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publish_on_the_client_port() {
    let server = TestServer::start(&[]).await;
    let publisher = server.token_scoped(
        "webhook",
        &Scope {
            publisher: true,
            ..Scope::default()
        },
    );
    let reader = server.token("reader");
    let mut ws = server.connect(Some(&reader)).await.unwrap();
    server.wait_listeners(1).await;
    let now = sigcast::clock::unix_now();
    let body = format!(
        r#"{{"type":"sell","content":{{"symbol":"ETHUSDT","price":3500.5,"timestamp":{now}}}}}"#
    );
    let (status, ack) = http_post(&server, "/v1/signals", Some(&publisher), &body).await;
    assert_eq!(
        (status, ack["type"].as_str()),
        (200, Some("publish_ack")),
        "{ack}"
    );
    assert_eq!(ack["seq"], 1);
    let got: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(got["content"]["symbol"], "ETHUSDT");
    assert_eq!(got["content"]["strategy"], "external");
    assert_eq!(got["seq"], 1);

    // TradingView style: the token in the body, an RFC 3339 time.
    let tv = format!(
        r#"{{"token":"{publisher}","type":"buy","content":{{"symbol":"BTCUSDT","price":75000,"timestamp":"{}","strategy":"tv"}}}}"#,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let (status, ack) = http_post(&server, "/v1/signals", None, &tv).await;
    assert_eq!((status, ack["seq"].as_u64()), (200, Some(2)), "{ack}");

    // A retry named by its key, in the Idempotency-Key header or an "id" in the body, is
    // answered with the first one's seq and stored once.
    let key = "Idempotency-Key: order-7\r\n";
    let (status, first) =
        http_post_with(&server, "/v1/signals", Some(&publisher), key, &body).await;
    assert_eq!(
        (status, first["seq"].as_u64(), first["id"].as_str()),
        (200, Some(3), Some("order-7")),
        "{first}"
    );
    let (status, again) =
        http_post_with(&server, "/v1/signals", Some(&publisher), key, &body).await;
    assert_eq!((status, again["seq"].as_u64()), (200, Some(3)), "{again}");
    let with_id = body.replacen('{', r#"{"id":"order-7","#, 1);
    let (status, again) = http_post(&server, "/v1/signals", Some(&publisher), &with_id).await;
    assert_eq!((status, again["seq"].as_u64()), (200, Some(3)), "{again}");
    assert_eq!(server.hub.last_seq(), 3, "stored once");
    let bad_key = "Idempotency-Key: has space\r\n";
    let (status, e) =
        http_post_with(&server, "/v1/signals", Some(&publisher), bad_key, &body).await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (400, Some("invalid_message")),
        "{e}"
    );

    let (status, e) = http_post(&server, "/v1/signals", Some(&reader), &body).await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (403, Some("publish_denied"))
    );
    let (status, _) = http_post(&server, "/v1/signals", None, &body).await;
    assert_eq!(status, 401);
    let (status, _) = http_post(&server, "/v1/signals", Some("garbage"), &body).await;
    assert_eq!(status, 401);
    let bad = body.replace("3500.5", "\"free\"");
    let (status, e) = http_post(&server, "/v1/signals", Some(&publisher), &bad).await;
    assert_eq!(
        (status, e["error_code"].as_str()),
        (400, Some("invalid_signal"))
    );
    assert!(
        e["error_message"]
            .as_str()
            .unwrap()
            .starts_with("content.price")
    );
    let (status, _) = http_post(&server, "/v2/other", Some(&publisher), &body).await;
    assert_eq!(status, 404);
    // Over 16 KiB: 413, whether the length is declared or the body is sent in chunks.
    let padded = body.replacen('{', &format!(r#"{{"pad":"{}","#, "x".repeat(17_000)), 1);
    let (status, e) = http_post(&server, "/v1/signals", Some(&publisher), &padded).await;
    assert_eq!(status, 413, "{e}");
    let (status, e) = http_post_chunked(&server, &publisher, &padded).await;
    assert_eq!(status, 413, "{e}");
    let (status, e) = http_post_chunked(&server, &publisher, &body).await;
    assert_eq!(
        (status, e["type"].as_str()),
        (200, Some("publish_ack")),
        "{e}"
    );
    // The WebSocket path on the same port is unaffected.
    send_text(&mut ws, "test").await;
    let t: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert!(t["is_test"] == true || t["seq"] == 2, "{t}");
}
