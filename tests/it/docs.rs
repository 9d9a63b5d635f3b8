//! The commands a newcomer runs first, run here as the README and docs/ write them (that
//! every `sigcast` line of the docs parses is checked beside the command line, in
//! `src/cli/examples.rs`).

use crate::common;

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first shell block (```sh) of `doc` with a line that `contains` the text, as written.
fn shell_block(doc: &str, contains: &str) -> String {
    let text = std::fs::read_to_string(root().join(doc)).unwrap();
    text.split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .find(|block| block.contains(contains))
        .unwrap_or_else(|| panic!("{doc} shows no shell block with {contains:?}"))
        .to_string()
}

/// The README's backtest, word for word, finds signals in the recording it names.
#[test]
fn the_readme_backtest_finds_signals() {
    let block = shell_block("README.md", "sigcast backtest");
    let line = block
        .lines()
        .find(|l| l.starts_with("sigcast backtest"))
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    // Plain words: no quote or variable in this line.
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let run = common::sigcast_command()
        .args(&args)
        .arg("--out")
        .arg(out.path())
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let signals: usize = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<usize>().ok())
        .sum();
    assert!(
        signals > 0,
        "the README's backtest finds no signal:\n{stdout}"
    );
}

/// The publish `curl` of docs/tokens.md, as written, is acked by a server (its port and
/// token filled in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_curl_is_acked() {
    let Some(curl) = common::e2e_tool("SIGCAST_E2E_CURL") else {
        return;
    };
    let line = shell_block("docs/tokens.md", "/v1/signals");
    let server = common::TestServer::start(&[]).await;
    let publisher = server.token_scoped(
        "publisher",
        &sigcast::auth::Scope {
            publisher: true,
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::copy(
        server.material.path("cert.pem"),
        dir.path().join("certs/cert.pem"),
    )
    .unwrap();
    let line = line
        .replacen("curl ", &format!("{} -sS ", curl.display()), 1)
        .replace("127.0.0.1:8443", &server.addr.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &line])
            .env("PUBLISHER", publisher)
            .current_dir(dir.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        body.contains(r#""type":"publish_ack""#) && body.contains(r#""id":"order-42""#),
        "{body}"
    );
}
