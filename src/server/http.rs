//! The one HTTP layer of both ports: hyper reads every request, within the limits here, and
//! every answer sigcast writes before an upgrade (or on the admin port) is made here.
//!
//! One request per connection: every answer but a 101 says `Connection: close`. The client
//! port's HTTP is a handshake, a publish or a page, each bounded by
//! `server.handshake_timeout`, and the admin port's a scrape; neither gains from holding a
//! connection between requests. (hyper's own switch for that, `keep_alive(false)`, would also
//! add `close` to a 101's `Connection: Upgrade`, which WebSocket clients refuse.)

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

/// Every answer's body: whole, in memory, small.
pub type Body = Full<Bytes>;

/// Most request-head bytes read; a head that does not end within them gets 431. Room for a
/// token up to the longest sigcast reads (`auth::MAX_TOKEN_LEN`, 8 KiB), so a longer token
/// gets its 401 rather than a 431.
pub const MAX_HEAD: usize = 16 * 1024;

/// Longest request target (path and query); a longer one gets 414.
pub const MAX_TARGET: usize = 8 * 1024;

/// Most header lines in a request; more get 431.
pub const MAX_HEADERS: usize = 32;

/// hyper's HTTP/1.1 server as both ports use it: a head of at most `max_head` bytes and
/// [`MAX_HEADERS`] lines (431 beyond), header names written in their usual title case.
pub fn server(max_head: usize) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // hyper's smallest read buffer is 8 KiB.
        .max_buf_size(max_head.max(8192))
        .max_headers(MAX_HEADERS)
        .title_case_headers(true);
    builder
}

/// A plain-text answer: `reason` and a newline.
pub fn text(status: StatusCode, reason: &str) -> Response<Body> {
    answer(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{reason}\n")),
    )
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    answer(
        status,
        "application/json",
        Bytes::from(value.to_string().into_bytes()),
    )
}

/// An answer of `content_type` with `body`.
pub fn answer(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `Retry-After: seconds` on `response`.
pub fn retry_after(mut response: Response<Body>, seconds: u64) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 414 for a request target (path and query) over [`MAX_TARGET`]: checked before any route.
pub fn target_too_long<B>(request: &Request<B>) -> Option<Response<Body>> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    (target > MAX_TARGET).then(|| {
        text(
            StatusCode::URI_TOO_LONG,
            &format!("request target over {MAX_TARGET} bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_over_the_limit_get_414() {
        let target = |len: usize| {
            let request = Request::get(format!("/{}", "a".repeat(len - 1)))
                .body(())
                .unwrap();
            target_too_long(&request).map(|r| r.status().as_u16())
        };
        assert_eq!(target(MAX_TARGET), None);
        assert_eq!(target(MAX_TARGET + 1), Some(414));
    }
}
