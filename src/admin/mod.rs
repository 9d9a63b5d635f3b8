//! The admin listener: plain HTTP, loopback by default, apart from the client port.
//! `GET /metrics` (Prometheus text format 0.0.4), `GET /healthz` (the process answers) and
//! `GET /readyz` (the upstream is connected and subscribed, and the strategies are warm; in
//! cluster mode also the node follows the signal stream, and an edge or a standby producer
//! needs only that).
//!
//! The page `/metrics` serves is written in `metrics.rs`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod metrics;

pub use metrics::render;

use crate::market::SourceStats;
use crate::server::Shared;
use crate::server::http::{self, Body};
use crate::strategy::Warmup;

/// What the admin listener reports on: the server, and the pipeline that feeds it.
#[derive(Clone)]
pub struct Observed {
    pub server: Arc<Shared>,
    /// The market source's connections, gaps and events.
    pub source: Arc<SourceStats>,
    /// The strategies' warm-up.
    pub warmup: Arc<Warmup>,
    /// The node's link to the cluster, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::Status>>,
}

impl Observed {
    /// The server alone, with no pipeline reporting yet: never ready.
    pub fn new(server: Arc<Shared>) -> Self {
        Observed {
            server,
            source: Default::default(),
            warmup: Default::default(),
            cluster: None,
        }
    }

    /// Whether sigcast should get traffic, and a line per check saying why (not).
    pub fn readiness(&self) -> (bool, String) {
        let source = self.source.snapshot();
        let upstream = self.source.all_connected();
        let instances = self.warmup.instances.load(Ordering::Relaxed);
        let cold = self.warmup.cold.load(Ordering::Relaxed);
        let warm = self.warmup.warm();
        let word = |ok| if ok { "ok" } else { "not ready" };
        let text = format!(
            "upstream: {} ({} of {} connections up and subscribed)\nstrategies: {} ({} of {instances} warm)\n",
            word(upstream),
            source.connected.max(0),
            source.planned.max(0),
            word(warm),
            instances.saturating_sub(cold),
        );
        let Some(cluster) = &self.cluster else {
            return (upstream && warm, text);
        };
        let stream = cluster.ready();
        let leader = cluster.leader.load(Ordering::Relaxed);
        let text = format!(
            "{}cluster: {} (NATS {}, signal stream {}, delivered up to seq {}){}\n",
            if leader { text.as_str() } else { "" },
            word(stream),
            if cluster.connected.load(Ordering::Relaxed) {
                "connected"
            } else {
                "disconnected"
            },
            if cluster.caught_up.load(Ordering::Relaxed) {
                "caught up"
            } else {
                "catching up"
            },
            cluster.delivered.load(Ordering::Relaxed),
            if leader {
                "; leading the producers"
            } else {
                ""
            },
        );
        // A node that runs no strategies (an edge, a standby producer) serves the stream.
        (stream && (!leader || (upstream && warm)), text)
    }
}

/// How long a scrape may take, its request and its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read (431 beyond).
const MAX_REQUEST: usize = 8 * 1024;
/// Scrapes served at once; more wait in the kernel's backlog.
const MAX_CONCURRENT: usize = 16;

/// Serves the admin endpoints until `shutdown`.
pub async fn run(listener: TcpListener, observed: Observed, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let observed = observed.clone();
        tasks.spawn(async move {
            if let Err(e) = serve(tcp, &observed).await {
                tracing::debug!(%peer, error = %e, "admin request failed");
            }
            drop(permit);
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
}

/// Reads the one request of a connection (through the client port's HTTP layer) and answers
/// it, within [`REQUEST_TIMEOUT`].
async fn serve(tcp: TcpStream, observed: &Observed) -> Result<(), hyper::Error> {
    let service =
        service_fn(|request| std::future::ready(Ok::<_, Infallible>(answer(&request, observed))));
    let connection = http::server(MAX_REQUEST).serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        _ = tokio::time::sleep(REQUEST_TIMEOUT) => {
            // Ends the connection once any answer under way is written.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// The answer to one admin request.
fn answer<B>(request: &Request<B>, observed: &Observed) -> Response<Body> {
    if let Some(too_long) = http::target_too_long(request) {
        return too_long;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    let plain = |status, text: String| http::answer(status, "text/plain", Bytes::from(text));
    match request.uri().path() {
        "/metrics" => http::answer(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(render(observed)),
        ),
        "/healthz" => plain(StatusCode::OK, "ok\n".into()),
        "/readyz" => match observed.readiness() {
            (true, text) => plain(StatusCode::OK, text),
            (false, text) => plain(StatusCode::SERVICE_UNAVAILABLE, text),
        },
        _ => http::text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz",
        ),
    }
}
