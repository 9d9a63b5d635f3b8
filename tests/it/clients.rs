//! End to end with the clients sigcast's users have: the guide's Python `websocket-client`
//! example, the guide's JavaScript example on Node `ws`, and `wscat`.
//!
//! `scripts/test` installs them and points these variables at them:
//! `SIGCAST_E2E_PYTHON` (a Python with websocket-client) and `SIGCAST_E2E_NODE_MODULES`
//! (a node_modules with ws and wscat). Under plain `cargo test` without them the tests say
//! so and pass; with `CI` set they fail instead, so CI can never skip them silently.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use sigcast::strategy::Side;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Publishes a buy and a sell for BTCUSDT every 200 ms until dropped.
struct Publisher(tokio::task::JoinHandle<()>);

impl Publisher {
    fn start(server: &TestServer) -> Self {
        let hub = server.hub.clone();
        Self(tokio::spawn(async move {
            loop {
                hub.publish(&signal("BTCUSDT", Side::Buy, 75000.0));
                hub.publish(&signal("BTCUSDT", Side::Sell, 75100.5));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `command` until every line in `wanted` has appeared (as a substring of some output
/// line), then kills it; returns all output. Fails after 30 s.
async fn run_until(mut command: Command, wanted: &[&str]) -> String {
    command
        .stdin(Stdio::piped()) // kept open: wscat exits when its stdin ends
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("client starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let (mut out_open, mut err_open) = (true, true);
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while out_open || err_open {
            let line = tokio::select! {
                l = out.next_line(), if out_open => l.ok().flatten().or_else(|| { out_open = false; None }),
                l = err.next_line(), if err_open => l.ok().flatten().or_else(|| { err_open = false; None }),
            };
            if let Some(line) = line {
                seen.push_str(&line);
                seen.push('\n');
                if wanted.iter().all(|w| seen.contains(w)) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(found, Ok(true), "client output lacked {wanted:?}:\n{seen}");
    seen
}

#[tokio::test]
async fn python_websocket_client_example_receives_signals() {
    let Some(python) = e2e_tool("SIGCAST_E2E_PYTHON") else {
        return;
    };
    let server = TestServer::start(&[]).await;
    let _publisher = Publisher::start(&server);
    let mut cmd = Command::new(python);
    cmd.arg("-u")
        .arg(e2e_dir().join("python_client.py"))
        .env("SIGCAST_URL", server.url())
        .env("SIGCAST_TOKEN", server.token("python"))
        .env(
            "WEBSOCKET_CLIENT_CA_BUNDLE",
            server.material.path("cert.pem"),
        );
    let out = run_until(
        cmd,
        &[
            "WebSocket 连接已建立",
            "收到信号: {'type': 'buy', 'content': {'symbol': 'BTCUSDT', 'price': 75000.0, 'timestamp': 1720000000",
            "买入信号：BTCUSDT，价格：75000.0",
            "卖出信号：BTCUSDT，价格：75100.5",
            "'is_test': False",
        ],
    )
    .await;
    assert!(!out.contains("WebSocket 错误"), "{out}");

    // The same example with a bad token is refused during the handshake.
    let mut cmd = Command::new(e2e_tool("SIGCAST_E2E_PYTHON").unwrap());
    cmd.arg("-u")
        .arg(e2e_dir().join("python_client.py"))
        .env("SIGCAST_URL", server.url())
        .env("SIGCAST_TOKEN", "not-a-token")
        .env(
            "WEBSOCKET_CLIENT_CA_BUNDLE",
            server.material.path("cert.pem"),
        );
    let out = run_until(cmd, &["WebSocket 错误", "401"]).await;
    assert!(!out.contains("收到信号"), "{out}");
}

#[tokio::test]
async fn node_ws_example_receives_signals_and_test_replies() {
    let Some(modules) = e2e_tool("SIGCAST_E2E_NODE_MODULES") else {
        return;
    };
    let server = TestServer::start(&[]).await;
    server.hub.mark_price("BTCUSDT", 74000.25);
    let _publisher = Publisher::start(&server);
    let mut cmd = Command::new("node");
    cmd.arg(e2e_dir().join("node_client.js"))
        .env("NODE_PATH", &modules)
        .env("SIGCAST_URL", server.url())
        .env("SIGCAST_TOKEN", server.token("node"))
        .env("NODE_EXTRA_CA_CERTS", server.material.path("cert.pem"));
    let out = run_until(
        cmd,
        &[
            "已连接到 WebSocket 服务器",
            "is_test: true",
            "买入信号：BTCUSDT，价格：74000.25",
            "卖出信号：BTCUSDT，价格：74000.25",
            "is_test: false",
            "买入信号：BTCUSDT，价格：75000",
        ],
    )
    .await;
    assert!(!out.contains("WebSocket 错误"), "{out}");
}

#[tokio::test]
async fn wscat_with_bearer_header_gets_test_signals() {
    let Some(modules) = e2e_tool("SIGCAST_E2E_NODE_MODULES") else {
        return;
    };
    let server = TestServer::start(&[]).await;
    server.hub.mark_price("BTCUSDT", 73000.5);
    let token = server.token("wscat");
    // Exactly the line `sigcast demo` prints (README, docs/protocol.md), plus -x test (type `test` after connecting) and a wait.
    let mut cmd = Command::new(modules.join(".bin/wscat"));
    cmd.args([
        "-c",
        &server.url(),
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-n",
    ])
    .args(["-x", "test", "-w", "10"]);
    let out = run_until(
        cmd,
        &[
            r#"{"type":"buy","content":{"symbol":"BTCUSDT","price":73000.5,"#,
            r#"{"type":"sell","content":{"symbol":"BTCUSDT","price":73000.5,"#,
            r#""is_test":true"#,
        ],
    )
    .await;
    assert!(
        !out.contains(r#""is_test":false"#),
        "test replies only: {out}"
    );

    // Without the header wscat is refused with 401.
    let mut cmd = Command::new(modules.join(".bin/wscat"));
    cmd.args(["-c", &server.url(), "-n", "-x", "test"]);
    run_until(cmd, &["401"]).await;
}
