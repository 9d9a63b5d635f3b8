//! TLS, then the connection's one HTTP request, read by hyper: a WebSocket upgrade whose
//! bearer token is checked before any upgrade, a publish `POST`, the track record
//! and the signed journal (`GET /v1/performance`, `/v1/journal`, `/v1/journal/key`), or a
//! dashboard page.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::authorize::{Verdict, authorize};
use super::http::{self, Body};
use super::prefixed::Prefixed;
use super::stats::{Outcome, Stats};
use super::tls_stream::TlsStream;
use super::upgrade::Refusal;
use super::{Admission, Shared};
use crate::auth::Claims;

/// A client's WebSocket after a successful handshake (bytes the client sent after its
/// request, before it saw the 101, are replayed from the front of the stream).
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
/// or `None` when the client was refused (it has then had its HTTP answer), was answered
/// something else (a publish, a page), or the handshake failed.
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

/// An upgrade the request's answer accepted, for the session to take over once hyper has
/// written the 101 and handed the stream back.
struct Upgrading {
    claims: Claims,
    last_seq: Option<u64>,
    /// Resolves to the stream once hyper has let go of it.
    stream: OnUpgrade,
}

async fn upgrade(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    admission: &Admission,
    deadline: tokio::time::Instant,
) -> Option<Accepted> {
    let tls = match super::tls_stream::accept(tcp, shared.tls.clone()).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            shared.stats.handshake(Outcome::Failed);
            return None;
        }
    };
    // Locked only to put the upgrade in and to take it out, never across an await.
    let upgrading = Mutex::new(None);
    let asked = AtomicBool::new(false);
    let service = service_fn(|request| {
        asked.store(true, Ordering::Relaxed);
        let answer = route(request, peer, shared, admission, deadline, &upgrading);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let served = http::server(http::MAX_HEAD)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await;
    let upgrading = upgrading.into_inner().ok().flatten();
    let asked = asked.into_inner();
    match served {
        // hyper has answered these itself: 400 for a head it cannot read, 431 over the limits.
        Err(e) if e.is_parse() || e.is_parse_too_large() => {
            shared.stats.handshake(Outcome::BadRequest);
            tracing::info!(%peer, error = %e, "handshake refused: not a readable HTTP request");
            return None;
        }
        Err(e) if !asked || upgrading.is_some() => {
            shared.stats.handshake(Outcome::Failed);
            tracing::debug!(%peer, error = %e, "no request, or the upgrade was not sent");
            return None;
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "the answer was not sent");
            return None;
        }
        Ok(()) if !asked => {
            shared.stats.handshake(Outcome::Failed);
            tracing::debug!(%peer, "no request");
            return None;
        }
        Ok(()) => {}
    }
    let Upgrading {
        claims,
        last_seq,
        stream,
    } = upgrading?;
    let parts = match stream.await.map(|s| s.downcast::<TokioIo<TlsStream>>()) {
        Ok(Ok(parts)) => parts,
        _ => {
            shared.stats.handshake(Outcome::Failed);
            tracing::debug!(%peer, "the upgraded stream was not handed back");
            return None;
        }
    };
    let stream = Prefixed::new(&parts.read_buf, parts.io.into_inner());
    let config = super::wire::ws_config(&shared.settings);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    shared.stats.handshake(Outcome::Ok);
    Some(Accepted {
        ws,
        claims,
        last_seq,
    })
}

/// Answers the connection's one request; an accepted upgrade is left in `upgrading`.
async fn route(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    admission: &Admission,
    deadline: tokio::time::Instant,
    upgrading: &Mutex<Option<Upgrading>>,
) -> Response<Body> {
    if let Admission::OverIpLimit(_) = admission {
        let limit = shared.settings.max_connections_per_ip;
        shared.stats.handshake(Outcome::OverIpLimit);
        tracing::warn!(%peer, limit, "refused: 429, too many connections from this address");
        return Refusal::too_many_from_address(limit).response();
    }
    if let Some(too_long) = http::target_too_long(&request) {
        shared.stats.handshake(Outcome::BadRequest);
        tracing::info!(%peer, "handshake refused: 414, request target too long");
        return too_long;
    }
    if request.method() == Method::POST {
        return super::webhook::serve(request, peer, shared, deadline).await;
    }
    if request.method() == Method::GET {
        match request.uri().path() {
            super::performance::PATH => return super::performance::serve(&request, peer, shared),
            super::journal::KEY_PATH => return super::journal::key(shared),
            super::journal::PATH => return super::journal::serve(&request, peer, shared).await,
            _ => {}
        }
    }
    if super::dashboard::is_page_request(&request) {
        return super::dashboard::page(&request, shared.settings.dashboard);
    }
    if let Err(refusal) = super::upgrade::check(&request) {
        shared.stats.handshake(Outcome::BadRequest);
        tracing::info!(%peer, status = refusal.status.as_u16(), reason = %refusal.reason, "handshake refused");
        return refusal.response();
    }
    let verdict = match admission {
        Admission::OverLimit(_) => Verdict::OverLimit,
        _ => authorize(&request, shared),
    };
    let answer = verdict.answer(super::upgrade::switching(&request));
    match verdict {
        Verdict::Accepted {
            claims, last_seq, ..
        } => {
            let stream = hyper::upgrade::on(&mut request);
            if let Ok(mut slot) = upgrading.lock() {
                *slot = Some(Upgrading {
                    claims,
                    last_seq,
                    stream,
                });
            }
        }
        refused => record_refusal(&refused, peer, &shared.stats),
    }
    answer
}

/// Counts and logs a refused upgrade.
fn record_refusal(verdict: &Verdict, peer: SocketAddr, stats: &Stats) {
    match verdict {
        Verdict::Accepted { .. } => {}
        Verdict::BadRequest(reason) => {
            stats.handshake(Outcome::BadRequest);
            tracing::info!(%peer, %reason, "handshake refused: 400");
        }
        Verdict::Refused(reason, who) => {
            stats.handshake(Outcome::of(reason));
            // Never the token: the reason, who asked, and whom it was issued to when its
            // signature is good.
            let sub = who.as_ref().map(|w| w.sub.as_str());
            let jti = who.as_ref().map(|w| w.jti.as_str());
            tracing::info!(%peer, %reason, sub, jti, "handshake refused: 401");
        }
        Verdict::BadOrigin(reason) => {
            stats.handshake(Outcome::BadOrigin);
            tracing::info!(%peer, %reason, "handshake refused: 403");
        }
        Verdict::OverLimit => {
            stats.handshake(Outcome::OverLimit);
            tracing::warn!(%peer, "handshake refused: 503, connection limit reached");
        }
    }
}
