//! The TLS listener as the field's scanners see it: `testssl.sh` (JSON) and `sslscan`
//! (XML), both from Debian, against a real sigcast listener.
//!
//! Required: TLS 1.2 and 1.3 only, AEAD ciphers only, forward secrecy on every cipher, the
//! server's cipher order, and no finding of severity MEDIUM or above except those about the
//! self-signed development certificate (no chain of trust, no CRL/OCSP, long validity).
//! `scripts/test` installs both and sets `SIGCAST_E2E_TESTSSL` and `SIGCAST_E2E_SSLSCAN`.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::process::Command;

/// Findings testssl.sh raises because the test certificate is a self-signed development one.
const DEVELOPMENT_CERTIFICATE: [&str; 3] = [
    "cert_chain_of_trust", // self-signed
    "cert_revocation",     // no CRL or OCSP URL
    "cert_validityPeriod", // rcgen's default validity runs to 4096
];

#[tokio::test]
async fn testssl_and_sslscan_find_only_modern_tls() {
    let (Some(testssl), Some(sslscan)) = (
        e2e_tool("SIGCAST_E2E_TESTSSL"),
        e2e_tool("SIGCAST_E2E_SSLSCAN"),
    ) else {
        return;
    };
    let server = TestServer::start(&[("server.max_connections_per_ip", "0")]).await;
    let target = format!("127.0.0.1:{}", server.addr.port());
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("testssl.json");
    let xml = out.path().join("sslscan.xml");

    let testssl_run = Command::new(testssl)
        .args(["--quiet", "--color", "0", "--warnings", "off", "--jsonfile"])
        .arg(&json)
        .arg(&target)
        .output();
    let sslscan_run = Command::new(sslscan)
        .arg("--no-colour")
        .arg(format!("--xml={}", xml.display()))
        .arg(&target)
        .output();
    let (testssl_out, sslscan_out) = within(Duration::from_secs(900), async {
        tokio::join!(testssl_run, sslscan_run)
    })
    .await;
    testssl_out.unwrap();
    sslscan_out.unwrap();

    check_testssl(&std::fs::read_to_string(&json).expect("testssl wrote its JSON"));
    check_sslscan(&std::fs::read_to_string(&xml).expect("sslscan wrote its XML"));
}

fn check_testssl(json: &str) {
    let findings: Vec<Value> = serde_json::from_str(json).unwrap();
    let by_id: BTreeMap<&str, (&str, &str)> = findings
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("");
            (s("id"), (s("severity"), s("finding")))
        })
        .collect();
    let finding = |id: &str| {
        by_id
            .get(id)
            .map(|f| f.1)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    assert!(
        findings.len() > 50,
        "a full scan: {} findings",
        findings.len()
    );
    if let Some((_, problem)) = by_id.get("scanProblem") {
        panic!("testssl could not scan: {problem}");
    }

    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(old), "not offered", "{old}");
    }
    assert_eq!(finding("TLS1_2"), "offered");
    assert!(
        finding("TLS1_3").starts_with("offered"),
        "{}",
        finding("TLS1_3")
    );
    for weak in ["NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"] {
        assert_eq!(
            finding(&format!("cipherlist_{weak}")),
            "not offered",
            "{weak}"
        );
    }
    assert_eq!(finding("cipherlist_STRONG"), "offered");
    assert_eq!(finding("PFS"), "offered");
    assert_eq!(finding("cipher_order"), "server");
    let ciphers: Vec<&str> = by_id
        .iter()
        .filter(|(id, _)| id.starts_with("cipher_x"))
        .map(|(_, f)| f.1)
        .collect();
    assert!(!ciphers.is_empty(), "testssl listed the ciphers");
    for c in &ciphers {
        assert!(
            c.contains("AESGCM") || c.contains("ChaCha20"),
            "not AEAD: {c}"
        );
        assert!(c.contains("ECDH"), "no forward secrecy: {c}");
    }

    let serious: Vec<String> = by_id
        .iter()
        .filter(|(_, (severity, _))| matches!(*severity, "MEDIUM" | "HIGH" | "CRITICAL"))
        .filter(|(id, _)| !DEVELOPMENT_CERTIFICATE.contains(id))
        .map(|(id, (severity, f))| format!("{id} {severity}: {f}"))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (severity, _) in by_id.values() {
        *counts.entry(severity).or_default() += 1;
    }
    let expected: Vec<String> = by_id
        .iter()
        .filter(|(id, (severity, _))| {
            DEVELOPMENT_CERTIFICATE.contains(id)
                && matches!(*severity, "MEDIUM" | "HIGH" | "CRITICAL")
        })
        .map(|(id, (severity, _))| format!("{id} {severity}"))
        .collect();
    common::report(
        "testssl",
        &format!(
            "testssl.sh: {} findings {counts:?}; {} ciphers, all AEAD with ECDHE; none MEDIUM \
             or above but the expected ones about the self-signed test certificate ({}), which \
             a real certificate does not raise",
            by_id.len(),
            ciphers.len(),
            match expected.is_empty() {
                true => "none".to_string(),
                false => expected.join(", "),
            }
        ),
    );
    assert!(serious.is_empty(), "findings MEDIUM or above: {serious:#?}");
}

/// `name="value"` attributes of one XML element line.
fn attributes(line: &str) -> BTreeMap<&str, &str> {
    line.split('"')
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|pair| match pair {
            [key, value] => key
                .trim()
                .strip_suffix('=')
                .map(|k| (k.rsplit(' ').next().unwrap_or(k), *value)),
            _ => None,
        })
        .collect()
}

fn check_sslscan(xml: &str) {
    let elements = |tag: &str| -> Vec<BTreeMap<&str, &str>> {
        xml.lines()
            .map(str::trim)
            .filter(|l| l.starts_with(&format!("<{tag} ")))
            .map(attributes)
            .collect()
    };
    let enabled: Vec<String> = elements("protocol")
        .iter()
        .filter(|p| p["enabled"] == "1")
        .map(|p| format!("{} {}", p["type"], p["version"]))
        .collect();
    assert_eq!(enabled, ["tls 1.2", "tls 1.3"], "protocols offered");
    let ciphers = elements("cipher");
    assert!(ciphers.len() >= 4, "{xml}");
    for c in &ciphers {
        let name = c["cipher"];
        assert!(
            name.contains("GCM")
                || name.contains("CHACHA20-POLY1305")
                || name.contains("CHACHA20_POLY1305"),
            "not AEAD: {name}"
        );
        assert!(
            c["sslversion"] == "TLSv1.3" || name.starts_with("ECDHE-"),
            "no forward secrecy: {name}"
        );
        assert!(
            matches!(c["strength"], "strong" | "acceptable"),
            "{name}: {}",
            c["strength"]
        );
    }
    for h in elements("heartbleed") {
        assert_eq!(h["vulnerable"], "0");
    }
    common::report(
        "sslscan",
        &format!(
            "sslscan: {enabled:?}, {} ciphers: {}",
            ciphers.len(),
            ciphers
                .iter()
                .map(|c| c["cipher"])
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
}
