//! The adversarial TLS suite: a hostile client (rustls' handshake, then records of its own
//! making) against `sigcast serve` in its own process. Each case checks what rustls requires
//! of a peer, or what sigcast's memory must not do, and then that the server still serves a
//! normal client.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile::{ALERT, APPLICATION_DATA, HANDSHAKE, Heard, Hostile};
use common::served::Served;
use rustls::pki_types::pem::PemObject;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// TLS alert descriptions the cases expect.
const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const DECODE_ERROR: u8 = 50;

/// A server whose market is still (one synthetic trade an hour), so that its memory moves
/// only with what the test does.
const QUIET: &[(&str, &str)] = &[("source.tick", "1h")];

/// The upgrade request with a valid token.
fn request(served: &Served) -> tungstenite::handshake::client::Request {
    let mut request = format!("wss://localhost:{}/", served.addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {}", served.token("hostile"))).unwrap(),
    );
    request
}

/// A hostile client that has upgraded to a WebSocket session.
fn session(served: &Served) -> WebSocket<Hostile> {
    let tls = Hostile::connect(served.addr, &served.ca(), None).unwrap();
    let (ws, response) = tungstenite::client(request(served), tls).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Sends sigcast's `ping` command and expects its `pong`: the session works both ways.
fn ping_pong<S: Read + Write>(ws: &mut WebSocket<S>) {
    ws.send(Message::text(r#"{"type":"ping"}"#)).unwrap();
    loop {
        match ws.read().unwrap() {
            Message::Text(t) if t.contains("\"pong\"") => return,
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

/// A real rustls client (TLS `versions`) that upgrades and gets a pong.
fn normal_client(served: &Served, versions: &[&'static rustls::SupportedProtocolVersion]) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(served.ca()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(served.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tls = rustls::StreamOwned::new(conn, tcp);
    let (mut ws, _) = tungstenite::client(request(served), tls).unwrap();
    ping_pong(&mut ws);
    if versions == [&rustls::version::TLS13] {
        // A key update the real client asks the server to answer: the session goes on.
        ws.get_mut().conn.refresh_traffic_keys().unwrap();
        ping_pong(&mut ws);
    }
    let _ = ws.close(None);
}

/// After each case: the server is up and serves a normal client.
fn still_serving(served: &mut Served) {
    assert!(served.alive(), "the server died:\n{}", served.log_text());
    normal_client(served, &[&rustls::version::TLS13]);
}

/// What the server sent until it closed the connection, within a bound.
fn closed_with(ws: &mut WebSocket<Hostile>) -> Vec<Heard> {
    let hostile = ws.get_mut();
    hostile
        .tcp
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let began = Instant::now();
    let heard = hostile.until_closed();
    assert!(began.elapsed() < Duration::from_secs(10), "not closed");
    heard
}

fn fatal_alert(heard: &[Heard]) -> Option<u8> {
    heard.iter().find_map(|h| match h {
        Heard::Alert(2, desc) => Some(*desc),
        _ => None,
    })
}

/// RFC 8446 5.1 lets a ClientHello span records. Such handshakes complete; thousands of
/// them, closed, leave next to nothing behind in the server (no secret kept per handshake).
#[test]
fn a_client_hello_in_16_byte_records_completes_and_leaves_nothing_behind() {
    let mut served = Served::start(QUIET);
    // The handshake completes, and the session on it works.
    let tls = Hostile::connect(served.addr, &served.ca(), Some(16)).unwrap();
    let (mut ws, _) = tungstenite::client(request(&served), tls).unwrap();
    ping_pong(&mut ws);
    drop(ws);

    let handshakes = |n: usize| {
        for _ in 0..n {
            let mut tls = Hostile::connect(served.addr, &served.ca(), Some(16)).unwrap();
            let _ = tls.send(b"");
        }
    };
    // Warm: the allocator's pools and the server's first-burst structures are in place.
    handshakes(500);
    std::thread::sleep(Duration::from_secs(2));
    let before = served.rss_kib();
    let n = 5_000;
    handshakes(n);
    // The server hands freed memory back after a burst (malloc_trim, within a second or two).
    std::thread::sleep(Duration::from_secs(3));
    let after = served.rss_kib();
    let per_connection = after.saturating_sub(before) as f64 * 1024.0 / n as f64;
    common::report(
        "tls_fragmented_hello",
        &format!(
            "fragmented ClientHello: {n} handshakes, RSS {before} -> {after} KiB, {per_connection:.1} B left per connection"
        ),
    );
    assert!(
        per_connection < 32.0,
        "{per_connection:.1} B per connection left behind ({before} -> {after} KiB)"
    );
    still_serving(&mut served);
}

/// A client that floods KeyUpdates (asking for the server's, or not) and never reads: the
/// server refuses the flood (rustls allows 32 between application data) and closes; its
/// memory does not grow with the flood.
#[test]
fn a_key_update_flood_is_refused_and_costs_no_memory() {
    let mut served = Served::start(QUIET);
    for requested in [true, false] {
        let mut ws = session(&served);
        let before = served.rss_kib();
        let hostile = ws.get_mut();
        let mut flood = Vec::new();
        for _ in 0..20_000 {
            flood.extend(hostile.key_update(requested));
        }
        // Never reads while it writes: whatever the socket takes. The server refuses the
        // flood and closes (with unread flood in its buffer, a reset that may take its alert
        // with it); a server that took it whole would keep the session, and time out here.
        let _ = hostile.send_raw(&flood);
        closed_with(&mut ws);
        let after = served.rss_kib();
        assert!(
            after < before + 4 * 1024,
            "requested={requested}: RSS {before} -> {after} KiB"
        );
        still_serving(&mut served);
    }
}

/// Key updates from the client, `k` (not asking for the server's) and `K` (asking): the
/// session works both ways after each; several in a row too.
#[test]
fn client_key_updates_keep_the_session_working_both_ways() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    for requested in [false, true, true, false, true] {
        let record = ws.get_mut().key_update(requested);
        ws.get_mut().send_raw(&record).unwrap();
        ping_pong(&mut ws);
    }
    still_serving(&mut served);
}

/// RFC 8446 5.1: a KeyUpdate ends its record; two in one record are refused.
#[test]
fn two_key_updates_in_one_record_are_refused() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    let hostile = ws.get_mut();
    let mut two = Hostile::key_update_message(false).to_vec();
    two.extend(Hostile::key_update_message(false));
    let record = hostile.seal(HANDSHAKE, &two, 0);
    hostile.send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert_eq!(fatal_alert(&heard), Some(UNEXPECTED_MESSAGE), "{heard:?}");
    still_serving(&mut served);
}

/// A KeyUpdate split across two records is one message, as rustls reads it: accepted.
#[test]
fn a_key_update_split_across_records_is_accepted() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    let hostile = ws.get_mut();
    let message = Hostile::key_update_message(false);
    let mut wire = hostile.seal(HANDSHAKE, &message[..2], 0);
    wire.extend(hostile.seal(HANDSHAKE, &message[2..], 0));
    hostile.advance_tx();
    hostile.send_raw(&wire).unwrap();
    ping_pong(&mut ws);
    still_serving(&mut served);
}

/// An inner plaintext over 2^14 + 1 bytes (content and type) is refused with
/// record_overflow; one at the limit is taken.
#[test]
fn an_oversized_plaintext_is_refused() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    // At the limit: 2^14 bytes of padding-free content would be a WebSocket frame's bytes;
    // zeros of padding are not content, so content + type + padding = 2^14 + 1 exactly.
    let hostile = ws.get_mut();
    let record = hostile.seal(APPLICATION_DATA, b"", 16_384);
    hostile.send_raw(&record).unwrap();
    ping_pong(&mut ws);
    let hostile = ws.get_mut();
    let record = hostile.seal(APPLICATION_DATA, b"", 16_385);
    hostile.send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert_eq!(fatal_alert(&heard), Some(RECORD_OVERFLOW), "{heard:?}");
    still_serving(&mut served);
}

/// A record over TLS 1.3's ciphertext limit (2^14 + 256) is refused once it is in; one whose
/// header announces more than any TLS version allows is refused at the header, before the
/// server waits for its body.
#[test]
fn oversized_records_are_refused() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    let len: u16 = 16_384 + 256 + 1;
    let mut record = vec![APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
    record.resize(5 + usize::from(len), 7);
    ws.get_mut().send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert!(fatal_alert(&heard).is_some(), "{heard:?}");

    let mut ws = session(&served);
    ws.get_mut()
        .send_raw(&[APPLICATION_DATA, 3, 3, 0xff, 0xff, 0, 0])
        .unwrap();
    let heard = closed_with(&mut ws);
    assert!(fatal_alert(&heard).is_some(), "{heard:?}");
    still_serving(&mut served);
}

/// A record that does not authenticate mid-session ends it with bad_record_mac.
#[test]
fn a_bad_tag_mid_session_is_refused() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    ping_pong(&mut ws);
    let hostile = ws.get_mut();
    let mut record = hostile.seal(APPLICATION_DATA, b"hello", 0);
    let last = record.len() - 1;
    record[last] ^= 1;
    hostile.send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert_eq!(fatal_alert(&heard), Some(BAD_RECORD_MAC), "{heard:?}");
    still_serving(&mut served);
}

/// An inner content type TLS does not define ends the session with unexpected_message.
#[test]
fn an_unknown_content_type_is_refused() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    let hostile = ws.get_mut();
    let record = hostile.seal(99, b"?", 0);
    hostile.send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert_eq!(fatal_alert(&heard), Some(DECODE_ERROR), "{heard:?}");
    still_serving(&mut served);
}

/// Zero-length application data is allowed (RFC 8446 5.4) and changes nothing; a record of
/// another type with nothing in it is not (RFC 8446 5.1).
#[test]
fn zero_length_records() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    let hostile = ws.get_mut();
    let mut empties = Vec::new();
    for _ in 0..10 {
        empties.extend(hostile.seal(APPLICATION_DATA, b"", 0));
    }
    hostile.send_raw(&empties).unwrap();
    ping_pong(&mut ws);
    ws.get_mut().send_raw(&[HANDSHAKE, 3, 3, 0, 0]).unwrap();
    let heard = closed_with(&mut ws);
    assert!(fatal_alert(&heard).is_some(), "{heard:?}");
    still_serving(&mut served);
}

/// A fatal alert from the client ends the connection at once.
#[test]
fn a_client_alert_ends_the_connection() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    let hostile = ws.get_mut();
    let record = hostile.seal(ALERT, &[2, 40], 0); // handshake_failure
    hostile.send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert!(
        !heard.iter().any(|h| matches!(h, Heard::Data(_))),
        "{heard:?}"
    );
    still_serving(&mut served);
}

/// close_notify both ways: the client's is answered with the server's before it closes.
#[test]
fn a_client_close_notify_is_answered_with_the_servers() {
    let mut served = Served::start(&[]);
    let mut ws = session(&served);
    ping_pong(&mut ws);
    let hostile = ws.get_mut();
    let record = hostile.seal(ALERT, &[1, CLOSE_NOTIFY], 0);
    hostile.send_raw(&record).unwrap();
    let heard = closed_with(&mut ws);
    assert!(
        heard.contains(&Heard::Alert(1, CLOSE_NOTIFY)),
        "the server's close_notify: {heard:?}"
    );
    still_serving(&mut served);
}

/// A handshake rustls refuses ends with its alert, in the clear: here a ClientHello that
/// offers only TLS 1.3 cipher suites the server lacks.
#[test]
fn a_refused_handshake_gets_an_alert() {
    let mut served = Served::start(&[]);
    let mut tcp = TcpStream::connect(served.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A ClientHello (TLS 1.3 only) whose one cipher suite is TLS_AES_128_CCM_SHA256 (0x1304).
    let mut hello = Vec::new();
    hello.extend([3, 3]);
    hello.extend([7u8; 32]); // random
    hello.push(0); // no session id
    hello.extend([0, 2, 0x13, 0x04]);
    hello.extend([1, 0]); // null compression
    let mut extensions = Vec::new();
    extensions.extend([0, 43, 0, 3, 2, 3, 4]); // supported_versions: TLS 1.3
    extensions.extend([0, 10, 0, 4, 0, 2, 0, 29]); // supported_groups: x25519
    extensions.extend([0, 13, 0, 4, 0, 2, 4, 3]); // signature_algorithms: ecdsa_p256_sha256
    extensions.extend([0, 51, 0, 38, 0, 36, 0, 29, 0, 32]); // key_share: x25519
    extensions.extend([9u8; 32]);
    hello.extend((extensions.len() as u16).to_be_bytes());
    hello.extend(extensions);
    let mut message = vec![1, 0, (hello.len() >> 8) as u8, hello.len() as u8];
    message.extend(hello);
    let mut record = vec![HANDSHAKE, 3, 1];
    record.extend((message.len() as u16).to_be_bytes());
    record.extend(message);
    tcp.write_all(&record).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert_eq!(answer.first(), Some(&ALERT), "an alert record: {answer:?}");
    assert_eq!(answer.get(5), Some(&2), "a fatal one: {answer:?}");
    still_serving(&mut served);
}

/// A TLS 1.2 session (rustls keeps such sessions too) works as a TLS 1.3 one does.
#[test]
fn a_tls12_session_works() {
    let mut served = Served::start(&[]);
    normal_client(&served, &[&rustls::version::TLS12]);
    still_serving(&mut served);
}
