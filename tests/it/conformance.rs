//! RFC 6455 conformance: the Autobahn test cases, run by `kosoku`, against
//! `examples/echo.rs`, which reads, answers and closes with sigcast's own session I/O
//! (`sigcast::server::wire`) and WebSocket settings.
//!
//! `scripts/test` installs kosoku (pinned by hash) and sets `SIGCAST_E2E_KOSOKU`. Every case
//! must end OK, NON-STRICT or INFORMATIONAL; the counts are printed. A tokio-tungstenite
//! echo scores 296 OK, 2 NON-STRICT and 3 INFORMATIONAL of 301: sigcast must do no worse.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `target/<profile>/examples/echo`, which `cargo test` builds beside the test binaries.
fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let echo = profile_dir.join("examples/echo");
    assert!(
        echo.exists(),
        "{} is missing: run through cargo test",
        echo.display()
    );
    echo
}

#[tokio::test]
async fn autobahn_cases_pass_against_the_session_io() {
    let Some(kosoku) = e2e_tool("SIGCAST_E2E_KOSOKU") else {
        return;
    };
    let mut echo = Command::new(echo_binary())
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(echo.stdout.take().unwrap()).lines();
    let first = within(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .expect("echo prints its address")
        .to_string();

    let reports = tempfile::tempdir().unwrap();
    let run = Command::new(kosoku)
        .args([
            "-m",
            "fuzzingclient",
            &addr,
            "-x",
            "12.*",
            "-x",
            "13.*",
            "-p",
            "2",
            "-o",
        ])
        .arg(reports.path())
        .output();
    let out = within(Duration::from_secs(600), run).await.unwrap();
    let index = std::fs::read_to_string(reports.path().join("index.json")).unwrap_or_else(|e| {
        panic!(
            "kosoku wrote no index.json ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let cases = index
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_object()
        .unwrap();

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for (case, result) in cases {
        let behavior = result["behavior"].as_str().unwrap_or("?").to_string();
        if !matches!(behavior.as_str(), "OK" | "NON-STRICT" | "INFORMATIONAL") {
            failed.push(format!("{case}: {behavior}"));
        }
        *counts.entry(behavior).or_default() += 1;
    }
    common::report(
        "autobahn",
        &format!("Autobahn (kosoku), {} cases: {counts:?}", cases.len()),
    );
    assert!(failed.is_empty(), "cases not passed: {failed:?}");
    assert_eq!(cases.len(), 301, "every case but 12.* and 13.* ran");
    assert!(counts.get("OK").copied().unwrap_or(0) >= 296, "{counts:?}");
}
