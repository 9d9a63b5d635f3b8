//! The JWT attack matrix, with tokens minted by PyJWT (tests/e2e/jwt_attacks.py), an
//! implementation independent of sigcast's: every hostile token gets HTTP 401 before any
//! upgrade, no key URL in a token is ever fetched, valid PyJWT tokens (HS256 and EdDSA) are
//! accepted, and the server keeps serving afterwards.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::Value;
use sigcast::strategy::Side;

/// The two servers the matrix runs against: HS256 (the default) and EdDSA.
struct Servers {
    hs256: TestServer,
    eddsa: TestServer,
}

impl Servers {
    async fn start() -> Self {
        let hs256 = TestServer::start(&[]).await;
        let material = Material::new();
        // The key pair as operators make it (PKCS#8 v1, which PyJWT's `cryptography` reads).
        let (private, public) = (material.path("ed.pem"), material.path("ed.pub.pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            private.to_str().unwrap(),
        ]);
        openssl(&[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        let mut config = material.config(&[]);
        config.auth.jwt_secret_file = None;
        config.auth.jwt_public_key = Some(public);
        config.auth.jwt_private_key = Some(private);
        let eddsa = TestServer::start_with(material, config).await;
        Self { hs256, eddsa }
    }

    fn by_name(&self, name: &str) -> &TestServer {
        match name {
            "hs256" => &self.hs256,
            "eddsa" => &self.eddsa,
            other => panic!("unknown server {other}"),
        }
    }
}

fn openssl(args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A listener standing where `jku`/`x5u` point; counts connections (there must be none).
async fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, hits)
}

/// Asserts `authorization` is refused with 401 and a bearer challenge, and opens no session.
/// Returns the reason the server gave.
async fn assert_401(server: &TestServer, authorization: &[String], case: &str) -> String {
    let refusal = match server.connect_with(authorization).await {
        Ok(_) => panic!("{case}: upgraded, expected 401"),
        Err(r) => r,
    };
    assert_eq!(refusal.status, 401, "{case}: {refusal:?}");
    let challenge = refusal.www_authenticate.clone().unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
    assert_eq!(server.hub.listeners(), 0, "{case}: a session opened");
    refusal.body
}

#[tokio::test]
async fn every_pyjwt_attack_gets_401_and_valid_pyjwt_tokens_connect() {
    let Some(python) = e2e_tool("SIGCAST_E2E_PYTHON") else {
        return;
    };
    let servers = Servers::start().await;
    let (trap_url, trap_hits) = trap().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/jwt_attacks.py");
    let m = &servers.eddsa.material;
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(servers.hs256.material.path("jwt.secret"))
        .arg(m.path("ed.pem"))
        .arg(m.path("ed.pub.pem"))
        .arg(&trap_url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "jwt_attacks.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cases: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(cases.len() >= 40, "the matrix has {} cases", cases.len());

    let (mut refused, mut accepted) = (0, 0);
    for case in &cases {
        let name = case["case"].as_str().unwrap();
        let server = servers.by_name(case["server"].as_str().unwrap());
        let token = case["token"].as_str().unwrap();
        let authorization = vec![format!("Bearer {token}")];
        if case["expect"] == "accept" {
            let ws = server
                .connect_with(&authorization)
                .await
                .unwrap_or_else(|r| panic!("{name}: refused {r:?}"));
            drop(ws);
            server.wait_listeners(0).await;
            accepted += 1;
        } else {
            let reason = assert_401(server, &authorization, name).await;
            eprintln!("401 {name:<45} {}", reason.trim());
            refused += 1;
        }
    }
    common::report(
        "jwt_attacks",
        &format!("JWT attack matrix: {refused} refused with 401, {accepted} accepted"),
    );
    assert_eq!(accepted, 2, "the valid HS256 and EdDSA tokens");

    // Header forms around a valid token.
    let server = &servers.hs256;
    let valid = server.token("alice");
    let forms: [(&str, Vec<String>); 7] = [
        (
            "two Authorization headers",
            vec![format!("Bearer {valid}"), format!("Bearer {valid}")],
        ),
        (
            "a valid and a bad header",
            vec![format!("Bearer {valid}"), "Bearer x.y.z".into()],
        ),
        ("Basic scheme", vec![format!("Basic {valid}")]),
        ("no scheme", vec![valid.clone()]),
        ("Bearer with nothing", vec!["Bearer ".into()]),
        ("token with spaces", vec![format!("Bearer {valid} {valid}")]),
        (
            "8 KiB of garbage",
            vec![format!("Bearer {}", "~".repeat(8200))],
        ),
    ];
    for (name, authorization) in &forms {
        let reason = assert_401(server, authorization, name).await;
        eprintln!("401 {name:<45} {}", reason.trim());
    }

    // Nothing fetched a key from where a token pointed.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(trap_hits.load(Ordering::SeqCst), 0, "a key URL was fetched");

    // And both servers still serve.
    for server in [&servers.hs256, &servers.eddsa] {
        let mut ws = server.connect(Some(&server.token("after"))).await.unwrap();
        server.wait_listeners(1).await;
        server.hub.publish(&signal("BTCUSDT", Side::Buy, 75000.0));
        let v: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(v["content"]["symbol"], "BTCUSDT");
    }
}
