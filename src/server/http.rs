//! `POST /v1/signals` on the client port: a publisher token publishes one signal over HTTP.
//!
//! The body is the client contract (`{"type":"buy","content":{...}}`, see
//! [`crate::hub::inbound`]). The token comes in `Authorization: Bearer`, or, for webhook
//! senders that cannot set headers (TradingView alerts), as a `"token"` field of the body.
//! Answers: 200 `{"type":"publish_ack","seq":N,"id":KEY}` once the signal is durable, 400
//! (bad signal, naming the field), 401, 403 (not a publisher), 404, 413 (body over 16 KiB),
//! 503 with `Retry-After` (`publish_pending`: not stored yet, may still be, retry with the
//! same key; `publish_failed`: not stored). A retry that names the first one's key, in the
//! `Idempotency-Key` header or an `"id"` field of the body, stores nothing new and gets the
//! first one's `seq`. The answer always goes out before `server.handshake_timeout` ends the
//! connection.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Shared;
use crate::auth::{AuthError, bearer_token};
use crate::clock::unix_now;
use crate::hub::PublishError;

/// The publish endpoint's path.
pub const PUBLISH_PATH: &str = "/v1/signals";
/// Largest body accepted.
const MAX_BODY: usize = 16 * 1024;
/// Time kept back from the connection's deadline to write the answer.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);
/// What a 503 tells the publisher to wait before it retries, in seconds.
const RETRY_AFTER: u64 = 2;

/// Answers one HTTP request whose head (and maybe part of its body) is in `head`.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: Vec<u8>,
    peer: SocketAddr,
    shared: &Shared,
    deadline: tokio::time::Instant,
) {
    let (status, body) = answer(&mut stream, &head, peer, shared, deadline).await;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let text = body.to_string();
    let retry = if status == 503 {
        format!("Retry-After: {RETRY_AFTER}\r\n")
    } else {
        String::new()
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "error_code": code, "error_message": message, "timestamp": unix_now()})
}

async fn answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    head: &[u8],
    peer: SocketAddr,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> (u16, Value) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = request.parse(head) else {
        return (400, error("invalid_message", "malformed HTTP request"));
    };
    if request.method != Some("POST") {
        return (405, error("invalid_message", "use POST"));
    }
    if request.path.map(|p| p.split('?').next().unwrap_or(p)) != Some(PUBLISH_PATH) {
        return (404, error("invalid_message", "POST signals to /v1/signals"));
    }
    let headers = &*request.headers;
    let header = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let length = header("content-length")
        .next()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
    let Some(length) = length else {
        return (400, error("invalid_message", "Content-Length is required"));
    };
    if length > MAX_BODY {
        return (413, error("invalid_message", "the body is over 16 KiB"));
    }
    let mut body = head[head_len..].to_vec();
    body.truncate(length);
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return (400, error("invalid_message", "the body ended early")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                error("invalid_signal", &format!("the body is not JSON: {e}")),
            );
        }
    };
    let from_body = value.get("token").and_then(Value::as_str);
    let claims = match bearer_token(header("authorization")) {
        Ok(token) => shared.keys.current().verify(token),
        Err(AuthError::Missing) => match from_body {
            Some(token) => shared.keys.current().verify(token),
            None => Err(AuthError::Missing),
        },
        Err(e) => Err(e),
    }
    .and_then(|claims| {
        if shared.revoked.borrow().covers(&claims) {
            Err(AuthError::Invalid(crate::auth::REVOKED.into()))
        } else {
            Ok(claims)
        }
    });
    let claims = match claims {
        Ok(c) => c,
        Err(reason) => {
            tracing::info!(%peer, %reason, "publish refused: 401");
            return (401, error("unauthorized", &reason.to_string()));
        }
    };
    if !claims.is_publisher() {
        return (
            403,
            error(
                "publish_denied",
                "this token may not publish; a publisher token may",
            ),
        );
    }
    let id = header("idempotency-key")
        .next()
        .map(|v| std::str::from_utf8(v).map_err(|_| "Idempotency-Key: not text".to_string()))
        .or_else(|| {
            value.get("id").map(|id| {
                id.as_str()
                    .ok_or_else(|| "id: expected a string".to_string())
            })
        })
        .map(|id| id.and_then(|id| crate::hub::keys::check_id(id.trim()).map(str::to_string)))
        .transpose();
    let id = match id {
        Ok(id) => id,
        Err(e) => return (400, error("invalid_message", &e)),
    };
    let signal = match crate::hub::inbound::parse(&value, unix_now() as i64) {
        Ok(signal) => signal,
        Err(e) => return (400, error("invalid_signal", &e)),
    };
    let submitted = match shared.hub.submit(&signal, &claims.sub, id.as_deref()) {
        Ok(submitted) => submitted,
        Err(e) => return (503, error("publish_failed", &e.to_string())),
    };
    let id = submitted.id.clone();
    // Answered before the connection's deadline, pending if the stream is slow to store it.
    let within = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .saturating_sub(ANSWER_MARGIN)
        .min(crate::hub::CONFIRM_WITHIN);
    match shared.hub.confirm(submitted, within).await {
        Ok((seq, listeners)) => {
            tracing::info!(%peer, sub = %claims.sub, symbol = %signal.symbol, side = signal.side.as_str(), seq, listeners, "signal published over HTTP");
            (
                200,
                json!({"type": "publish_ack", "seq": seq, "id": id, "timestamp": unix_now()}),
            )
        }
        Err(e @ PublishError::Pending { .. }) => {
            tracing::warn!(%peer, sub = %claims.sub, %id, error = %e, "publish over HTTP pending");
            (
                503,
                json!({"type": "publish_pending", "id": id, "message": e.to_string(), "timestamp": unix_now()}),
            )
        }
        Err(e) => (503, error("publish_failed", &e.to_string())),
    }
}
