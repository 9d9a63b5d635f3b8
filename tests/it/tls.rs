//! TLS: PEM material in every key format operators have, protocol versions, ALPN, and clear
//! errors for bad files.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;
use sigcast::tls::server_config;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (the test command installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a self-signed localhost certificate with `openssl req -x509` for an existing key.
fn openssl_cert(dir: &Path, key: &str, cert: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-key",
            key,
            "-out",
            cert,
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // rustls clients refuse a CA certificate as a leaf; browsers and openssl do not.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
}

/// Serves with the given files and completes a real authenticated WebSocket handshake.
async fn serve_and_connect(material: Material, cert: &str, key: &str, key_header: &str) {
    let pem = std::fs::read_to_string(material.path(key)).unwrap();
    assert!(pem.contains(key_header), "{key} is {key_header}: {pem:.40}");
    let mut config = material.config(&[]);
    config.tls.cert = Some(material.path(cert));
    config.tls.key = Some(material.path(key));
    // Make the client trust this certificate instead of the harness's.
    std::fs::copy(material.path(cert), material.path("cert.pem")).unwrap();
    let server = TestServer::start_with(material, config).await;
    let token = server.token("tls");
    server
        .connect(Some(&token))
        .await
        .expect("handshake over this key");
}

#[tokio::test]
async fn openssl_req_x509_with_pkcs8_key_loads() {
    let m = Material::new();
    openssl(
        m.path("").as_path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "p8.key",
            "-out",
            "p8.crt",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
    );
    // The plain command's output (a CA:TRUE certificate) loads as it is.
    server_config(Some(&m.path("p8.crt")), Some(&m.path("p8.key")))
        .expect("openssl req -x509 output");
    openssl_cert(m.path("").as_path(), "p8.key", "leaf.crt");
    serve_and_connect(m, "leaf.crt", "p8.key", "BEGIN PRIVATE KEY").await;
}

#[tokio::test]
async fn rsa_pkcs1_key_loads() {
    let m = Material::new();
    openssl(
        m.path("").as_path(),
        &["genrsa", "-traditional", "-out", "rsa.key", "2048"],
    );
    openssl_cert(m.path("").as_path(), "rsa.key", "rsa.crt");
    serve_and_connect(m, "rsa.crt", "rsa.key", "BEGIN RSA PRIVATE KEY").await;
}

#[tokio::test]
async fn sec1_ec_key_loads() {
    let m = Material::new();
    openssl(
        m.path("").as_path(),
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ],
    );
    openssl_cert(m.path("").as_path(), "ec.key", "ec.crt");
    serve_and_connect(m, "ec.crt", "ec.key", "BEGIN EC PRIVATE KEY").await;
}

#[tokio::test]
async fn tls12_and_tls13_with_alpn_http11() {
    let server = TestServer::start(&[]).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let tls = tls_connect_with(
            server.addr,
            &server.material.path("cert.pem"),
            Some(version),
        )
        .await;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.protocol_version(), Some(version.version));
        assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert!(
            suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
            "AEAD only: {suite}"
        );
        if version.version == rustls::ProtocolVersion::TLSv1_2 {
            assert!(suite.contains("ECDHE"), "forward secrecy: {suite}");
        }
        // The client prefers AES-256 (rustls' default order); the server's order wins.
        assert!(
            suite.ends_with("AES_128_GCM_SHA256"),
            "the server's order, SHA-256 suites first: {suite}"
        );
    }
}

#[test]
fn bad_files_are_one_line_errors_naming_the_file() {
    let m = Material::new();
    let cert = m.path("cert.pem");
    let key = m.path("key.pem");
    let missing = m.path("missing.pem");

    let cases = [
        (
            server_config(Some(&missing), Some(&key))
                .unwrap_err()
                .to_string(),
            "missing.pem",
        ),
        (
            server_config(Some(&cert), Some(&missing))
                .unwrap_err()
                .to_string(),
            "missing.pem",
        ),
        // A certificate where the key should be: no usable key in that file.
        (
            server_config(Some(&cert), Some(&cert))
                .unwrap_err()
                .to_string(),
            "no private key",
        ),
        // A key where the certificate should be.
        (
            server_config(Some(&key), Some(&key))
                .unwrap_err()
                .to_string(),
            "no certificate",
        ),
    ];
    for (err, expected) in cases {
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    // A key that does not belong to the certificate.
    let other = Material::new();
    let err = server_config(Some(&cert), Some(&other.path("key.pem")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not work together"), "{err}");
}
