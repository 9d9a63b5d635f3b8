//! TLS plus the WebSocket upgrade, with the bearer token checked before any upgrade.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use super::authorize::{Verdict, authorize};
use super::head::Refusal;
use super::prefixed::Prefixed;
use super::stats::Outcome;
use super::tls_stream::TlsStream;
use super::{Admission, Shared};
use crate::auth::Claims;

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
    // tungstenite's callback signature: its error type is the HTTP response itself.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let decided = match admission {
            Admission::OverLimit(_) => Verdict::OverLimit,
            _ => authorize(request, shared),
        };
        let answer = decided.answer(response);
        verdict = Some(decided);
        answer
    };
    let result = tokio_tungstenite::accept_hdr_async_with_config(
        tls,
        callback,
        Some(super::wire::ws_config(&shared.settings)),
    )
    .await;
    let stats = &shared.stats;
    match (result, verdict) {
        (
            Ok(ws),
            Some(Verdict::Accepted {
                claims, last_seq, ..
            }),
        ) => {
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
