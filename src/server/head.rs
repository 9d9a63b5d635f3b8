//! The HTTP request head: read first (to tell an upgrade from a publish `POST` or a page),
//! then checked before the upgrade, so a malformed or oversized request gets a clear HTTP
//! status and reason instead of a dropped connection.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Most request-head bytes read; a head that does not end within them is refused (431, or
/// 414 when the request line alone is longer). Room for a token up to the longest sigcast
/// reads (`auth::MAX_TOKEN_LEN`, 8 KiB), so a longer token gets its 401 rather than a 431.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most header lines in a request (the parser's table).
const MAX_HEADERS: usize = 32;

/// Reads until the end of the request head, or until [`MAX_HEAD`] bytes have arrived.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
            return Ok(head);
        }
    }
}

/// An HTTP refusal written before any upgrade.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    /// An extra header line (`Name: value`), e.g. the version a 426 asks for.
    pub header: Option<&'static str>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            header: None,
        }
    }

    /// Too many connections from one address.
    pub fn too_many_from_address(limit: usize) -> Self {
        Refusal {
            status: 429,
            reason: format!(
                "too many connections from your address (server.max_connections_per_ip = {limit})"
            ),
            header: Some("Retry-After: 1"),
        }
    }

    /// Writes the response (plain-text reason, `Connection: close`) and shuts the stream.
    pub async fn send<S: AsyncWrite + Unpin>(&self, stream: &mut S) {
        let body = format!("{}\n", self.reason);
        let extra = self.header.map(|h| format!("{h}\r\n")).unwrap_or_default();
        let response = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            self.status,
            status_text(self.status),
            body.len(),
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Checks a WebSocket upgrade request (RFC 6455 section 4.2.1) before it reaches the
/// upgrade: complete and within limits, HTTP/1.1 `GET`, `Connection: Upgrade`, a
/// `Sec-WebSocket-Key` of 16 base64 bytes, and `Sec-WebSocket-Version: 13` (else 426,
/// naming the version sigcast speaks).
pub fn check_upgrade(head: &[u8]) -> Result<(), Refusal> {
    if !head.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(if head.windows(2).any(|w| w == b"\r\n") {
            Refusal::new(431, format!("request head over {MAX_HEAD} bytes"))
        } else {
            Refusal::new(414, format!("request line over {MAX_HEAD} bytes"))
        });
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                431,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        Ok(httparse::Status::Partial) | Err(_) => {
            return Err(Refusal::new(400, "malformed HTTP request"));
        }
    }
    if request.method != Some("GET") {
        return Err(Refusal::new(400, "a WebSocket upgrade is a GET"));
    }
    if request.version != Some(1) {
        return Err(Refusal::new(400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    let value = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let connection = value("connection").unwrap_or_default().to_ascii_lowercase();
    if !connection.split(',').any(|t| t.trim() == "upgrade") {
        return Err(Refusal::new(400, "expected Connection: Upgrade"));
    }
    if !value("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(Refusal::new(400, "expected Upgrade: websocket"));
    }
    match value("sec-websocket-key") {
        None => return Err(Refusal::new(400, "missing Sec-WebSocket-Key")),
        Some(key) if !is_key(&key) => {
            return Err(Refusal::new(
                400,
                "Sec-WebSocket-Key must be 16 bytes in base64",
            ));
        }
        Some(_) => {}
    }
    if value("sec-websocket-version").as_deref() != Some("13") {
        return Err(Refusal {
            status: 426,
            reason: "sigcast speaks WebSocket version 13".into(),
            header: Some("Sec-WebSocket-Version: 13"),
        });
    }
    Ok(())
}

/// 16 bytes in base64: 22 characters of the alphabet, then `==`.
fn is_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        && &b[22..] == b"=="
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn status(head: &str) -> Option<u16> {
        check_upgrade(head.as_bytes()).err().map(|r| r.status)
    }

    #[test]
    fn a_proper_upgrade_passes() {
        assert_eq!(status(GOOD), None);
    }

    #[test]
    fn each_broken_part_gets_its_status() {
        let cases: &[(&str, &str, u16)] = &[
            ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=!", 400),
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426),
            ("Sec-WebSocket-Version: 13\r\n", "", 426),
            (
                "Connection: keep-alive, Upgrade",
                "Connection: keep-alive",
                400,
            ),
            ("Upgrade: websocket", "Upgrade: h2c", 400),
            ("GET / HTTP/1.1", "GET / HTTP/1.0", 400),
            ("GET / HTTP/1.1", "PUT / HTTP/1.1", 400),
            ("GET / HTTP/1.1", "GET / HTTP/1.1 garbage", 400),
        ];
        for (from, to, want) in cases {
            let head = GOOD.replacen(from, to, 1);
            assert_eq!(status(&head), Some(*want), "{head:?}");
        }
    }

    #[test]
    fn limits() {
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(MAX_HEAD));
        assert_eq!(status(&long_line[..MAX_HEAD]), Some(414));
        let long_head = format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(MAX_HEAD));
        assert_eq!(status(&long_head[..MAX_HEAD]), Some(431));
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let head = GOOD.replacen("Host: x\r\n", &many, 1);
        assert_eq!(status(&head), Some(431));
    }
}
