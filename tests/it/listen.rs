//! `sigcast listen`: its output over forced disconnects equals the journal exactly and
//! passes `sigcast verify`, and a refused token is a clear error, not endless retries.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::proxy::CutProxy;
use common::*;
use sigcast::strategy::Side;

/// Collects a child's stdout and stderr lines.
fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_output_over_three_forced_disconnects_equals_the_journal() {
    let server = TestServer::start(&[("server.queue_capacity", "10000")]).await;
    let proxy = CutProxy::start(server.addr).await;
    let mut child = common::sigcast_command()
        .args([
            "listen",
            &format!("wss://127.0.0.1:{}", proxy.addr.port()),
            "--ca",
            server.material.path("cert.pem").to_str().unwrap(),
        ])
        .env("SIGCAST_TOKEN", server.token("listener"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let mut printed = Vec::new();
    let read_until = |n: usize, printed: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while printed.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            printed.push(out.recv_timeout(left).expect("listen stalled"));
        }
    };
    server.wait_listeners(1).await;
    let mut published = 0;
    for round in 0..4 {
        for i in 0..50 {
            server
                .hub
                .publish(&signal("BTCUSDT", Side::Buy, 1000.0 + i as f64));
            published += 1;
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if round < 3 {
            // Cut mid-stream, then publish more while the client is away.
            read_until(published - 25, &mut printed);
            proxy.cut();
        }
    }
    read_until(published, &mut printed);
    let _ = child.kill();
    let _ = child.wait();

    let journal = server.hub.journal().unwrap();
    journal.wait_flushed(published as u64).await.unwrap();
    let (page, _) = journal.read(0, published as u64).await.unwrap();
    let expected: Vec<String> = page.iter().map(|p| p.frame.as_str().to_string()).collect();
    assert_eq!(printed.len(), 200);
    assert_eq!(
        printed, expected,
        "listen's output is the journal, no gap, no duplicate"
    );
    let stderr: Vec<String> = err.try_iter().collect();
    let connects = stderr.iter().filter(|l| l.contains("connected to")).count();
    assert!(connects >= 4, "reconnected after each cut: {stderr:?}");

    // Saved as printed, across the resumes, it is the signed chain, unbroken.
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("listen.jsonl");
    std::fs::write(&saved, printed.join("\n") + "\n").unwrap();
    let keys = tmp.path().join("keys.json");
    std::fs::write(
        &keys,
        serde_json::to_string(&*journal.public_keys()).unwrap(),
    )
    .unwrap();
    let run = common::sigcast_command()
        .args([
            "verify",
            saved.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains("200 signals, seq 1..200: 200 signatures good"),
        "{said}"
    );
    assert!(
        said.contains("chain: unbroken from the chain's first signal"),
        "{said}"
    );
}

#[test]
fn listen_with_a_refused_token_exits_with_a_clear_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start(&[]));
    let out = common::sigcast_command()
        .args([
            "listen",
            &format!("wss://127.0.0.1:{}", server.addr.port()),
            "--token",
            "not-a-token",
            "--ca",
            server.material.path("cert.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the token (HTTP 401)"), "{stderr}");

    // An expired token (signed by the server's own secret): one line saying so and what to
    // do, no backtrace. An empty one is caught before connecting.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "old", "jti": "old-1", "iss": "sigcast",
            "aud": "sigcast-clients", "iat": now - 7200, "exp": now - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(&server.material.secret()),
    )
    .unwrap();
    for (token, says) in [
        (expired.as_str(), "token expired"),
        ("  ", "--token is empty"),
    ] {
        let out = common::sigcast_command()
            .args([
                "listen",
                &format!("wss://127.0.0.1:{}", server.addr.port()),
                "--token",
                token,
                "--ca",
                server.material.path("cert.pem").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(
            lines[0].starts_with("sigcast: error:") && lines[0].contains(says),
            "{stderr}"
        );
        assert!(lines[0].contains("--token"), "says what to do: {stderr}");
    }
}
