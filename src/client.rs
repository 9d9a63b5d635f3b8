//! The consumer client: connects to a sigcast server, resumes from the last `seq` it saw after
//! every disconnect, and hands over each signal once, in order.
//!
//! ```no_run
//! # async fn demo() {
//! use sigcast::client::{Client, ClientOptions};
//! let options = ClientOptions::new("wss://127.0.0.1:8443", "TOKEN");
//! let mut signals = Client::new(options)
//!     .on_connect(|| eprintln!("connected"))
//!     .on_disconnect(|why| eprintln!("disconnected: {why}"))
//!     .listen();
//! while let Some(Ok(signal)) = signals.recv().await {
//!     println!("{}", signal.text);
//! }
//! # }
//! ```
//!
//! Reconnects follow [`ReconnectPolicy`] (1 s, doubling, 30 s cap, with jitter, as the client
//! guide advises). A refused token (HTTP 401) ends the stream with [`ClientError::Unauthorized`]
//! instead of retrying forever.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// When and how often to reconnect.
#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    /// Failed attempts in a row before giving up; `None` never gives up.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            factor: 2.0,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `n` (1-based): exponential, capped, half of it random.
    pub fn delay(&self, n: u32) -> Duration {
        let base =
            self.initial.as_secs_f64() * self.factor.powi(n.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.max.as_secs_f64());
        Duration::from_secs_f64(capped * (0.5 + rand::random::<f64>() * 0.5))
    }
}

/// Where to connect and what to ask for.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `wss://HOST:PORT`.
    pub url: String,
    pub token: String,
    /// A CA certificate (PEM) to trust instead of the public roots, e.g. a self-signed cert.
    pub ca: Option<PathBuf>,
    /// Topics to subscribe to after each connect (none: every signal the token allows).
    pub topics: Vec<String>,
    /// Resume after this `seq` on the first connect.
    pub since: Option<u64>,
    pub policy: ReconnectPolicy,
}

impl ClientOptions {
    pub fn new(url: &str, token: &str) -> Self {
        Self {
            url: url.to_string(),
            token: token.to_string(),
            ca: None,
            topics: Vec::new(),
            since: None,
            policy: ReconnectPolicy::default(),
        }
    }
}

/// One message as received: a signal (the contract shape, with its `seq`) or a market-data
/// update (no `seq`).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub seq: Option<u64>,
    pub text: String,
}

/// Why the stream ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("the server refused the token (HTTP 401): {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Config(String),
    #[error("gave up after {0} failed attempts in a row")]
    GaveUp(u32),
}

type Hook<T> = Option<Arc<dyn Fn(T) + Send + Sync>>;

/// A resuming signal client.
pub struct Client {
    options: ClientOptions,
    on_connect: Hook<()>,
    on_disconnect: Hook<&'static str>,
    on_error: Hook<String>,
}

impl Client {
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            on_connect: None,
            on_disconnect: None,
            on_error: None,
        }
    }

    /// Called after each successful connect.
    pub fn on_connect(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Arc::new(move |()| f()));
        self
    }

    /// Called when a connection ends, with why (`closed`, `network error`, ...).
    pub fn on_disconnect(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_disconnect = Some(Arc::new(move |why: &'static str| f(why)));
        self
    }

    /// Called for errors: failed connects and the server's error messages.
    pub fn on_error(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(move |e: String| f(&e)));
        self
    }

    /// Starts the client; signals arrive on the receiver, each once, in `seq` order.
    pub fn listen(self) -> mpsc::Receiver<Result<Received, ClientError>> {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(self, tx: mpsc::Sender<Result<Received, ClientError>>) {
        let tls = match tls_config(self.options.ca.as_ref()) {
            Ok(t) => t,
            Err(e) => {
                let _ = tx.send(Err(ClientError::Config(e))).await;
                return;
            }
        };
        let mut last = self.options.since;
        let mut failures = 0u32;
        loop {
            match self.session(&tls, &mut last, &tx).await {
                Ok(Ended::Receiver) => return,
                Ok(Ended::Dropped(why)) => {
                    failures = 0;
                    if let Some(f) = &self.on_disconnect {
                        f(why);
                    }
                }
                Err(Failure::Fatal(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(Failure::Retry(e)) => {
                    if let Some(f) = &self.on_error {
                        f(e);
                    }
                }
            }
            failures += 1;
            if self
                .options
                .policy
                .max_attempts
                .is_some_and(|m| failures > m)
            {
                let _ = tx.send(Err(ClientError::GaveUp(failures - 1))).await;
                return;
            }
            tokio::time::sleep(self.options.policy.delay(failures)).await;
        }
    }

    /// One connection: handshake (resuming after `last`), subscribe, forward signals.
    async fn session(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        last: &mut Option<u64>,
        tx: &mpsc::Sender<Result<Received, ClientError>>,
    ) -> Result<Ended, Failure> {
        let o = &self.options;
        let mut request = o
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| Failure::Fatal(ClientError::Config(format!("{}: {e}", o.url))))?;
        let host = request.uri().host().unwrap_or("localhost").to_string();
        let port = request.uri().port_u16().unwrap_or(443);
        let header = |v: String| {
            HeaderValue::from_str(&v).map_err(|_| {
                Failure::Fatal(ClientError::Config("the token is not header-safe".into()))
            })
        };
        request
            .headers_mut()
            .insert("authorization", header(format!("Bearer {}", o.token))?);
        if let Some(seq) = last {
            request
                .headers_mut()
                .insert("x-sigcast-last-seq", header(seq.to_string())?);
        }
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Failure::Retry(format!("connect {host}:{port}: {e}")))?;
        let name = ServerName::try_from(host.clone())
            .map_err(|_| Failure::Fatal(ClientError::Config(format!("bad host {host}"))))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| Failure::Retry(format!("TLS: {e}")))?;
        let mut ws = match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _)) => ws,
            Err(WsError::Http(r)) if r.status() == 401 => {
                let body = r
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .unwrap_or_default();
                return Err(Failure::Fatal(ClientError::Unauthorized(body)));
            }
            Err(e) => return Err(Failure::Retry(format!("handshake: {e}"))),
        };
        if let Some(f) = &self.on_connect {
            f(());
        }
        for topic in &o.topics {
            let subscribe = serde_json::json!({"type": "subscribe", "topic": topic}).to_string();
            if ws.send(Message::text(subscribe)).await.is_err() {
                return Ok(Ended::Dropped("network error"));
            }
        }
        while let Some(message) = ws.next().await {
            let text = match message {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(_)) => return Ok(Ended::Dropped("closed by the server")),
                Ok(_) => continue,
                Err(_) => return Ok(Ended::Dropped("network error")),
            };
            let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            match v.get("type").and_then(|t| t.as_str()) {
                Some("buy" | "sell") => {
                    let seq = v.get("seq").and_then(|s| s.as_u64());
                    if let (Some(seq), Some(seen)) = (seq, *last) {
                        if seq <= seen {
                            continue; // already handed over
                        }
                    }
                    if seq.is_some() {
                        *last = seq;
                    }
                    let received = Received {
                        seq,
                        text: text.as_str().to_string(),
                    };
                    if tx.send(Ok(received)).await.is_err() {
                        return Ok(Ended::Receiver);
                    }
                }
                Some("kline" | "ticker" | "book") => {
                    // Market data: the latest values, unnumbered, never resumed.
                    let received = Received {
                        seq: None,
                        text: text.as_str().to_string(),
                    };
                    if tx.send(Ok(received)).await.is_err() {
                        return Ok(Ended::Receiver);
                    }
                }
                Some("error") => {
                    if let Some(f) = &self.on_error {
                        f(text.as_str().to_string());
                    }
                }
                _ => {} // acks and pongs
            }
        }
        Ok(Ended::Dropped("connection ended"))
    }
}

enum Ended {
    /// Whoever listened is gone.
    Receiver,
    Dropped(&'static str),
}

enum Failure {
    Fatal(ClientError),
    Retry(String),
}

pub(crate) fn tls_config(ca: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots(ca)?)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates a client trusts: `--ca`'s, or the web's roots without it.
pub(crate) fn roots(ca: Option<&PathBuf>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("--ca {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--ca {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}
