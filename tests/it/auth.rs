//! Handshake authentication: every bad token gets 401 and no upgrade; good ones connect.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sigcast::clock::unix_now;

/// Claims every sigcast token needs, valid now; tests edit them to break one thing at a time.
fn claims() -> Value {
    let now = unix_now();
    json!({
        "sub": "mallory", "exp": now + 600, "iat": now, "jti": "j-1",
        "iss": "sigcast", "aud": "sigcast-clients",
    })
}

fn hs256(secret: &[u8], claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

/// Asserts a 401 with the invalid_token challenge and this reason, and that no session opened.
async fn assert_refused(server: &TestServer, authorization: &[String], reason: &str) {
    // Sessions of clients the test dropped before end as their close arrives: wait for them,
    // so the count below is about this client alone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.hub.listeners() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(server.hub.listeners(), 0, "earlier clients' sessions ended");
    let refusal = server
        .connect_with(authorization)
        .await
        .err()
        .unwrap_or_else(|| panic!("upgraded with {authorization:?}, expected 401 {reason}"));
    assert_eq!(refusal.status, 401, "{refusal:?}");
    let challenge = refusal.www_authenticate.clone().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        refusal.body.contains(reason) && challenge.contains(reason),
        "expected reason {reason:?}, got {refusal:?}"
    );
    assert_eq!(server.hub.listeners(), 0, "no session for a refused client");
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Bearer {token}")]
}

#[tokio::test]
async fn missing_header_gets_401_with_bare_bearer_challenge() {
    let server = TestServer::start(&[]).await;
    let refusal = server.connect(None).await.unwrap_err();
    assert_eq!(refusal.status, 401);
    let challenge = refusal.www_authenticate.unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no error code when no token was sent"
    );
    assert_eq!(refusal.body.trim(), "missing bearer token");
}

#[tokio::test]
async fn hs256_rejection_matrix() {
    let server = TestServer::start(&[]).await;
    let secret = server.material.secret();
    let good = hs256(&secret, &claims(), None);
    let now = unix_now();

    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered_payload =
        B64.encode(serde_json::to_vec(&with(claims(), "sub", json!("admin"))).unwrap());
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = B64.encode(serde_json::to_vec(&claims()).unwrap());

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "wrong scheme",
            vec![format!("Basic {good}")],
            "expected Authorization: Bearer",
        ),
        (
            "empty token",
            vec!["Bearer  ".to_string()],
            "expected Authorization: Bearer",
        ),
        ("garbage", bearer("not-a-jwt"), "malformed token"),
        ("non-base64", bearer("@@@.###.$$$"), "malformed token"),
        (
            "alg none, no signature",
            bearer(&format!("{none_header}.{none_payload}.")),
            "algorithm not allowed",
        ),
        (
            "tampered payload",
            bearer(&format!("{head}.{tampered_payload}.{sig}")),
            "bad signature",
        ),
        (
            "wrong key",
            bearer(&hs256(&[7u8; 32], &claims(), None)),
            "bad signature",
        ),
        (
            "expired beyond leeway",
            bearer(&hs256(
                &secret,
                &with(claims(), "exp", json!(now - 30)),
                None,
            )),
            "token expired",
        ),
        (
            "nbf in the future",
            bearer(&hs256(
                &secret,
                &with(claims(), "nbf", json!(now + 60)),
                None,
            )),
            "token not yet valid",
        ),
        (
            "iat an hour ahead",
            bearer(&hs256(
                &secret,
                &with(claims(), "iat", json!(now + 3600)),
                None,
            )),
            "token issued in the future",
        ),
        (
            "iat past the leeway",
            bearer(&hs256(
                &secret,
                &with(claims(), "iat", json!(now + 30)),
                None,
            )),
            "token issued in the future",
        ),
        (
            "wrong aud",
            bearer(&hs256(
                &secret,
                &with(claims(), "aud", json!("someone-else")),
                None,
            )),
            "wrong audience",
        ),
        (
            "wrong iss",
            bearer(&hs256(&secret, &with(claims(), "iss", json!("evil")), None)),
            "wrong issuer",
        ),
        (
            "missing sub",
            bearer(&hs256(&secret, &without(claims(), "sub"), None)),
            "missing claim sub",
        ),
        (
            "missing exp",
            bearer(&hs256(&secret, &without(claims(), "exp"), None)),
            "missing claim exp",
        ),
        (
            "missing iat",
            bearer(&hs256(&secret, &without(claims(), "iat"), None)),
            "missing claim iat",
        ),
        (
            "missing jti",
            bearer(&hs256(&secret, &without(claims(), "jti"), None)),
            "missing claim jti",
        ),
        (
            "missing iss",
            bearer(&hs256(&secret, &without(claims(), "iss"), None)),
            "missing claim iss",
        ),
        (
            "missing aud",
            bearer(&hs256(&secret, &without(claims(), "aud"), None)),
            "missing claim aud",
        ),
        (
            "exp as a string",
            bearer(&hs256(
                &secret,
                &with(claims(), "exp", json!("tomorrow")),
                None,
            )),
            "malformed claim",
        ),
        (
            "unknown kid",
            bearer(&hs256(&secret, &claims(), Some("../../etc/passwd"))),
            "unknown key id",
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
            "more than one Authorization header",
        ),
        (
            "oversized token",
            bearer(&"a".repeat(10_000)),
            "token too long",
        ),
    ];
    for (name, headers, reason) in cases {
        eprintln!("case: {name}");
        assert_refused(&server, &headers, reason).await;
    }

    // The same key, the same claims, signed properly: accepted.
    server
        .connect(Some(&good))
        .await
        .expect("valid HS256 token");
}

#[tokio::test]
async fn expiry_within_leeway_is_accepted() {
    let server = TestServer::start(&[]).await;
    let c = with(claims(), "exp", json!(unix_now() - 2));
    let token = hs256(&server.material.secret(), &c, None);
    server
        .connect(Some(&token))
        .await
        .expect("2 s past exp is inside the 5 s leeway");
}

#[tokio::test]
async fn eddsa_tokens_verify_and_hs_confusion_is_refused() {
    let material = Material::new();
    let mut config = material.config(&[]);
    config.auth.jwt_secret_file = None;
    config.auth.jwt_public_key = Some(material.path("ed.pub.pem"));
    let server = TestServer::start_with(material, config).await;

    let private = std::fs::read(server.material.path("ed.pem")).unwrap();
    let eddsa = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims(),
        &EncodingKey::from_ed_pem(&private).unwrap(),
    )
    .unwrap();
    server
        .connect(Some(&eddsa))
        .await
        .expect("EdDSA token issued away from the server");

    // HS256 signed with the server's public key as the HMAC secret: the classic confusion.
    let public = std::fs::read(server.material.path("ed.pub.pem")).unwrap();
    let confused = hs256(&public, &claims(), None);
    assert_refused(&server, &bearer(&confused), "algorithm not allowed").await;
}

#[tokio::test]
async fn kid_selects_a_rotation_key_from_the_ring_only() {
    let material = Material::new();
    std::fs::write(
        material.path("old.secret"),
        "old-secret-old-secret-old-secret-0000",
    )
    .unwrap();
    let mut config = material.config(&[("auth.kid", "2026-11")]);
    config.auth.keys.push(sigcast::config::RingKey {
        kid: "2026-10".into(),
        alg: sigcast::config::KeyAlg::HS256,
        file: material.path("old.secret"),
    });
    let server = TestServer::start_with(material, config).await;
    let old = b"old-secret-old-secret-old-secret-0000";

    // Issued tokens name the primary kid and are accepted.
    let issued = server.token("a");
    let header = jsonwebtoken::decode_header(&issued).unwrap();
    assert_eq!(header.kid.as_deref(), Some("2026-11"));
    server.connect(Some(&issued)).await.unwrap();

    // The old key still works for tokens that name it...
    server
        .connect(Some(&hs256(old, &claims(), Some("2026-10"))))
        .await
        .expect("rotation key by kid");
    // ...but not for tokens that name the primary, nor with no kid at all.
    assert_refused(
        &server,
        &bearer(&hs256(old, &claims(), Some("2026-11"))),
        "bad signature",
    )
    .await;
    assert_refused(
        &server,
        &bearer(&hs256(old, &claims(), None)),
        "bad signature",
    )
    .await;
}

#[test]
fn short_secret_refuses_to_load() {
    let material = Material::new();
    std::fs::write(material.path("short.secret"), "  too-short  \n").unwrap();
    let mut config = material.config(&[]);
    config.auth.jwt_secret_file = Some(material.path("short.secret"));
    let err = sigcast::auth::KeyRing::from_settings(&config.auth)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("short.secret") && err.contains("at least 32"),
        "{err}"
    );
}

#[test]
fn secret_is_the_trimmed_file_content_as_is() {
    // `openssl rand -hex 32 > jwt.secret` gives 64 hex characters plus a newline: the key is
    // those 64 characters as bytes, not their hex decoding.
    let material = Material::new();
    let hex = "a".repeat(64);
    std::fs::write(material.path("hex.secret"), format!("\n{hex}\n")).unwrap();
    let mut config = material.config(&[]);
    config.auth.jwt_secret_file = Some(material.path("hex.secret"));
    let ring = sigcast::auth::KeyRing::from_settings(&config.auth).unwrap();
    let token = hs256(hex.as_bytes(), &claims(), None);
    assert_eq!(ring.verify(&token).unwrap().sub, "mallory");
}
