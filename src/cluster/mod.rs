//! Cluster mode: producers and edges sharing one signal stream on NATS JetStream.
//!
//! - [`Cluster::connect`]: the NATS connection, JetStream checked, the stream created or
//!   checked against the configuration;
//! - [`outbox`]: signals published on this node go to the stream, each with a `Nats-Msg-Id`:
//!   the leading producer numbers, seals and appends them ([`chain`]), the other nodes
//!   forward theirs to it ([`forward`]);
//! - [`keys`]: each producer's journal key, its public half announced to every node;
//! - [`inlet`]: the stream comes back into this node's hub, in `seq` order, from where it
//!   stopped (every node, so every client sees the same `seq`);
//! - [`history`]: resumes read the stream by sequence, so a node keeps no state of its own;
//! - [`lease`]: producers elect the one that runs the upstream and the strategies;
//! - [`marks`]: the leader's market prices, which mark the other nodes' track records, and
//!   its checkpoints, kept in a stream of their own for rebuilds;
//! - [`positions`]: where the leader's strategies stand in each trade stream, for the next;
//! - [`tokens`]: the token registry and revocations in a key-value bucket every node watches.

pub mod chain;
pub mod forward;
pub mod history;
pub mod inlet;
pub mod keys;
pub mod lease;
pub mod marks;
pub mod outbox;
pub mod positions;
pub mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};

use crate::config::ClusterSettings;
use crate::hub::{Frame, decode, encode_seq};
use crate::strategy::{Side, Signal};

/// How long connecting and each JetStream request at start may take.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Why cluster mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.nats: cannot reach NATS at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "cluster.nats: JetStream is not enabled on the NATS server at {url} (start it with -js, or `jetstream {{}}` in its configuration): {reason}"
    )]
    NoJetStream { url: String, reason: String },
    #[error(
        "cluster.stream: the stream {name} exists with subjects {found:?}; sigcast publishes on {wanted:?}. Delete it (nats stream rm {name}) or set another cluster.stream"
    )]
    Conflict {
        name: String,
        found: Vec<String>,
        wanted: Vec<String>,
    },
    #[error("cluster.stream: {name}: {reason}")]
    Stream { name: String, reason: String },
    #[error("cluster: {what}: {reason}")]
    Bucket { what: String, reason: String },
}

/// What the node knows about its link to the cluster, for readiness and metrics.
#[derive(Debug, Default)]
pub struct Status {
    /// The NATS connection is up.
    pub connected: AtomicBool,
    /// The inlet has delivered everything the stream held when it last looked.
    pub caught_up: AtomicBool,
    /// The last `seq` the inlet delivered.
    pub delivered: AtomicU64,
    /// Producers: this node holds the leader lease.
    pub leader: AtomicBool,
    /// Signals the stream confirmed from this node, and those it already held (duplicates).
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
}

impl Status {
    /// Connected and caught up: the node serves what every other node serves.
    pub fn ready(&self) -> bool {
        self.connected.load(Ordering::Relaxed) && self.caught_up.load(Ordering::Relaxed)
    }
}

/// A connected cluster node.
#[derive(Clone)]
pub struct Cluster {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub settings: Arc<ClusterSettings>,
    pub status: Arc<Status>,
}

impl Cluster {
    /// Connects to NATS, checks JetStream, and creates the signal stream (or checks the one
    /// there), with retention from `max_age` and `max_messages`. Fails with a clear error when
    /// NATS cannot be reached, JetStream is off, or the stream conflicts.
    pub async fn connect(
        settings: &ClusterSettings,
        max_age: Duration,
        max_messages: u64,
    ) -> Result<Cluster, ClusterError> {
        let cluster = Self::join(settings).await?;
        let max_messages = i64::try_from(max_messages).unwrap_or(i64::MAX);
        cluster
            .ensure_stream(stream::Config {
                name: settings.stream.clone(),
                subjects: cluster.subjects(),
                max_age,
                max_messages,
                duplicate_window: settings.duplicate_window,
                num_replicas: settings.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        cluster
            .ensure_stream(marks::checkpoint_stream(settings, max_age, max_messages))
            .await?;
        Ok(cluster)
    }

    /// Connects to NATS and checks JetStream, touching no stream (the `token` commands).
    pub async fn join(settings: &ClusterSettings) -> Result<Cluster, ClusterError> {
        let url = settings.nats.clone();
        let status = Arc::new(Status::default());
        let events = status.clone();
        let options = async_nats::ConnectOptions::new()
            .name("sigcast")
            .connection_timeout(START_TIMEOUT)
            .request_timeout(Some(START_TIMEOUT))
            .event_callback(move |event| {
                let status = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            status.connected.store(true, Ordering::Relaxed);
                            tracing::info!("NATS connected");
                        }
                        async_nats::Event::Disconnected => {
                            status.connected.store(false, Ordering::Relaxed);
                            status.caught_up.store(false, Ordering::Relaxed);
                            tracing::warn!("NATS disconnected; reconnecting");
                        }
                        other => tracing::info!(event = %other, "NATS"),
                    }
                }
            });
        // Several servers (a NATS cluster): the client picks one and fails over to the others.
        let servers: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let client = options
            .connect(servers)
            .await
            .map_err(|e| ClusterError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        status.connected.store(true, Ordering::Relaxed);
        let js = jetstream::new(client.clone());
        jetstream_enabled(&client)
            .await
            .map_err(|reason| ClusterError::NoJetStream {
                url: url.clone(),
                reason,
            })?;
        Ok(Cluster {
            client,
            js,
            settings: Arc::new(settings.clone()),
            status,
        })
    }

    /// The subjects signals are published on.
    fn subjects(&self) -> Vec<String> {
        vec![format!("{}.>", self.settings.subjects)]
    }

    /// Creates a stream, or checks the existing one's subjects and brings its retention and
    /// duplicate window to `config`.
    async fn ensure_stream(&self, config: stream::Config) -> Result<(), ClusterError> {
        let name = config.name.clone();
        let failed = |reason: String| ClusterError::Stream {
            name: name.clone(),
            reason,
        };
        match self.js.get_stream(&name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| failed(e.to_string()))?;
                if info.config.subjects != config.subjects {
                    return Err(ClusterError::Conflict {
                        name,
                        found: info.config.subjects.clone(),
                        wanted: config.subjects,
                    });
                }
                let current = &info.config;
                if current.max_age != config.max_age
                    || current.max_messages != config.max_messages
                    || current.duplicate_window != config.duplicate_window
                {
                    let mut updated = current.clone();
                    updated.max_age = config.max_age;
                    updated.max_messages = config.max_messages;
                    updated.duplicate_window = config.duplicate_window;
                    self.js
                        .update_stream(updated)
                        .await
                        .map_err(|e| failed(format!("cannot update its retention: {e}")))?;
                    tracing::info!(stream = %name, "stream retention updated to the configuration");
                }
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(ref j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                self.js
                    .create_stream(config)
                    .await
                    .map_err(|e| failed(format!("cannot create it: {e}")))?;
                tracing::info!(stream = %name, "stream created");
                Ok(())
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// The signal stream.
    pub async fn stream(&self) -> Result<stream::Stream, String> {
        self.js
            .get_stream(&self.settings.stream)
            .await
            .map_err(|e| e.to_string())
    }

    /// The stream's messages from `start` on, in order (an ordered consumer, which the
    /// server forgets once it is dropped).
    pub async fn messages_from(
        stream: &stream::Stream,
        start: u64,
    ) -> Result<jetstream::consumer::pull::Ordered, String> {
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        consumer.messages().await.map_err(|e| e.to_string())
    }

    /// The subject of one signal: `<subjects>.<symbol>.<strategy>`, each token limited to
    /// what NATS subjects allow.
    pub fn subject(&self, signal: &Signal) -> String {
        format!(
            "{}.{}.{}",
            self.settings.subjects,
            token(&signal.symbol),
            token(&signal.strategy)
        )
    }
}

/// What `stream` holds now: its first and last sequence and how many messages.
pub async fn state(stream: &mut stream::Stream) -> Result<stream::State, String> {
    Ok(stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .clone())
}

/// Opens a key-value bucket, creating it when missing. Created as the stream the key-value
/// convention names (`KV_<bucket>` on `$KV.<bucket>.>`, one value per key), since the
/// client's own bucket creation asks for account fields older servers do not send.
pub async fn bucket(
    cluster: &Cluster,
    name: &str,
    description: &str,
    max_age: Duration,
) -> Result<jetstream::kv::Store, ClusterError> {
    let failed = |reason: String| ClusterError::Bucket {
        what: format!("bucket {name}"),
        reason,
    };
    if let Ok(store) = cluster.js.get_key_value(name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(format!("sigcast: {description}")),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: cluster.settings.replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    cluster
        .js
        .create_stream(config)
        .await
        .map_err(|e| failed(format!("cannot create it: {e}")))?;
    cluster
        .js
        .get_key_value(name)
        .await
        .map_err(|e| failed(e.to_string()))
}

/// Follows every entry of `store`, its history first, until `stop`, handing each to `apply`;
/// watches again a second after the watch breaks (NATS away). `what` names it in the log.
pub fn watch_bucket(
    store: jetstream::kv::Store,
    what: &'static str,
    stop: tokio_util::sync::CancellationToken,
    mut apply: impl FnMut(&jetstream::kv::Entry) + Send + 'static,
) {
    const RETRY: Duration = Duration::from_secs(1);
    tokio::spawn(async move {
        use futures_util::StreamExt;
        loop {
            match store.watch_with_history(">").await {
                Ok(mut entries) => loop {
                    let entry = tokio::select! {
                        _ = stop.cancelled() => return,
                        e = entries.next() => e,
                    };
                    let Some(Ok(entry)) = entry else {
                        break;
                    };
                    apply(&entry);
                },
                Err(e) => tracing::warn!(error = %e, "cannot watch {what}; trying again"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    });
}

/// Asks JetStream for the account's information (`$JS.API.INFO`), read as plain JSON so
/// any server version answers (the client's typed reply wants fields of 2.10 and later).
async fn jetstream_enabled(client: &async_nats::Client) -> Result<(), String> {
    let reply = tokio::time::timeout(
        START_TIMEOUT,
        client.request("$JS.API.INFO", bytes::Bytes::new()),
    )
    .await
    .map_err(|_| format!("no answer within {START_TIMEOUT:?}"))?
    .map_err(|e| e.to_string())?;
    let body: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| format!("not JSON: {e}"))?;
    match body.get("error") {
        Some(error) => Err(error["description"]
            .as_str()
            .unwrap_or("JetStream refused")
            .to_string()),
        None => Ok(()),
    }
}

/// A subject token: letters, digits, `_` and `-`; anything else becomes `_`.
fn token(text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "_".into() } else { t }
}

/// A signal as stored in the stream: the fields the hub serializes, without `seq` (the
/// stream's sequence is the `seq`, added by each node as it delivers).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    side: String,
    symbol: String,
    price: f64,
    timestamp: i64,
    strategy: String,
    interval: String,
    reason: String,
}

/// A signal as a standby or an edge forwards it to the leader (see `outbox`).
pub fn to_payload(signal: &Signal) -> bytes::Bytes {
    let stored = Stored {
        side: signal.side.as_str().into(),
        symbol: signal.symbol.to_string(),
        price: signal.price,
        timestamp: signal.timestamp,
        strategy: signal.strategy.clone(),
        interval: signal.interval.clone(),
        reason: signal.reason.clone(),
    };
    serde_json::to_vec(&stored).unwrap_or_default().into()
}

/// A stored message read back: its signal, and the frame clients get. The leading producer
/// stores each signal as its sealed frame, numbered with the `seq` the stream gives it
/// (`outbox`), which is then sent as stored; a frame numbered otherwise (published around
/// sigcast) or a signal stored before signing began is serialized afresh, without a proof.
pub fn from_stored(seq: u64, payload: &[u8]) -> Result<(Signal, Frame), String> {
    if let Some((signal, numbered)) = std::str::from_utf8(payload).ok().and_then(decode) {
        let frame = match numbered {
            Some(n) if n == seq => Frame::from(String::from_utf8_lossy(payload).into_owned()),
            _ => encode_seq(&signal, seq),
        };
        return Ok((signal, frame));
    }
    let signal = from_payload(payload)?;
    let frame = encode_seq(&signal, seq);
    Ok((signal, frame))
}

/// A signal from a forwarded publish's payload (and messages stored before signing began).
pub fn from_payload(payload: &[u8]) -> Result<Signal, String> {
    let s: Stored = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let side = match s.side.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(format!("side {other:?} is neither buy nor sell")),
    };
    Ok(Signal {
        side,
        symbol: s.symbol.into(),
        price: s.price,
        timestamp: s.timestamp,
        strategy: s.strategy,
        interval: s.interval,
        reason: s.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_subjects_are_valid() {
        let signal = Signal {
            side: Side::Sell,
            symbol: "BTCUSDT".into(),
            price: 75000.5,
            timestamp: 1720000000,
            strategy: "ma cross.fast*".into(),
            interval: "1m".into(),
            reason: "r".into(),
        };
        assert_eq!(from_payload(&to_payload(&signal)).unwrap(), signal);
        assert_eq!(token(&signal.strategy), "ma_cross_fast_");
        assert_eq!(token(""), "_");
        assert!(from_payload(b"{}").is_err());
        assert!(from_payload(br#"{"side":"hold","symbol":"X","price":1,"timestamp":1,"strategy":"s","interval":"","reason":""}"#).is_err());
    }
}
