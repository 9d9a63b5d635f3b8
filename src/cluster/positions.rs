//! The strategies' trade positions in a key-value bucket (producers): the leader writes where
//! its strategies stand in each aggTrade stream, and the producer that takes over continues
//! from there, fetching the trades in between, so the signals of candles that closed during
//! the takeover are not lost (and those the old leader had sent are stored once, by id).
//!
//! Keys: `pos.<market>.<SYMBOL>`; values: [`crate::strategy::cursor::to_json`].

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Cluster, ClusterError};
use crate::strategy::cursor::{self, Cursor, Position};

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

/// A cursor whose positions go to the bucket (the latest of each symbol per batch).
pub fn cursor(store: kv::Store) -> Cursor {
    let (rows, mut batches) = mpsc::unbounded_channel::<Vec<Position>>();
    let task = tokio::spawn(async move {
        while let Some(first) = batches.recv().await {
            let mut latest: HashMap<String, Position> = HashMap::new();
            for p in first
                .into_iter()
                .chain(std::iter::from_fn(|| batches.try_recv().ok()).flatten())
            {
                latest.insert(key(&p), p);
            }
            for (key, p) in latest {
                if let Err(e) = store.put(key, cursor::to_json(&p).into()).await {
                    tracing::warn!(error = %e, symbol = %p.symbol, "trade position not saved in the cluster");
                }
            }
        }
    });
    Cursor::with_task(rows, task)
}
