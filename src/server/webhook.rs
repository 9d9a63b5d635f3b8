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

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::authorize::verified;
use super::http::{self, Body};
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

/// Answers one `POST` (the client port's only other method is `GET`): JSON, with
/// `Retry-After` on a 503.
pub async fn serve(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Response<Body> {
    let (status, body) = answer(request, peer, shared, deadline).await;
    let response = http::json(status, &body);
    match status {
        StatusCode::SERVICE_UNAVAILABLE => http::retry_after(response, RETRY_AFTER),
        _ => response,
    }
}

fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "error_code": code, "error_message": message, "timestamp": unix_now()})
}

/// Every value of the header `name`, as given.
fn header_values<'a>(headers: &'a HeaderMap, name: &'static str) -> impl Iterator<Item = &'a [u8]> {
    headers.get_all(name).iter().map(|v| v.as_bytes())
}

async fn answer(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> (StatusCode, Value) {
    if request.uri().path() != PUBLISH_PATH {
        return (
            StatusCode::NOT_FOUND,
            error("invalid_message", "POST signals to /v1/signals"),
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return too_large();
    }
    let (head, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return too_large(),
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                error("invalid_message", "the body ended early"),
            );
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                error("invalid_signal", &format!("the body is not JSON: {e}")),
            );
        }
    };
    let header = |name: &'static str| header_values(&head.headers, name);
    let from_body = value.get("token").and_then(Value::as_str);
    let claims = match bearer_token(header("authorization")) {
        Ok(token) => verified(token, shared),
        Err(AuthError::Missing) => match from_body {
            Some(token) => verified(token, shared),
            None => Err(AuthError::Missing),
        },
        Err(e) => Err(e),
    };
    let claims = match claims {
        Ok(c) => c,
        Err(reason) => {
            tracing::info!(%peer, %reason, "publish refused: 401");
            return (
                StatusCode::UNAUTHORIZED,
                error("unauthorized", &reason.to_string()),
            );
        }
    };
    if !claims.is_publisher() {
        return (
            StatusCode::FORBIDDEN,
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
        Err(e) => return (StatusCode::BAD_REQUEST, error("invalid_message", &e)),
    };
    let signal = match crate::hub::inbound::parse(&value, unix_now() as i64) {
        Ok(signal) => signal,
        Err(e) => return (StatusCode::BAD_REQUEST, error("invalid_signal", &e)),
    };
    let submitted = match shared.hub.submit(&signal, &claims.sub, id.as_deref()) {
        Ok(submitted) => submitted,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                error("publish_failed", &e.to_string()),
            );
        }
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
                StatusCode::OK,
                json!({"type": "publish_ack", "seq": seq, "id": id, "timestamp": unix_now()}),
            )
        }
        Err(e @ PublishError::Pending { .. }) => {
            tracing::warn!(%peer, sub = %claims.sub, %id, error = %e, "publish over HTTP pending");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"type": "publish_pending", "id": id, "message": e.to_string(), "timestamp": unix_now()}),
            )
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            error("publish_failed", &e.to_string()),
        ),
    }
}

fn too_large() -> (StatusCode, Value) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        error("invalid_message", "the body is over 16 KiB"),
    )
}
