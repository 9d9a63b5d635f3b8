//! The verifiable journal (docs/verify.md): signed signals as a client receives them and as
//! `GET /v1/journal` and `sigcast journal export` give them, checked by `sigcast verify` and
//! by docs/verify.py, with every kind of tampering caught and named by its seq.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::{self, TestServer, https_get, next_text, signal};
use sigcast::auth::Scope;
use sigcast::hub::proof::{self, Chain, KeyDir};
use sigcast::strategy::Side;

/// Signals published: a third on ETHUSDT, the rest on BTCUSDT.
const SIGNALS: usize = 12;

/// A server that has broadcast [`SIGNALS`] signals, and the frames a client received.
async fn served() -> (TestServer, Vec<String>) {
    let server = TestServer::start(&[]).await;
    let mut ws = server.connect(Some(&server.token("alice"))).await.unwrap();
    server.wait_listeners(1).await;
    for i in 0..SIGNALS {
        let symbol = if i % 3 == 0 { "ETHUSDT" } else { "BTCUSDT" };
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        server
            .hub
            .publish(&signal(symbol, side, 75_000.0 + i as f64 * 10.0));
    }
    let mut frames = Vec::new();
    for _ in 0..SIGNALS {
        frames.push(next_text(&mut ws).await);
    }
    (server, frames)
}

/// Runs `sigcast` with `args` (off the runtime: it may ask the server in this process).
async fn sigcast(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || common::sigcast_command().args(&args).output().unwrap())
        .await
        .unwrap()
}

fn text(run: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    )
}

fn lines(path: &Path, frames: &[String]) -> PathBuf {
    std::fs::write(path, frames.join("\n") + "\n").unwrap();
    path.to_path_buf()
}

/// `sigcast verify FILE --keys KEYS [extra]`.
async fn verify(file: &Path, keys: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify".to_string(),
        file.display().to_string(),
        "--keys".to_string(),
        keys.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    sigcast(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_clients_receive_is_signed_served_and_verifies() {
    let (server, frames) = served().await;
    let ca = server.material.path("cert.pem");
    let tmp = tempfile::tempdir().unwrap();
    for frame in &frames {
        let v: Value = serde_json::from_str(frame).unwrap();
        assert_eq!(v["is_test"], false, "the client contract holds: {frame}");
        assert!(
            v["content"]["price"].is_f64() && v["proof"]["sig"].is_string(),
            "{frame}"
        );
    }

    // The public keys: served without a token, and by the command line from the server.
    let (status, _, body) = https_get(server.addr, &ca, "/v1/journal/key", None).await;
    assert_eq!(status, 200, "{body}");
    let keys: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(keys["keys"][0]["alg"], "Ed25519");
    assert_eq!(keys["keys"][0]["current"], true);
    let url = format!("https://{}", server.addr);
    let run = sigcast(
        [
            "journal",
            "key",
            "--url",
            &url,
            "--ca",
            ca.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(run.status.success(), "{}", text(&run));
    let printed: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed, keys);
    let keys_file = tmp.path().join("keys.json");
    std::fs::write(&keys_file, &body).unwrap();

    // The history: the same bytes the client received, for a token; scoped for a scoped one.
    let token = server.token("bob");
    let (status, _, body) = https_get(server.addr, &ca, "/v1/journal", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().collect::<Vec<_>>(), frames);
    let (status, _, _) = https_get(server.addr, &ca, "/v1/journal", None).await;
    assert_eq!(status, 401);
    let (status, _, body) = https_get(server.addr, &ca, "/v1/journal?from=one", Some(&token)).await;
    assert_eq!(status, 400, "{body}");
    let (_, _, body) = https_get(server.addr, &ca, "/v1/journal?from=3&to=5", Some(&token)).await;
    assert_eq!(body.lines().collect::<Vec<_>>(), frames[2..5]);
    let eth_only = Scope {
        symbols: Some(vec!["ETHUSDT".into()]),
        ..Scope::default()
    };
    let scoped_token = server.token_scoped("carol", &eth_only);
    let (_, _, scoped) = https_get(server.addr, &ca, "/v1/journal", Some(&scoped_token)).await;
    assert_eq!(scoped.lines().count(), SIGNALS / 3);
    assert!(scoped.lines().all(|l| l.contains("ETHUSDT")), "{scoped}");

    // sigcast verify: the client's log passes, with the figures recomputed on request.
    let log = lines(&tmp.path().join("listen.jsonl"), &frames);
    let run = verify(&log, &keys_file, &["--track-record"]).await;
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "{SIGNALS} signals, seq 1..{SIGNALS}: {SIGNALS} signatures good"
        )),
        "{out}"
    );
    assert!(
        out.contains("chain: unbroken from the chain's first signal"),
        "{out}"
    );
    assert!(
        out.contains("test-harness"),
        "the track record's table: {out}"
    );

    // A scoped client's history: gaps by design, so --scoped passes and a plain check fails.
    let scoped_file = tmp.path().join("scoped.jsonl");
    std::fs::write(&scoped_file, &scoped).unwrap();
    let run = verify(&scoped_file, &keys_file, &["--scoped"]).await;
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("not checked across"), "{}", text(&run));
    let run = verify(&scoped_file, &keys_file, &[]).await;
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));

    // The export, paged from the server by the command line, is the same history.
    let run = sigcast(
        [
            "journal",
            "export",
            "--url",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--token",
            &token,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(stdout_lines(&run), frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_fails_and_names_the_seq() {
    let (server, frames) = served().await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = server.shared.hub.journal().unwrap().public_keys();
    let keys_file = tmp.path().join("keys.json");
    std::fs::write(&keys_file, serde_json::to_string(&*keys).unwrap()).unwrap();
    // A forger with a key of their own, chaining on correctly.
    let forger = KeyDir::of(&tmp.path().join("forger"));
    let mut forged = Chain {
        prev: proof::hash_after(&frames[3]),
        signer: forger.load_or_create().unwrap().into(),
    };
    let fake = forged
        .seal(
            &proof::open(&frames[4])
                .unwrap()
                .canonical
                .replace("75040.0", "70000.0"),
        )
        .unwrap();
    let edited = |i: usize, from: &str, to: &str| {
        let mut f = frames.clone();
        assert!(f[i].contains(from));
        f[i] = f[i].replacen(from, to, 1);
        f
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "a price edited",
            edited(4, "75040.0", "75400.0"),
            "seq 5: the signature does not match",
        ),
        (
            "back-dated",
            edited(6, "1720000000", "1719000000"),
            "seq 7: the signature does not match",
        ),
        (
            "a side flipped",
            edited(8, "\"type\":\"buy\"", "\"type\":\"sell\""),
            "seq 9: the signature does not match",
        ),
        (
            "a signal dropped",
            {
                let mut f = frames.clone();
                f.remove(5);
                f
            },
            "seq 7: seq 6 is missing before it",
        ),
        (
            "two swapped",
            {
                let mut f = frames.clone();
                f.swap(2, 3);
                f
            },
            "seq 3: comes after seq 4",
        ),
        (
            "one repeated",
            {
                let mut f = frames.clone();
                f.insert(6, frames[1].clone());
                f
            },
            "seq 2: comes after seq 6",
        ),
        (
            "forged with another key",
            {
                let mut f = frames.clone();
                f[4] = fake.clone();
                f
            },
            "seq 5: signed by key",
        ),
        (
            "forged, claiming the real key",
            {
                let mut f = frames.clone();
                let theirs = proof::open(&fake).unwrap().kid;
                f[4] = fake.replace(&theirs, &keys.keys[0].kid);
                f
            },
            "seq 5: the signature does not match",
        ),
        (
            "a proof stripped",
            {
                let mut f = frames.clone();
                f[4] = proof::open(&f[4]).unwrap().canonical;
                f
            },
            "seq 5: carries no proof",
        ),
    ];
    let python = common::e2e_tool("SIGCAST_E2E_PYTHON");
    let verifier = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/verify.py");
    let python_check = |file: &Path| {
        let python = python.clone()?;
        Some(
            std::process::Command::new(python)
                .arg(&verifier)
                .arg(&keys_file)
                .arg(file)
                .output()
                .unwrap(),
        )
    };
    let untouched = lines(&tmp.path().join("untouched.jsonl"), &frames);
    if let Some(run) = python_check(&untouched) {
        assert!(run.status.success(), "docs/verify.py: {}", text(&run));
        assert!(text(&run).contains(&format!("{SIGNALS} signals verified, 0 problems")));
    }
    for (i, (what, tampered, named)) in cases.iter().enumerate() {
        let file = lines(&tmp.path().join(format!("tampered-{i}.jsonl")), tampered);
        let run = verify(&file, &keys_file, &[]).await;
        let out = text(&run);
        assert_eq!(run.status.code(), Some(1), "{what}: {out}");
        assert!(out.contains(named), "{what}: expected {named:?} in {out}");
        let run = verify(&file, &keys_file, &["--json"]).await;
        let json: Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(json["passed"], false, "{what}: {json}");
        assert!(
            json["problems"].as_array().is_some_and(|p| !p.is_empty()),
            "{what}: {json}"
        );
        if let Some(run) = python_check(&file) {
            assert_eq!(
                run.status.code(),
                Some(1),
                "docs/verify.py, {what}: {}",
                text(&run)
            );
        }
    }
}

/// The data directory's journal exported offline is the served history; after `sigcast
/// journal rotate` and a reload (what SIGHUP does), new signals carry the new key, the old
/// one is still published, and the whole history verifies as one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_export_and_a_key_rotation_keep_one_verifiable_chain() {
    let (server, mut frames) = served().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = server.material.path("data");
    let local = |command: &[&str]| {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--set".to_string(),
            format!("data.dir={}", data.display()),
            "--jwt-secret-file".to_string(),
            server.material.path("jwt.secret").display().to_string(),
        ]);
        sigcast(args)
    };
    let run = local(&["journal", "export"]).await;
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(stdout_lines(&run), frames);
    let run = local(&["journal", "export", "--from", "4", "--to", "6"]).await;
    assert_eq!(stdout_lines(&run), frames[3..6]);

    let before: Value = serde_json::from_slice(&local(&["journal", "key"]).await.stdout).unwrap();
    let run = local(&["journal", "rotate"]).await;
    assert!(run.status.success(), "{}", text(&run));
    let old = before["keys"][0]["kid"].as_str().unwrap().to_string();
    assert!(
        text(&run).contains(&format!("journal key {old} retired")),
        "{}",
        text(&run)
    );
    sigcast::node::sign(server.hub.journal().unwrap(), &data).unwrap();

    let mut ws = server.connect(Some(&server.token("dave"))).await.unwrap();
    server.wait_listeners(1).await;
    server.hub.publish(&signal("BTCUSDT", Side::Buy, 76_000.0));
    let after = next_text(&mut ws).await;
    let new = proof::open(&after).unwrap().kid;
    assert_ne!(new, old, "signed with the new key");
    frames.push(after);

    let ca = server.material.path("cert.pem");
    let (_, _, keys) = https_get(server.addr, &ca, "/v1/journal/key", None).await;
    let published: Value = serde_json::from_str(&keys).unwrap();
    assert_eq!(published["keys"][0]["kid"], new.as_str());
    assert_eq!(published["keys"][1]["kid"], old.as_str());
    let keys_file = tmp.path().join("keys.json");
    std::fs::write(&keys_file, keys).unwrap();
    let log = lines(&tmp.path().join("all.jsonl"), &frames);
    let run = verify(&log, &keys_file, &[]).await;
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("chain: unbroken"), "{}", text(&run));
}

/// What a command printed, a line each.
fn stdout_lines(run: &Output) -> Vec<String> {
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(String::from)
        .collect()
}
