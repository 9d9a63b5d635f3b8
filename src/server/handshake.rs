//! TLS plus the WebSocket upgrade, with the bearer token checked before any upgrade.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};

use super::head::Refusal;
use super::prefixed::Prefixed;
use super::stats::Outcome;
use super::tls_stream::TlsStream;
use super::{Admission, Shared};
use crate::auth::{AuthError, Claims, Identity, bearer_token, protocol_offer};

/// A client's WebSocket after a successful handshake (the request head the server peeked at
/// is replayed to the upgrade from the front of the stream).
pub type ClientWs = WebSocketStream<Prefixed<TlsStream>>;

/// The TLS stream under a client's WebSocket, for what bypasses tungstenite: hub frames
/// written straight to TLS, the backlog check, and the TLS goodbye.
pub trait ClientTls {
    fn tls(&self) -> &TlsStream;
    fn tls_mut(&mut self) -> &mut TlsStream;
}

impl ClientTls for ClientWs {
    fn tls(&self) -> &TlsStream {
        self.get_ref().get_ref()
    }

    fn tls_mut(&mut self) -> &mut TlsStream {
        self.get_mut().get_mut()
    }
}

/// The header a reconnecting client names its last seen `seq` in.
pub const LAST_SEQ_HEADER: &str = "x-sigcast-last-seq";

/// An accepted client: its socket, its token's claims, and the `seq` to resume after.
pub struct Accepted {
    pub ws: ClientWs,
    pub claims: Claims,
    pub last_seq: Option<u64>,
}

/// Runs TLS and the upgrade within `server.handshake_timeout`. Returns the accepted client,
/// or `None` when the client was refused (it has then had its HTTP answer) or the handshake
/// failed.
pub async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    admission: &Admission,
) -> Option<Accepted> {
    let budget = shared.settings.handshake_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    match tokio::time::timeout_at(deadline, upgrade(tcp, peer, shared, admission, deadline)).await {
        Ok(result) => result,
        Err(_) => {
            tracing::info!(%peer, timeout = ?budget, "handshake timed out");
            shared.stats.handshake(Outcome::TimedOut);
            None
        }
    }
}

/// What the upgrade callback decided, kept for the log line after the handshake.
enum Verdict {
    Accepted(Claims, Option<u64>),
    /// Refused, with who the token was issued to when its signature is good.
    Refused(AuthError, Option<Identity>),
    BadRequest(String),
    /// A browser session from an origin `server.allowed_origins` does not allow: HTTP 403.
    BadOrigin(String),
    OverLimit,
}

async fn upgrade(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    admission: &Admission,
    deadline: tokio::time::Instant,
) -> Option<Accepted> {
    let mut tls = match super::tls_stream::accept(tcp, shared.tls.clone()).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            shared.stats.handshake(Outcome::Failed);
            return None;
        }
    };
    let head = match super::head::read(&mut tls).await {
        Ok(head) => head,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "no request");
            shared.stats.handshake(Outcome::Failed);
            return None;
        }
    };
    if let Admission::OverIpLimit(_) = admission {
        let limit = shared.settings.max_connections_per_ip;
        Refusal::too_many_from_address(limit).send(&mut tls).await;
        shared.stats.handshake(Outcome::OverIpLimit);
        tracing::warn!(%peer, limit, "refused: 429, too many connections from this address");
        return None;
    }
    if head.starts_with(b"POST ") {
        super::http::serve(tls, head, peer, shared, deadline).await;
        return None;
    }
    if super::dashboard::is_page_request(&head) {
        super::dashboard::serve(tls, &head, shared.settings.dashboard).await;
        return None;
    }
    if let Err(refusal) = super::head::check_upgrade(&head) {
        refusal.send(&mut tls).await;
        shared.stats.handshake(Outcome::BadRequest);
        tracing::info!(%peer, status = refusal.status, reason = %refusal.reason, "handshake refused");
        return None;
    }
    let tls = Prefixed::new(head, tls);
    let mut verdict = None;
    // The callback's signature is tungstenite's; its error type is the HTTP response itself.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        if matches!(admission, Admission::OverLimit(_)) {
            verdict = Some(Verdict::OverLimit);
            return Err(over_limit());
        }
        let headers = request.headers();
        let authorization = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        let protocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .map(|v| v.as_bytes());
        // A browser (the dashboard) cannot set Authorization: it offers the token as a
        // subprotocol and gets the protocol back; its Origin must be allowed. Authorization
        // wins when both are given.
        let offer = protocol_offer(protocols);
        let mut response = response;
        if let Some(answer) = offer.answer {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                header::HeaderValue::from_static(answer),
            );
        }
        let token = match (headers.contains_key(header::AUTHORIZATION), offer.token) {
            (false, Some(from_protocol)) => {
                if let Err(reason) = origin_allowed(request, &shared.settings.allowed_origins) {
                    let refusal = plain(StatusCode::FORBIDDEN, &reason, None);
                    verdict = Some(Verdict::BadOrigin(reason));
                    return Err(refusal);
                }
                from_protocol
            }
            _ => bearer_token(authorization),
        };
        let mut identity = None;
        let verified = token
            .and_then(|token| {
                let keys = shared.keys.current();
                keys.verify(token).inspect_err(|e| {
                    identity = keys.identify(token, e);
                })
            })
            .and_then(|claims| {
                if shared.revoked.borrow().covers(&claims) {
                    identity = Some(Identity {
                        sub: claims.sub,
                        jti: claims.jti,
                    });
                    Err(AuthError::Invalid(crate::auth::REVOKED.into()))
                } else {
                    Ok(claims)
                }
            });
        match verified {
            Ok(claims) => match last_seq(request) {
                Ok(last) => {
                    verdict = Some(Verdict::Accepted(claims, last));
                    Ok(response)
                }
                Err(reason) => {
                    let refusal = plain(StatusCode::BAD_REQUEST, &reason, None);
                    verdict = Some(Verdict::BadRequest(reason));
                    Err(refusal)
                }
            },
            Err(e) => {
                let refusal = unauthorized(&e);
                verdict = Some(Verdict::Refused(e, identity));
                Err(refusal)
            }
        }
    };
    let result = tokio_tungstenite::accept_hdr_async_with_config(
        tls,
        callback,
        Some(super::wire::ws_config(&shared.settings)),
    )
    .await;
    let stats = &shared.stats;
    match (result, verdict) {
        (Ok(ws), Some(Verdict::Accepted(claims, last_seq))) => {
            stats.handshake(Outcome::Ok);
            Some(Accepted {
                ws,
                claims,
                last_seq,
            })
        }
        (_, Some(Verdict::BadRequest(reason))) => {
            stats.handshake(Outcome::BadRequest);
            tracing::info!(%peer, %reason, "handshake refused: 400");
            None
        }
        (_, Some(Verdict::Refused(reason, who))) => {
            stats.handshake(Outcome::of(&reason));
            // Never the token: the reason, who asked, and whom it was issued to when its
            // signature is good.
            let sub = who.as_ref().map(|w| w.sub.as_str());
            let jti = who.as_ref().map(|w| w.jti.as_str());
            tracing::info!(%peer, %reason, sub, jti, "handshake refused: 401");
            None
        }
        (_, Some(Verdict::BadOrigin(reason))) => {
            stats.handshake(Outcome::BadOrigin);
            tracing::info!(%peer, %reason, "handshake refused: 403");
            None
        }
        (_, Some(Verdict::OverLimit)) => {
            stats.handshake(Outcome::OverLimit);
            tracing::warn!(%peer, "handshake refused: 503, connection limit reached");
            None
        }
        (Err(e), _) => {
            stats.handshake(Outcome::Failed);
            tracing::debug!(%peer, error = %e, "WebSocket upgrade failed");
            None
        }
        (Ok(_), None) => {
            stats.handshake(Outcome::Failed);
            None
        }
    }
}

/// The `X-Sigcast-Last-Seq` header, when given.
fn last_seq(request: &Request) -> Result<Option<u64>, String> {
    let Some(value) = request.headers().get(LAST_SEQ_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| "X-Sigcast-Last-Seq: expected the last seq received, a whole number".into())
}

/// 401 with the `WWW-Authenticate` challenge of RFC 6750 and a short plain-text reason.
fn unauthorized(error: &AuthError) -> ErrorResponse {
    let challenge = match error {
        AuthError::Missing => "Bearer realm=\"sigcast\"".to_string(),
        AuthError::Invalid(reason) => format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            reason.replace(['"', '\\'], "'")
        ),
    };
    plain(
        StatusCode::UNAUTHORIZED,
        &error.to_string(),
        Some(challenge),
    )
}

/// Whether a browser session's `Origin` may connect: listed in `server.allowed_origins`
/// (`*`: any), or, while the list is empty, the page's own origin (`https://` and the same
/// host and port as the request's `Host`), i.e. the dashboard sigcast serves itself.
fn origin_allowed(request: &Request, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Err("a browser session needs an Origin header".into());
    };
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    if allowed.is_empty() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if origin
            .strip_prefix("https://")
            .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host))
        {
            return Ok(());
        }
    }
    Err(format!(
        "origin {origin:?} is not allowed (server.allowed_origins)"
    ))
}

fn over_limit() -> ErrorResponse {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "server at connection limit, retry later",
        None,
    )
}

fn plain(status: StatusCode, reason: &str, challenge: Option<String>) -> ErrorResponse {
    let body = format!("{reason}\n");
    let mut builder = tokio_tungstenite::tungstenite::http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONNECTION, "close");
    if let Some(challenge) = challenge {
        builder = builder.header(header::WWW_AUTHENTICATE, challenge);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        builder = builder.header(header::RETRY_AFTER, "1");
    }
    builder.body(Some(body)).unwrap_or_else(|_| {
        let mut fallback = ErrorResponse::new(None);
        *fallback.status_mut() = status;
        fallback
    })
}
