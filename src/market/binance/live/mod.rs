//! The live Binance upstream: subscriptions that follow from the strategies, sharded across
//! combined-stream connections, kept alive and gap-free.
//!
//! Each shard (see [`shard`]) owns its streams' sequencing, so every trade reaches the
//! strategies once, in order, across reconnects and rotations; what cannot be recovered
//! arrives as an explicit [`Gap`](crate::market::Gap) event.

pub mod budget;
pub mod recorder;
pub mod rest;
pub mod sequence;
pub mod shard;
pub mod transport;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BinanceSettings;
use crate::market::binance::StreamKind;
use crate::market::{Market, MarketEvent, SourceStats};
use shard::{Change, Shard, ShardSpec};

/// The endpoint base a stream belongs on: spot has one; futures split since 2026 into
/// `/public` (bookTicker, depth) and `/market` (the rest).
fn base_for<'a>(
    market: Market,
    stream: &str,
    settings: &'a BinanceSettings,
) -> (&'static str, &'a str) {
    match market {
        Market::Spot => ("spot", &settings.spot_ws),
        Market::Futures => match StreamKind::of(stream) {
            Some(StreamKind::BookTicker | StreamKind::Depth) => {
                ("futures-public", &settings.futures_ws_public)
            }
            _ => ("futures-market", &settings.futures_ws_market),
        },
    }
}

/// Splits `streams` into shards of at most `streams_per_connection`, per market and endpoint.
pub fn plan(streams: &[(Market, String)], settings: &BinanceSettings) -> Vec<ShardSpec> {
    let mut groups: Vec<(&'static str, Market, String, Vec<String>)> = Vec::new();
    for (market, stream) in streams {
        let (label, base) = base_for(*market, stream, settings);
        match groups.iter_mut().find(|g| g.0 == label) {
            Some(g) => g.3.push(stream.clone()),
            None => groups.push((label, *market, base.to_string(), vec![stream.clone()])),
        }
    }
    let mut shards = Vec::new();
    for (label, market, base, streams) in groups {
        for (i, chunk) in streams.chunks(settings.streams_per_connection).enumerate() {
            shards.push(ShardSpec {
                name: format!("{label}#{i}"),
                market,
                url: format!("{}/stream", base.trim_end_matches('/')),
                streams: chunk.to_vec(),
            });
        }
    }
    shards
}

/// Where an earlier run of sigcast left an aggTrade stream: the last trade its strategies
/// took. The upstream fetches the trades after it before live ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    pub market: Market,
    pub symbol: String,
    /// The aggregate trade id (`a`).
    pub agg_id: u64,
    /// Its last single-trade id (`l`), which the next one's `f` follows.
    pub last_trade_id: u64,
}

/// A running shard, as the upstream sees it.
struct ShardHandle {
    /// Endpoint group: `spot`, `futures-market`, `futures-public`.
    label: &'static str,
    streams: Vec<String>,
    changes: mpsc::UnboundedSender<Change>,
}

/// The running upstream: its shards, and the REST client history comes from.
pub struct Upstream {
    settings: Arc<BinanceSettings>,
    rest: rest::Rest,
    shards: Vec<ShardHandle>,
    /// Shards started so far per endpoint group, for their names.
    started: Vec<(&'static str, usize)>,
    out: mpsc::Sender<MarketEvent>,
    /// Counters every shard adds to: connections, gaps, malformed messages.
    stats: Arc<SourceStats>,
    /// Positions from an earlier run not yet handed to a shard (at most once each).
    resume: Vec<ResumePoint>,
    stop: CancellationToken,
}

impl Upstream {
    /// The REST client (klines for strategy warm-up).
    pub fn rest(&self) -> &rest::Rest {
        &self.rest
    }

    /// Every stream subscribed, sorted.
    pub fn streams(&self) -> Vec<String> {
        let mut all: Vec<String> = self.shards.iter().flat_map(|s| s.streams.clone()).collect();
        all.sort();
        all
    }

    fn start_shard(&mut self, spec: ShardSpec, label: &'static str) {
        let (changes, receiver) = mpsc::unbounded_channel();
        self.shards.push(ShardHandle {
            label,
            streams: spec.streams.clone(),
            changes,
        });
        match self.started.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => self.started.push((label, 1)),
        }
        let (points, rest): (Vec<ResumePoint>, Vec<ResumePoint>) =
            std::mem::take(&mut self.resume).into_iter().partition(|p| {
                p.market == spec.market
                    && spec.streams.iter().any(|s| {
                        StreamKind::of(s) == Some(StreamKind::AggTrade)
                            && shard::symbol_of(s) == p.symbol
                    })
            });
        self.resume = rest;
        let shard = Shard::new(
            spec,
            self.settings.clone(),
            self.rest.clone(),
            self.out.clone(),
            receiver,
            self.stats.clone(),
        )
        .resume(&points);
        tokio::spawn(shard.run(self.stop.clone()));
    }

    /// Subscribes to exactly `wanted`, changing only the difference: dropped streams are
    /// unsubscribed on their shard, new ones go to a shard of their endpoint with room, or to
    /// a new shard.
    pub fn update(&mut self, wanted: &[(Market, String)]) {
        let per_connection = self.settings.streams_per_connection;
        for shard in &mut self.shards {
            let market = if shard.label == "spot" {
                Market::Spot
            } else {
                Market::Futures
            };
            let dropped: Vec<String> = shard
                .streams
                .iter()
                .filter(|s| !wanted.iter().any(|(m, w)| *m == market && w == *s))
                .cloned()
                .collect();
            if !dropped.is_empty() {
                shard.streams.retain(|s| !dropped.contains(s));
                let _ = shard.changes.send(Change::Unsubscribe(dropped));
            }
        }
        let mut fresh: Vec<(Market, String)> = Vec::new();
        for (market, stream) in wanted {
            let (label, _) = base_for(*market, stream, &self.settings);
            if self
                .shards
                .iter()
                .any(|s| s.label == label && s.streams.contains(stream))
            {
                continue;
            }
            match self
                .shards
                .iter_mut()
                .find(|s| s.label == label && s.streams.len() < per_connection)
            {
                Some(shard) => {
                    shard.streams.push(stream.clone());
                    let _ = shard.changes.send(Change::Subscribe(vec![stream.clone()]));
                }
                None => fresh.push((*market, stream.clone())),
            }
        }
        for mut spec in plan(&fresh, &self.settings) {
            let (label, _) = base_for(spec.market, &spec.streams[0], &self.settings);
            let n = self
                .started
                .iter()
                .find(|(l, _)| *l == label)
                .map_or(0, |(_, n)| *n);
            spec.name = format!("{label}#{n}");
            self.start_shard(spec, label);
        }
    }
}

/// Starts one task per shard; their events arrive, per stream in order, on the receiver.
/// Streams with a point in `resume` continue after it (see [`ResumePoint`]).
pub fn spawn(
    settings: BinanceSettings,
    streams: &[(Market, String)],
    resume: Vec<ResumePoint>,
    stats: Arc<SourceStats>,
    stop: CancellationToken,
) -> Result<(Upstream, mpsc::Receiver<MarketEvent>), String> {
    let proxy = (!settings.proxy.is_empty()).then_some(settings.proxy.as_str());
    let rest = rest::Rest::new(&settings.spot_rest, &settings.futures_rest, proxy)
        .map_err(|e| format!("binance REST client: {e}"))?;
    let (tx, rx) = mpsc::channel(8192);
    let mut upstream = Upstream {
        settings: Arc::new(settings),
        rest,
        shards: Vec::new(),
        started: Vec::new(),
        out: tx,
        stats,
        resume,
        stop,
    };
    upstream.update(streams);
    Ok((upstream, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_by_market_endpoint_and_size() {
        let settings = BinanceSettings {
            streams_per_connection: 2,
            ..BinanceSettings::default()
        };
        let streams: Vec<(Market, String)> = [
            (Market::Spot, "a@aggTrade"),
            (Market::Spot, "b@aggTrade"),
            (Market::Spot, "c@aggTrade"),
            (Market::Futures, "a@aggTrade"),
            (Market::Futures, "a@bookTicker"),
        ]
        .into_iter()
        .map(|(m, s)| (m, s.to_string()))
        .collect();
        let shards = plan(&streams, &settings);
        let view: Vec<(&str, &str, usize)> = shards
            .iter()
            .map(|s| (s.name.as_str(), s.url.as_str(), s.streams.len()))
            .collect();
        assert_eq!(
            view,
            vec![
                ("spot#0", "wss://stream.binance.com:9443/stream", 2),
                ("spot#1", "wss://stream.binance.com:9443/stream", 1),
                (
                    "futures-market#0",
                    "wss://fstream.binance.com/market/stream",
                    1
                ),
                (
                    "futures-public#0",
                    "wss://fstream.binance.com/public/stream",
                    1
                ),
            ]
        );
    }
}
