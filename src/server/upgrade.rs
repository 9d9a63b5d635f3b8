//! The WebSocket upgrade request, checked before anyone looks at its token, so a request
//! that is no proper upgrade gets a clear HTTP status and reason; and the 101 that accepts
//! one.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::http::{self, Body};

/// An HTTP refusal written before any upgrade.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
    /// An extra header, e.g. the version a 426 asks for.
    pub header: Option<(header::HeaderName, &'static str)>,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            header: None,
        }
    }

    /// Too many connections from one address.
    pub fn too_many_from_address(limit: usize) -> Self {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason: format!(
                "too many connections from your address (server.max_connections_per_ip = {limit})"
            ),
            header: Some((header::RETRY_AFTER, "1")),
        }
    }

    /// The answer: the status, a plain-text reason, and the extra header.
    pub fn response(&self) -> Response<Body> {
        let mut response = http::text(self.status, &self.reason);
        if let Some((name, value)) = &self.header {
            response
                .headers_mut()
                .insert(name.clone(), HeaderValue::from_static(value));
        }
        response
    }
}

/// Checks a WebSocket upgrade request (RFC 6455 section 4.2.1): HTTP/1.1 `GET`, `Connection: Upgrade`, `Upgrade: websocket`,
/// a `Sec-WebSocket-Key` of 16 base64 bytes, and `Sec-WebSocket-Version: 13` (else 426,
/// naming the version sigcast speaks). hyper has already refused heads it cannot parse (400)
/// and heads over the limits (431), and [`http::target_too_long`] long targets (414).
pub fn check<B>(request: &Request<B>) -> Result<(), Refusal> {
    if request.method() != Method::GET {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade is a GET",
        ));
    }
    if request.version() != Version::HTTP_11 {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs HTTP/1.1",
        ));
    }
    let value = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
    };
    let connection = value(header::CONNECTION)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !connection.split(',').any(|t| t.trim() == "upgrade") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "expected Connection: Upgrade",
        ));
    }
    if !value(header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "expected Upgrade: websocket",
        ));
    }
    match value(header::SEC_WEBSOCKET_KEY) {
        None => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "missing Sec-WebSocket-Key",
            ));
        }
        Some(key) if !is_key(&key) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key must be 16 bytes in base64",
            ));
        }
        Some(_) => {}
    }
    if value(header::SEC_WEBSOCKET_VERSION).as_deref() != Some("13") {
        return Err(Refusal {
            status: StatusCode::UPGRADE_REQUIRED,
            reason: "sigcast speaks WebSocket version 13".into(),
            header: Some((header::SEC_WEBSOCKET_VERSION, "13")),
        });
    }
    Ok(())
}

/// The 101 that switches a [`check`]ed request to WebSocket.
pub fn switching<B>(request: &Request<B>) -> Response<Body> {
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
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

    /// A request as hyper would hand it on: method, target, version and headers.
    fn request(
        method: &str,
        target: &str,
        version: Version,
        headers: &[(&str, &str)],
    ) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const GOOD: [(&str, &str); 5] = [
        ("host", "x"),
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    /// The status a request gets when `header` is replaced by `value` (`None`: left out).
    fn with(header: &str, value: Option<&str>) -> Option<u16> {
        let headers: Vec<(&str, &str)> = GOOD
            .iter()
            .filter_map(|&(n, v)| match n == header {
                true => value.map(|value| (n, value)),
                false => Some((n, v)),
            })
            .collect();
        let request = request("GET", "/", Version::HTTP_11, &headers);
        check(&request).err().map(|r| r.status.as_u16())
    }

    #[test]
    fn a_proper_upgrade_passes_and_is_answered_with_its_accept_key() {
        assert_eq!(with("host", Some("x")), None);
        let request = request("GET", "/", Version::HTTP_11, &GOOD);
        let answer = switching(&request);
        assert_eq!(answer.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 section 1.3's worked example.
        assert_eq!(
            answer.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn each_broken_part_gets_its_status() {
        let cases: &[(&str, Option<&str>, u16)] = &[
            ("sec-websocket-key", None, 400),
            ("sec-websocket-key", Some("c2hvcnQ="), 400),
            ("sec-websocket-key", Some("dGhlIHNhbXBsZSBub25jZQ=!"), 400),
            ("sec-websocket-version", Some("8"), 426),
            ("sec-websocket-version", None, 426),
            ("connection", Some("keep-alive"), 400),
            ("upgrade", Some("h2c"), 400),
        ];
        for (header, value, want) in cases {
            assert_eq!(with(header, *value), Some(*want), "{header}: {value:?}");
        }
        let status = |r: Request<()>| check(&r).err().map(|r| r.status.as_u16());
        assert_eq!(
            status(request("GET", "/", Version::HTTP_10, &GOOD)),
            Some(400)
        );
        assert_eq!(
            status(request("PUT", "/", Version::HTTP_11, &GOOD)),
            Some(400)
        );
    }

    #[test]
    fn a_426_names_the_version_sigcast_speaks() {
        let request = request("GET", "/", Version::HTTP_11, &GOOD[..4]);
        let answer = check(&request).unwrap_err().response();
        assert_eq!(answer.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }
}
