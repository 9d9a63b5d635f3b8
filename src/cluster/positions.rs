//! The strategies' trade positions in a key-value bucket (producers): the leader writes where
//! its strategies stand in each aggTrade stream, and the producer that takes over continues
//! from there, fetching the trades in between, so the signals of candles that closed during
//! the takeover are not lost (and those the old leader had sent are stored once, by id).
//!
//! Keys: `pos.<market>.<SYMBOL>`; values: [`crate::strategy::cursor::to_json`].

use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;

use super::{Cluster, ClusterError};
use crate::strategy::cursor::{self, Cursor, Position, PositionStore};

/// Opens (or creates) the positions bucket.
pub async fn bucket(cluster: &Cluster) -> Result<kv::Store, ClusterError> {
    super::bucket(
        cluster,
        &cluster.settings.positions_bucket,
        "the strategies' trade positions",
        Duration::ZERO,
    )
    .await
}

fn key(p: &Position) -> String {
    format!("pos.{}.{}", p.market.as_str(), p.symbol)
}

/// The positions the last leader left.
pub async fn load(store: &kv::Store) -> Vec<Position> {
    let Ok(keys) = store.keys().await else {
        return Vec::new();
    };
    let keys: Vec<String> = keys.filter_map(|k| async move { k.ok() }).collect().await;
    let mut positions = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with("pos.")) {
        if let Ok(Some(value)) = store.get(key.clone()).await
            && let Some(p) = cursor::from_json(&value)
        {
            positions.push(p);
        }
    }
    positions
}

/// The bucket as a [`PositionStore`]: the cursor's writer thread waits on the runtime for
/// each batch's writes.
struct BucketPositions {
    store: kv::Store,
    runtime: tokio::runtime::Handle,
}

impl PositionStore for BucketPositions {
    fn save(&mut self, latest: Vec<Position>) -> Result<(), String> {
        let store = &self.store;
        self.runtime.block_on(async {
            let mut failed = None;
            for p in latest {
                if let Err(e) = store.put(key(&p), cursor::to_json(&p).into()).await {
                    failed = Some(format!("{}: {e}", p.symbol));
                }
            }
            failed.map_or(Ok(()), Err)
        })
    }
}

/// A cursor whose positions go to the bucket. Called on the runtime.
pub fn cursor(store: kv::Store) -> Result<Cursor, std::io::Error> {
    let runtime = tokio::runtime::Handle::current();
    Cursor::new(BucketPositions { store, runtime })
}
