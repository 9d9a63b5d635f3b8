//! The live dashboard: a small page served at `/` on the client port, its script and style
//! embedded in the binary (no CDN). Opened in a browser, it connects back as a client with
//! its token offered as a subprotocol (`sigcast.v1`, `bearer.<JWT>`), and shows the
//! connection, a live price chart with buy and sell markers, the signal feed and a `test`
//! button. The page itself holds nothing secret, so it is served without a token.

use tokio::io::{AsyncWrite, AsyncWriteExt};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Only this page's own script and style, and WebSockets back to the same origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A `GET`/`HEAD` that is not a WebSocket upgrade: someone opening the port in a browser.
pub fn is_page_request(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    if !matches!(request.method, Some("GET" | "HEAD")) {
        return false;
    }
    !request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.to_ascii_lowercase().contains("websocket"))
    })
}

/// Answers one page request and closes.
pub async fn serve<S: AsyncWrite + Unpin>(mut stream: S, head: &[u8], enabled: bool) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    let path = request.path.unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let (status, content_type, body) = match (enabled, path) {
        (false, _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "the dashboard is off (server.dashboard = false); connect with a WebSocket client\n",
        ),
        (true, "/" | "/index.html") => ("200 OK", "text/html; charset=utf-8", INDEX),
        (true, "/dashboard.js") => ("200 OK", "text/javascript; charset=utf-8", SCRIPT),
        (true, "/dashboard.css") => ("200 OK", "text/css; charset=utf-8", STYLE),
        (true, _) => ("404 Not Found", "text/plain; charset=utf-8", "not found\n"),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: {POLICY}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if request.method != Some("HEAD") {
        response.push_str(body);
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_gets_are_page_requests() {
        assert!(is_page_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(is_page_request(b"HEAD /dashboard.js HTTP/1.1\r\n\r\n"));
        assert!(!is_page_request(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        ));
        assert!(!is_page_request(b"POST / HTTP/1.1\r\n\r\n"));
        assert!(!is_page_request(b"GET / HTTP/1.1\r\n")); // incomplete
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
