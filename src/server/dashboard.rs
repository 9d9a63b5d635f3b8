//! The live dashboard: a small page served at `/` on the client port, its script and style
//! embedded in the binary (no CDN). Opened in a browser, it connects back as a client with
//! its token offered as a subprotocol (`sigcast.v1`, `bearer.<JWT>`), and shows the
//! connection, a live price chart with buy and sell markers, the signal feed and a `test`
//! button. The page itself holds nothing secret, so it is served without a token.

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::http::{self, Body};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Only this page's own script and style, and WebSockets back to the same origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A `GET`/`HEAD` that is not a WebSocket upgrade: someone opening the port in a browser.
pub fn is_page_request<B>(request: &Request<B>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && !request.headers().get_all(header::UPGRADE).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("websocket"))
        })
}

/// The page or asset asked for (hyper leaves out the body of an answer to `HEAD`).
pub fn page<B>(request: &Request<B>, enabled: bool) -> Response<Body> {
    let (status, content_type, body) = match (enabled, request.uri().path()) {
        (false, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "the dashboard is off (server.dashboard = false); connect with a WebSocket client\n",
        ),
        (true, "/" | "/index.html") => (StatusCode::OK, "text/html; charset=utf-8", INDEX),
        (true, "/dashboard.js") => (StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
        (true, "/dashboard.css") => (StatusCode::OK, "text/css; charset=utf-8", STYLE),
        (true, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    };
    let mut response = http::answer(status, content_type, Bytes::from_static(body.as_bytes()));
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_gets_are_page_requests() {
        let request = |method: &str, upgrade: Option<&str>| {
            let mut builder = Request::builder().method(method).uri("/");
            if let Some(upgrade) = upgrade {
                builder = builder.header("upgrade", upgrade);
            }
            builder.body(()).unwrap()
        };
        assert!(is_page_request(&request("GET", None)));
        assert!(is_page_request(&request("HEAD", None)));
        assert!(!is_page_request(&request("GET", Some("WebSocket"))));
        assert!(!is_page_request(&request("POST", None)));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(
            INDEX.contains("src=\"/dashboard.js\"") && INDEX.contains("href=\"/dashboard.css\"")
        );
        for asset in [INDEX, SCRIPT, STYLE] {
            assert!(
                !asset.contains("http://") && !asset.contains("https://"),
                "no outside URL"
            );
        }
    }
}
