//! Test harness: a real sigcast server on port 0 with TLS material made at test time, and a
//! real TLS WebSocket client that trusts it.

#![allow(dead_code)]

pub mod binance_mock;
pub mod hostile;
pub mod proxy;
pub mod served;
pub mod socks5;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sigcast::auth::KeyRing;
use sigcast::config::{Config, Overrides};
use sigcast::hub::Hub;
use sigcast::strategy::{Side, Signal};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

pub type Client = WebSocketStream<TlsStream<TcpStream>>;

/// A directory with a development certificate, a JWT secret and an Ed25519 key pair.
pub struct Material {
    pub dir: tempfile::TempDir,
}

impl Material {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = sigcast::devcert::generate().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.key_pem).unwrap();
        std::fs::write(
            dir.path().join("jwt.secret"),
            "0123456789abcdef0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let (private, public) = sigcast::devcert::ed25519_pair().unwrap();
        std::fs::write(dir.path().join("ed.pem"), private).unwrap();
        std::fs::write(dir.path().join("ed.pub.pem"), public).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn secret(&self) -> Vec<u8> {
        std::fs::read(self.path("jwt.secret"))
            .unwrap()
            .trim_ascii()
            .to_vec()
    }

    /// A config using this material (HS256 primary key), with extra `key=value` settings.
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut o = Overrides::default();
        o.set("server.listen", "127.0.0.1:0");
        o.set("data.dir", self.path("data").to_str().unwrap());
        o.set("tls.cert", self.path("cert.pem").to_str().unwrap());
        o.set("tls.key", self.path("key.pem").to_str().unwrap());
        o.set(
            "auth.jwt_secret_file",
            self.path("jwt.secret").to_str().unwrap(),
        );
        for (k, v) in extra {
            o.set(k, *v);
        }
        Config::load(None, &BTreeMap::new(), &o).unwrap()
    }
}

/// A running in-process server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    /// What the sessions share (counters included).
    pub shared: Arc<sigcast::server::Shared>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
    pub material: Material,
    pub config: Config,
    ring: KeyRing,
}

impl TestServer {
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let material = Material::new();
        let config = material.config(extra);
        Self::start_with(material, config).await
    }

    pub async fn start_with(material: Material, config: Config) -> Self {
        let shared = sigcast::node::build(&config).unwrap();
        let hub = shared.hub.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sigcast::server::run(
            listener,
            shared.clone(),
            shutdown.clone(),
        ));
        let ring = KeyRing::from_settings(&config.auth).unwrap();
        Self {
            addr,
            hub,
            shared,
            shutdown,
            task,
            material,
            config,
            ring,
        }
    }

    /// A valid token restricted to `scope`.
    pub fn token_scoped(&self, sub: &str, scope: &sigcast::auth::Scope) -> String {
        self.ring
            .issue_scoped(sub, Duration::from_secs(600), None, scope)
            .unwrap()
    }

    /// A valid token from the server's own key ring.
    pub fn token(&self, sub: &str) -> String {
        self.ring
            .issue(sub, Duration::from_secs(600), None)
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("wss://127.0.0.1:{}", self.addr.port())
    }

    /// Connects with `Authorization: Bearer <token>`, or without the header for `None`.
    pub async fn connect(&self, token: Option<&str>) -> Result<Client, Refusal> {
        let headers: Vec<String> = token.map(|t| format!("Bearer {t}")).into_iter().collect();
        self.connect_with(&headers).await
    }

    /// Connects with these `Authorization` header values, in order.
    pub async fn connect_with(&self, authorization: &[String]) -> Result<Client, Refusal> {
        let headers: Vec<(&str, String)> = authorization
            .iter()
            .map(|v| ("authorization", v.clone()))
            .collect();
        self.connect_headers(&headers).await
    }

    /// Connects with a token and `X-Sigcast-Last-Seq: last_seq` (any text, to test refusals).
    pub async fn connect_resuming(&self, token: &str, last_seq: &str) -> Result<Client, Refusal> {
        self.connect_headers(&[
            ("authorization", format!("Bearer {token}")),
            ("x-sigcast-last-seq", last_seq.to_string()),
        ])
        .await
    }

    /// Connects with a token over `socket`, set up by the caller (bound to another loopback
    /// address, or with a small receive buffer).
    pub async fn connect_socket(
        &self,
        socket: tokio::net::TcpSocket,
        token: &str,
    ) -> Result<Client, Refusal> {
        let tcp = socket.connect(self.addr).await.unwrap();
        let headers = [("authorization", format!("Bearer {token}"))];
        self.connect_headers_over(tcp, &headers).await
    }

    /// Connects with these headers.
    pub async fn connect_headers(&self, headers: &[(&str, String)]) -> Result<Client, Refusal> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        self.connect_headers_over(tcp, headers).await
    }

    /// Connects over `tcp` with these headers.
    async fn connect_headers_over(
        &self,
        tcp: TcpStream,
        headers: &[(&str, String)],
    ) -> Result<Client, Refusal> {
        let tls = tls_over(tcp, &self.material.path("cert.pem"), None).await;
        let mut request = self.url().into_client_request().unwrap();
        for (name, value) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap();
            request
                .headers_mut()
                .append(name, HeaderValue::from_str(value).unwrap());
        }
        match tokio_tungstenite::client_async(request, tls).await {
            Ok((ws, response)) => {
                assert_eq!(response.status(), 101);
                Ok(ws)
            }
            Err(WsError::Http(response)) => Err(Refusal::from_response(&response)),
            Err(e) => panic!("unexpected handshake error: {e}"),
        }
    }

    /// Waits until `n` sessions are subscribed to the hub, so a publish reaches them.
    pub async fn wait_listeners(&self, n: usize) {
        within(Duration::from_secs(5), async {
            while self.hub.listeners() != n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// The server's `/metrics` text.
    pub fn metrics(&self) -> String {
        sigcast::admin::render(&sigcast::admin::Observed::new(self.shared.clone()))
    }

    /// The server's `/metrics` text once it holds `line` (a session's ending is counted as
    /// its task ends, a moment after the client sees it).
    pub async fn metrics_with(&self, line: &str) -> String {
        within(Duration::from_secs(5), async {
            loop {
                let metrics = self.metrics();
                if metrics.contains(line) {
                    break metrics;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// An HTTP answer that refused the upgrade.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl Refusal {
    fn from_response(r: &Response<Option<Vec<u8>>>) -> Self {
        Self {
            status: r.status().as_u16(),
            www_authenticate: r
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string()),
            body: r
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// A TLS connection to `addr` that trusts only the certificate in `ca`.
pub async fn tls_connect(addr: SocketAddr, ca: &Path) -> TlsStream<TcpStream> {
    tls_connect_with(addr, ca, None).await
}

/// Like [`tls_connect`], pinned to one protocol version when `version` is given.
pub async fn tls_connect_with(
    addr: SocketAddr,
    ca: &Path,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls_over(tcp, ca, version).await
}

/// TLS over a connected socket (e.g. one bound to another loopback address first).
pub async fn tls_over(
    tcp: TcpStream,
    ca: &Path,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> TlsStream<TcpStream> {
    try_tls_over(tcp, ca, version).await.unwrap()
}

/// [`tls_over`], with the handshake's failure returned (a server that may be going away).
pub async fn try_tls_over(
    tcp: TcpStream,
    ca: &Path,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Fails the test if `f` takes longer than `limit`: no test can hang.
pub async fn within<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .expect("timed out waiting")
}

/// The next text message, skipping pings and pongs.
pub async fn next_text(ws: &mut Client) -> String {
    within(Duration::from_secs(5), async {
        loop {
            match ws.next().await.expect("stream ended").expect("read error") {
                Message::Text(t) => return t.as_str().to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected text, got {other:?}"),
            }
        }
    })
    .await
}

/// Reads until the server's close frame; returns its code and reason.
pub async fn expect_close(ws: &mut Client, limit: Duration) -> (u16, String) {
    within(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.as_str().to_string());
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("read error before close frame: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    })
    .await
}

/// Asserts nothing but control frames arrive for `wait`.
pub async fn expect_silence(ws: &mut Client, wait: Duration) {
    let got = tokio::time::timeout(wait, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    if let Ok(message) = got {
        panic!("expected silence, got {message:?}");
    }
}

pub async fn send_text(ws: &mut Client, text: &str) {
    ws.send(Message::text(text.to_string())).await.unwrap();
}

pub fn signal(symbol: &str, side: Side, price: f64) -> Signal {
    Signal {
        side,
        symbol: symbol.into(),
        price,
        timestamp: 1_720_000_000,
        strategy: "test-harness".into(),
        interval: "1s".into(),
        reason: "published by the test".into(),
    }
}

/// A client tool `scripts/test` installs, from its variable (`SIGCAST_E2E_PYTHON`, ...).
/// Without it, plain `cargo test` skips (saying so) while CI fails, so CI never skips.
pub fn e2e_tool(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) => Some(PathBuf::from(v)),
        None if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: run the suite with scripts/test")
        }
        None => {
            eprintln!("skipping: {var} is not set (scripts/test sets it)");
            None
        }
    }
}

/// A strategy on every synthetic symbol that signals every second or two.
pub const QUICK: &str = "[[strategy]]\nname = \"quick\"\nkind = \"ma_cross\"\nsymbols = [\"BTCUSDT\", \"ETHUSDT\", \"SOLUSDT\"]\ninterval = \"1s\"\n[strategy.params]\nfast = 1\nslow = 2\n";

/// A fast futures MA cross on TSTUSDT (1 s candles, 2 over 3): warm after four candles.
pub const CROSS: &str = "[[strategy]]\nname = \"cross\"\nkind = \"ma_cross\"\nmarket = \"futures\"\nsymbol = \"TSTUSDT\"\ninterval = \"1s\"\n[strategy.params]\nfast = 2\nslow = 3\n";

/// A command running the built `sigcast`, its admin listener on a free port (so test
/// servers running at once do not contend for 9090).
pub fn sigcast_command() -> std::process::Command {
    let mut command = std::process::Command::new(sigcast_bin());
    command.env("SIGCAST_ADMIN_LISTEN", "127.0.0.1:0");
    command
}

/// The path of the built `sigcast` binary; `SIGCAST_TEST_BIN` names another build instead,
/// to check that a test of a fix fails on the build before it.
pub fn sigcast_bin() -> PathBuf {
    std::env::var_os("SIGCAST_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sigcast")))
}

/// Prints a hardening check's summary and keeps it in `target/tmp/reports/<name>.txt`, which
/// `scripts/test` prints at the end of the run (cargo test shows a passing test's output only
/// with `--nocapture`).
pub fn report(name: &str, text: &str) {
    eprintln!("{text}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reports");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join(format!("{name}.txt")),
        format!("{}\n", text.trim_end()),
    );
}

/// `GET path` on a server's client port over TLS, with a bearer `token` if given: the
/// status, the head and the body.
pub async fn https_get(
    addr: SocketAddr,
    ca: &Path,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(addr, ca).await;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: sigcast\r\n{authorization}\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}
