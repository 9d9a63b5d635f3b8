//! The live dashboard at `/` on the client port: the page and its embedded assets over
//! HTTPS, the browser's way of authenticating (the token as a subprotocol), and the page
//! itself driven in Debian's Chromium: connection status, a live price chart with buy and
//! sell markers, the signal feed, the `test` button, and a refused token.

use crate::common;

use std::time::Duration;

use common::{TestServer, next_text, send_text, tls_connect, within};
use serde_json::Value;
use sigcast::strategy::definition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A server on the synthetic market running `common::QUICK`, so signals come every second or two.
async fn start(extra: &[(&str, &str)]) -> (TestServer, CancellationToken) {
    let mut keys = vec![("source.tick", "2ms")];
    keys.extend_from_slice(extra);
    let server = TestServer::start(&keys).await;
    let stop = CancellationToken::new();
    sigcast::node::start_pipeline(
        &server.config,
        definition::from_text(common::QUICK).unwrap(),
        server.hub.clone(),
        stop.clone(),
    )
    .unwrap();
    (server, stop)
}

/// One HTTPS request on the client port; the whole response.
async fn fetch(server: &TestServer, request: &str) -> String {
    within(Duration::from_secs(5), async {
        let mut tls = tls_connect(server.addr, &server.material.path("cert.pem")).await;
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let (server, stop) = start(&[]).await;
    let page = fetch(&server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = page.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Type: text/html; charset=utf-8"));
    assert!(head.contains("Content-Security-Policy: default-src 'none'; script-src 'self'"));
    assert!(head.contains("connect-src 'self'"));
    assert!(head.contains("X-Content-Type-Options: nosniff"));
    assert!(body.contains("<script src=\"/dashboard.js\"></script>"));
    for (path, kind, needle) in [
        ("/dashboard.js", "text/javascript", "sigcast.v1"),
        ("/dashboard.css", "text/css", "--buy"),
    ] {
        let asset = fetch(&server, &format!("GET {path} HTTP/1.1\r\n\r\n")).await;
        assert!(asset.starts_with("HTTP/1.1 200 OK"), "{path}: {asset:.80}");
        assert!(asset.contains(kind) && asset.contains(needle), "{path}");
    }
    let missing = fetch(&server, "GET /secret HTTP/1.1\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let head_only = fetch(&server, "HEAD / HTTP/1.1\r\n\r\n").await;
    assert!(head_only.starts_with("HTTP/1.1 200") && head_only.ends_with("\r\n\r\n"));
    // The WebSocket on the same path still wants a token.
    assert_eq!(server.connect(None).await.unwrap_err().status, 401);
    stop.cancel();

    let (off, stop) = start(&[("server.dashboard", "false")]).await;
    let page = fetch(&off, "GET / HTTP/1.1\r\n\r\n").await;
    assert!(
        page.starts_with("HTTP/1.1 404") && page.contains("server.dashboard"),
        "{page}"
    );
    stop.cancel();
}

/// A browser's handshake: the token offered as subprotocols, and its page's Origin.
fn browser(protocols: String, origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sec-websocket-protocol", protocols),
        ("origin", origin.to_string()),
    ]
}

/// A browser offers its token as subprotocols (it cannot set Authorization), as
/// `sigcast.v1, bearer.<JWT>` or `bearer, <JWT>`: a good token is accepted with the protocol
/// echoed, a bad one is refused with 401 before any upgrade, as with the header. A browser
/// session's Origin must be the dashboard's own, or one of `server.allowed_origins`: 403
/// otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_offered_as_a_subprotocol_authenticates_from_allowed_origins() {
    let (server, stop) = start(&[]).await;
    let own = format!("https://127.0.0.1:{}", server.addr.port());
    let token = server.token("browser");
    // tungstenite's client fails the handshake unless the server echoes an offered protocol.
    for offer in [
        format!("sigcast.v1, bearer.{token}"),
        format!("bearer, {token}"),
    ] {
        let mut ws = server.connect_headers(&browser(offer, &own)).await.unwrap();
        send_text(&mut ws, "test").await;
        let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(reply["is_test"], true);
    }
    for bad in [
        "sigcast.v1, bearer.not.a.token",
        "sigcast.v1, bearer.a, bearer.b",
        "bearer",
    ] {
        let refusal = server
            .connect_headers(&browser(bad.to_string(), &own))
            .await
            .unwrap_err();
        assert_eq!(refusal.status, 401, "{bad}");
    }
    // Without sigcast.v1 (or a bare `bearer`) the offer is not sigcast's: no token at all.
    let refusal = server
        .connect_headers(&browser(format!("bearer.{token}"), &own))
        .await
        .unwrap_err();
    assert_eq!(refusal.status, 401);
    // Another site's page, or none, cannot use a browser session.
    let offer = format!("sigcast.v1, bearer.{token}");
    let elsewhere = server
        .connect_headers(&browser(offer.clone(), "https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.status, 403);
    assert!(
        elsewhere.body.contains("server.allowed_origins"),
        "{}",
        elsewhere.body
    );
    let plain_http = server
        .connect_headers(&browser(offer.clone(), &own.replace("https", "http")))
        .await
        .unwrap_err();
    assert_eq!(plain_http.status, 403);
    let no_origin = server
        .connect_headers(&[("sec-websocket-protocol", offer.clone())])
        .await
        .unwrap_err();
    assert_eq!(no_origin.status, 403);
    // Counted once the server's side of each refused handshake has ended, which may come just
    // after the client has read its 403.
    server
        .metrics_with("sigcast_handshakes_total{outcome=\"bad_origin\"} 3\n")
        .await;
    stop.cancel();

    let (listed, stop) = start(&[("server.allowed_origins", "https://dash.example.com")]).await;
    let token = listed.token("browser");
    let offer = format!("sigcast.v1, bearer.{token}");
    listed
        .connect_headers(&browser(offer.clone(), "https://dash.example.com"))
        .await
        .unwrap();
    let own = format!("https://127.0.0.1:{}", listed.addr.port());
    let refusal = listed
        .connect_headers(&browser(offer, &own))
        .await
        .unwrap_err();
    assert_eq!(
        refusal.status, 403,
        "a list replaces the same-origin default"
    );
    // Header-authenticated clients (scripts, servers) are not browser sessions.
    listed
        .connect_headers(&[
            ("authorization", format!("Bearer {token}")),
            ("origin", "https://anything.example".into()),
        ])
        .await
        .unwrap();
    stop.cancel();
}

/// The page in Chromium: it connects with the token from its address (and takes the token
/// out of the address), draws the chosen symbol's live price with buy/sell markers as
/// signals arrive, lists the signals, gets test signals from its button, loads nothing from
/// elsewhere, and shows a refused token as refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_chromium() {
    let Some(modules) = common::e2e_tool("SIGCAST_E2E_NODE_MODULES") else {
        return;
    };
    let Some(chromium) = common::e2e_tool("SIGCAST_E2E_CHROMIUM") else {
        return;
    };
    let (server, stop) = start(&[]).await;
    let origin = format!("https://127.0.0.1:{}", server.addr.port());
    let good = format!(
        "{origin}/?symbol=BTCUSDT#token={}",
        server.token("dashboard")
    );
    let bad = format!("{origin}/#token=eyJhbGciOiJIUzI1NiJ9.e30.forged");
    let publisher = server.token_scoped(
        "desk",
        &sigcast::auth::Scope {
            publisher: true,
            ..Default::default()
        },
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/dashboard.js");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .args([&good, &bad])
        .arg(&shot)
        .arg(&publisher)
        .env("NODE_PATH", &modules)
        .env("SIGCAST_E2E_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = within(Duration::from_secs(150), run).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    stop.cancel();

    assert!(
        !seen["addressAfterLoad"].as_str().unwrap().contains("token"),
        "the token leaves the address bar: {}",
        seen["addressAfterLoad"]
    );
    assert_eq!(seen["status"], "connected");
    let state = &seen["state"];
    assert_eq!(state["symbol"], "BTCUSDT");
    assert_eq!(state["topic"], "spot.BTCUSDT.1m");
    assert!(state["points"].as_u64().unwrap() >= 3, "{state}");
    let markers = state["markers"].as_array().unwrap();
    assert!(
        markers.iter().any(|m| m["test"] == false),
        "a real signal marked on the chart: {state}"
    );
    assert!(
        state["tests"].as_u64().unwrap() >= 2,
        "test button answered"
    );
    let published = &seen["published"];
    assert_eq!(published["status"], 200, "{published}");
    assert!(
        markers
            .iter()
            .any(|m| m["test"] == false && m["side"] == "sell" && m["price"] == published["price"]),
        "the published signal is on the chart: {published} {state}"
    );
    assert_eq!(state["errors"], serde_json::json!([]));
    let pixels = &seen["pixels"];
    assert!(
        pixels["line"].as_u64().unwrap() > 50,
        "the price line is drawn: {pixels}"
    );
    assert!(
        pixels["buy"].as_u64().unwrap() + pixels["sell"].as_u64().unwrap() > 20,
        "markers are drawn: {pixels}"
    );
    let rows = seen["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r[1].as_str().unwrap().ends_with("(test)"))
    );
    assert!(
        rows.iter()
            .any(|r| matches!(r[1].as_str(), Some("buy" | "sell"))
                && r[4] == "quick"
                && !r[5].as_str().unwrap().is_empty()),
        "real signals with strategy and seq in the feed: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[1] == "sell" && r[4] == "desk-alert"),
        "the published signal is in the feed: {rows:?}"
    );
    let track = seen["track"].as_array().unwrap();
    assert!(
        track
            .iter()
            .any(|r| r[0] == "quick" && r[2].as_str().unwrap().contains("open")),
        "the track record shows the strategy's trades: {track:?}"
    );
    for url in seen["requests"].as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&origin),
            "the page loads only its own assets: {url}"
        );
    }
    assert_eq!(seen["problems"], serde_json::json!([]), "no console errors");
    assert!(
        seen["refusedStatus"]
            .as_str()
            .unwrap()
            .starts_with("refused")
    );
    assert_eq!(seen["loginShown"], true);
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot was taken"
    );
}
