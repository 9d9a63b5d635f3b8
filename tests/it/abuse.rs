//! Handshake and frame abuse: every case gets its documented HTTP status or close code,
//! nothing hangs, and a bystander client connected throughout sees no effect.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use sigcast::strategy::Side;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A client connected before the abuse, checked after it: still open, still delivered to.
struct Bystander(Client);

impl Bystander {
    async fn join(server: &TestServer) -> Self {
        let ws = server
            .connect(Some(&server.token("bystander")))
            .await
            .unwrap();
        server.wait_listeners(1).await;
        Bystander(ws)
    }

    async fn still_served(mut self, server: &TestServer) {
        server.hub.publish(&signal("ETHUSDT", Side::Sell, 3210.5));
        // Signals published during the test may come first.
        while !next_text(&mut self.0).await.contains("ETHUSDT") {}
    }
}

/// Reads until the server closes the connection (EOF or reset); how long that took.
async fn until_closed<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    within(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    started.elapsed()
}

/// Sends a raw request head over TLS; returns the response's status and head.
async fn raw_request(server: &TestServer, head: &str) -> (u16, String) {
    let mut tls = tls_connect(server.addr, &server.material.path("cert.pem")).await;
    tls.write_all(head.as_bytes()).await.unwrap();
    // Until the server closes, or the end of the head of a 101 (which stays open).
    let mut response = Vec::new();
    within(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !response.windows(4).any(|w| w == b"\r\n\r\n")
            || !response.starts_with(b"HTTP/1.1 101")
        {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

fn upgrade_head(server: &TestServer, key: Option<&str>, version: Option<&str>) -> String {
    let mut head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {}\r\n",
        server.token("raw")
    );
    if let Some(key) = key {
        head.push_str(&format!("Sec-WebSocket-Key: {key}\r\n"));
    }
    if let Some(version) = version {
        head.push_str(&format!("Sec-WebSocket-Version: {version}\r\n"));
    }
    head.push_str("\r\n");
    head
}

#[tokio::test]
async fn slowloris_and_stalled_tls_are_cut_at_the_handshake_timeout() {
    let server = TestServer::start(&[("server.handshake_timeout", "1s")]).await;
    let bystander = Bystander::join(&server).await;

    // Request bytes trickled in, one line every 200 ms, for longer than the budget.
    let mut tls = tls_connect(server.addr, &server.material.path("cert.pem")).await;
    let started = Instant::now();
    tls.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let trickle = async {
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if tls
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut probe = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), tls.read(&mut probe)).await
            {
                break;
            }
        }
    };
    within(Duration::from_secs(8), trickle).await;
    let cut = started.elapsed();
    assert!(
        cut < Duration::from_secs(4),
        "slowloris held on for {cut:?}"
    );

    // A TLS record header announcing a ClientHello, then ten of its 512 bytes, then nothing.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .await
    .unwrap();
    let cut = until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        cut >= Duration::from_millis(900),
        "cut before the budget: {cut:?}"
    );

    bystander.still_served(&server).await;
    assert_eq!(
        server
            .shared
            .stats
            .handshaking
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Both cuts are counted, so a flood of stalled handshakes shows on /metrics.
    server
        .metrics_with("sigcast_handshakes_total{outcome=\"timed_out\"} 2")
        .await;
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_end_at_once() {
    // A long budget: these must end because they are not TLS, not because time ran out.
    let server = TestServer::start(&[("server.handshake_timeout", "30s")]).await;
    let bystander = Bystander::join(&server).await;
    let garbage: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let inputs: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x00\x00\x00\x00\x00\x00\x00\x00",
        &garbage,
    ];
    for input in inputs {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(input).await.unwrap();
        let took = until_closed(&mut tcp, Duration::from_secs(5)).await;
        assert!(
            took < Duration::from_secs(2),
            "{:?}...: open for {took:?}",
            &input[..8]
        );
    }
    bystander.still_served(&server).await;
}

#[tokio::test]
async fn bad_websocket_key_or_version_gets_400_or_426() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::join(&server).await;
    let good_key = Some("dGhlIHNhbXBsZSBub25jZQ==");
    let cases = [
        (None, Some("13"), 400, "missing Sec-WebSocket-Key"),
        (Some("abc"), Some("13"), 400, "16 bytes in base64"),
        (
            Some("!!!!!!!!!!!!!!!!!!!!!!=="),
            Some("13"),
            400,
            "16 bytes in base64",
        ),
        (good_key, Some("8"), 426, "version 13"),
        (good_key, None, 426, "version 13"),
    ];
    for (key, version, status, reason) in cases {
        let (got, response) = raw_request(&server, &upgrade_head(&server, key, version)).await;
        assert_eq!(got, status, "{key:?} {version:?}: {response}");
        assert!(response.contains(reason), "{response}");
        if status == 426 {
            // Header names are case-insensitive (RFC 9110); sigcast writes them title-cased.
            assert!(
                response
                    .to_ascii_lowercase()
                    .contains("\r\nsec-websocket-version: 13\r\n"),
                "{response}"
            );
        }
    }
    // The same head with a good key and version upgrades.
    let (got, _) = raw_request(&server, &upgrade_head(&server, good_key, Some("13"))).await;
    assert_eq!(got, 101);
    bystander.still_served(&server).await;
}

#[tokio::test]
async fn oversized_request_lines_and_heads_get_414_and_431() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::join(&server).await;
    // A request target over 8 KiB, in a head within 16 KiB: 414.
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    let (status, response) = raw_request(&server, &long_target).await;
    assert_eq!(status, 414, "{response}");
    assert!(
        response.contains("request target over 8192 bytes"),
        "{response}"
    );
    // A request line longer than a whole head may be: 431, as any head over 16 KiB.
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    assert_eq!(raw_request(&server, &long_line).await.0, 431);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    assert_eq!(raw_request(&server, &big_header).await.0, 431);
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = upgrade_head(&server, Some("dGhlIHNhbXBsZSBub25jZQ=="), Some("13")).replacen(
        "Host: localhost\r\n",
        &many,
        1,
    );
    let (status, response) = raw_request(&server, &many).await;
    assert_eq!(status, 431, "{response}");
    bystander.still_served(&server).await;
}

/// A WebSocket client whose socket is bound to `from` (another loopback address).
async fn connect_from(server: &TestServer, from: &str) -> Result<Client, u16> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let token = server.token("flood");
    server
        .connect_socket(socket, &token)
        .await
        .map_err(|refusal| refusal.status)
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_before_the_upgrade() {
    let server = TestServer::start(&[
        ("server.max_connections_per_ip", "4"),
        ("server.max_connections", "8"),
    ])
    .await;
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        match connect_from(&server, "127.0.0.2").await {
            Ok(ws) => flood.push(ws),
            Err(status) => {
                assert_eq!(status, 429);
                refused += 1;
            }
        }
    }
    assert_eq!((flood.len(), refused), (4, 8), "4 admitted, the rest 429");
    server.wait_listeners(4).await;

    // Other addresses are not affected...
    let other = connect_from(&server, "127.0.0.3")
        .await
        .expect("another address");
    let _ours = server
        .connect(Some(&server.token("local")))
        .await
        .expect("127.0.0.1");
    // ...until the global cap (8) answers 503 whoever asks.
    let mut more = vec![other];
    for from in ["127.0.0.4", "127.0.0.5"] {
        more.push(connect_from(&server, from).await.unwrap());
    }
    server.wait_listeners(8).await;
    assert_eq!(connect_from(&server, "127.0.0.6").await.err(), Some(503));

    // A flood client leaving frees its address's place.
    drop(flood.pop());
    server.wait_listeners(7).await;
    within(Duration::from_secs(5), async {
        loop {
            match connect_from(&server, "127.0.0.2").await {
                Ok(ws) => return flood.push(ws),
                Err(429) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(s) => panic!("{s}"),
            }
        }
    })
    .await;
    let over_ip_limit = server
        .shared
        .stats
        .handshakes()
        .find(|(o, _)| o.as_str() == "over_ip_limit")
        .map(|(_, n)| n);
    assert!(over_ip_limit >= Some(8), "counted: {over_ip_limit:?}");
}

/// One raw client frame: FIN, opcode, optional mask, payload (7-bit or 16-bit length).
fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        out.push(mask_bit | payload.len() as u8);
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Writes raw bytes under the client's WebSocket and returns the server's close code.
async fn close_code_after(server: &TestServer, bytes: &[u8]) -> (u16, String) {
    let mut ws = server.connect(Some(&server.token("raw"))).await.unwrap();
    ws.get_mut().write_all(bytes).await.unwrap();
    ws.get_mut().flush().await.unwrap();
    expect_close(&mut ws, Duration::from_secs(5)).await
}

#[tokio::test]
async fn frame_abuse_gets_its_close_code_and_spares_other_clients() {
    let server = TestServer::start(&[("server.max_message_size", "4096")]).await;
    let bystander = Bystander::join(&server).await;
    const TEXT: u8 = 1;
    const CONTINUATION: u8 = 0;
    const PING: u8 = 9;

    let oversized_fragments: Vec<u8> = (0..10)
        .flat_map(|i| {
            frame(
                i == 9,
                if i == 0 { TEXT } else { CONTINUATION },
                &[b'a'; 1000],
                true,
            )
        })
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("oversized message in fragments", oversized_fragments, 1009),
        (
            "oversized single frame",
            frame(true, TEXT, &[b'a'; 5000], true),
            1009,
        ),
        (
            "invalid UTF-8",
            frame(true, TEXT, b"caf\xc3\x28", true),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            [
                frame(false, TEXT, b"ab\xe2", true),
                frame(true, CONTINUATION, b"\x28\xa1", true),
            ]
            .concat(),
            1007,
        ),
        (
            "unmasked client frame",
            frame(true, TEXT, b"test", false),
            1002,
        ),
        (
            "control frame over 125 bytes",
            frame(true, PING, &[0u8; 126], true),
            1002,
        ),
        (
            "fragmented control frame",
            frame(false, PING, b"x", true),
            1002,
        ),
        (
            "continuation with nothing to continue",
            frame(true, CONTINUATION, b"x", true),
            1002,
        ),
        (
            "new message inside a fragmented one",
            [
                frame(false, TEXT, b"a", true),
                frame(true, TEXT, b"b", true),
            ]
            .concat(),
            1002,
        ),
        ("reserved opcode", frame(true, 3, b"x", true), 1002),
        (
            "reserved bits",
            {
                let mut f = frame(true, TEXT, b"test", true);
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("binary frame", frame(true, 2, b"\x01\x02", true), 1003),
    ];
    for (name, bytes, want) in cases {
        let (code, reason) = close_code_after(&server, &bytes).await;
        assert_eq!(code, want, "{name}: closed {code} {reason:?}");
        eprintln!("{code} {name:<40} {reason}");
    }

    // A properly fragmented `test` is one message: it gets its test signals.
    let mut ws = server.connect(Some(&server.token("frag"))).await.unwrap();
    let bytes = [
        frame(false, TEXT, b"te", true),
        frame(true, CONTINUATION, b"st", true),
    ]
    .concat();
    ws.get_mut().write_all(&bytes).await.unwrap();
    assert!(next_text(&mut ws).await.contains("\"is_test\":true"));

    bystander.still_served(&server).await;
}

#[tokio::test]
async fn ping_and_test_floods_are_absorbed() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::join(&server).await;

    // 20,000 pings without reading a single pong: the pongs do not pile up in the server.
    let mut pinger = server.connect(Some(&server.token("pinger"))).await.unwrap();
    let ping = frame(true, 9, b"flood", true);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 20_000)
        .collect();
    pinger.get_mut().write_all(&burst).await.unwrap();
    server.wait_listeners(2).await;
    server.hub.publish(&signal("BTCUSDT", Side::Buy, 1.0));
    assert!(
        next_text(&mut pinger).await.contains("BTCUSDT"),
        "the pinger is still served"
    );

    // 200 `test` commands: the burst is answered, the rest get rate_limited, nobody is closed.
    let mut tester = server.connect(Some(&server.token("tester"))).await.unwrap();
    for _ in 0..200 {
        tester.feed(Message::text("test")).await.unwrap();
    }
    tester.flush().await.unwrap();
    let (mut limited, mut signals) = (0, 0);
    while limited < 190 {
        let text = next_text(&mut tester).await;
        if text.contains("rate_limited") {
            limited += 1;
        } else if text.contains("\"is_test\":true") {
            signals += 1;
        }
    }
    assert!(signals >= 1, "the burst was answered");
    tester
        .send(Message::text("{\"type\":\"ping\"}"))
        .await
        .unwrap();
    loop {
        let text = next_text(&mut tester).await;
        if text.contains("\"pong\"") {
            break;
        }
    }
    bystander.still_served(&server).await;
}
