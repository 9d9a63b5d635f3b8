//! Reaching Binance: TCP (directly or through SOCKS5), TLS with webpki roots, WebSocket.

use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Uri;

/// Any byte stream a WebSocket can run over (plain TCP, SOCKS5, TLS over either).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An upstream WebSocket.
pub type Upstream = WebSocketStream<Box<dyn Io>>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("bad URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot reach {target}: {source}")]
    Tcp {
        target: String,
        source: std::io::Error,
    },
    #[error("SOCKS5 proxy {proxy} could not reach {target}: {reason}")]
    Proxy {
        proxy: String,
        target: String,
        reason: String,
    },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("WebSocket handshake with {url} failed: {reason}")]
    Handshake { url: String, reason: String },
}

/// The client TLS config for Binance: webpki roots, ring, TLS 1.2 and 1.3.
pub fn client_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| {
                // Both versions are supported by ring: this branch is unreachable in practice.
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
            });
            Arc::new(config)
        })
        .clone()
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`), through `proxy` when given.
pub async fn connect(url: &str, proxy: Option<&str>) -> Result<Upstream, ConnectError> {
    let bad = |reason: &str| ConnectError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URI"))?;
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(bad("expected ws:// or wss://")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let target = format!("{host}:{port}");

    let tcp: Box<dyn Io> = match proxy {
        Some(proxy) => {
            let addr = proxy.trim_start_matches("socks5://");
            let stream = tokio_socks::tcp::Socks5Stream::connect(addr, (host.as_str(), port))
                .await
                .map_err(|e| ConnectError::Proxy {
                    proxy: proxy.to_string(),
                    target: target.clone(),
                    reason: e.to_string(),
                })?;
            let _ = stream.set_nodelay(true);
            Box::new(stream)
        }
        None => {
            let stream = TcpStream::connect(&target)
                .await
                .map_err(|source| ConnectError::Tcp {
                    target: target.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            Box::new(stream)
        }
    };
    let stream: Box<dyn Io> = if secure {
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|_| bad("host is not a valid TLS name"))?;
        let tls = tokio_rustls::TlsConnector::from(client_tls())
            .connect(name, tcp)
            .await
            .map_err(|source| ConnectError::Tls {
                host: host.clone(),
                source,
            })?;
        Box::new(tls)
    } else {
        tcp
    };
    let request = url
        .into_client_request()
        .map_err(|e| ConnectError::Handshake {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, None)
        .await
        .map_err(|e| ConnectError::Handshake {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    Ok(ws)
}
