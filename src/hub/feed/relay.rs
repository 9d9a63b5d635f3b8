//! Turns market events into market-data topic updates for the [`Feed`].
//!
//! Klines, tickers and book tickers the source delivers are relayed as they are. A source
//! without kline streams (a recording of trades, the synthetic market) gets its klines built
//! from its trades, for the intervals someone subscribed to; a built kline starts with the
//! first trade after the first subscription.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Feed, MarketTopic, What, frame};
use crate::market::kline::KlineBuilder;
use crate::market::{Interval, Kline, Market, MarketEvent, MarketEventKind};

/// The pipeline's side of the feed.
pub struct Relay {
    feed: Arc<Feed>,
    /// Whether klines are built from trades when the source sends none.
    derive: bool,
    /// Klines being built, by market and symbol.
    builders: [HashMap<String, Vec<Built>>; 2],
    /// Klines the source sends itself, which are never built.
    native: HashSet<(Market, String, Interval)>,
}

struct Built {
    builder: KlineBuilder,
    /// Which trades feed it, fixed by the first one seen (`true`: aggregate trades), so a
    /// source with both streams does not count a trade twice.
    agg: Option<bool>,
}

impl Relay {
    /// A relay into `feed`; `derive` builds klines from trades (replayed and synthetic data).
    pub fn new(feed: Arc<Feed>, derive: bool) -> Self {
        Self {
            feed,
            derive,
            builders: Default::default(),
            native: HashSet::new(),
        }
    }

    /// Follows the subscribed topics: starts and stops building the klines they ask for.
    pub fn on_wanted(&mut self, topics: &[MarketTopic]) {
        if !self.derive {
            return;
        }
        let mut wanted: HashSet<(Market, &str, Interval)> = HashSet::new();
        for t in topics {
            if let What::Kline(iv) | What::ClosedKline(iv) = t.what {
                if !self.native.contains(&(t.market, t.symbol.clone(), iv)) {
                    wanted.insert((t.market, &t.symbol, iv));
                }
            }
        }
        for (market, by_symbol) in self.builders.iter_mut().enumerate() {
            let market = if market == 0 {
                Market::Spot
            } else {
                Market::Futures
            };
            by_symbol.retain(|symbol, built| {
                built.retain(|b| wanted.contains(&(market, symbol.as_str(), b.builder.interval())));
                !built.is_empty()
            });
        }
        for (market, symbol, iv) in wanted {
            let built = self.builders[market as usize]
                .entry(symbol.to_string())
                .or_default();
            if built.iter().any(|b| b.builder.interval() == iv) {
                continue;
            }
            // Weeks and months have no fixed length; only the source's own klines serve them.
            if let Ok(builder) = KlineBuilder::new(iv) {
                built.push(Built { builder, agg: None });
            }
        }
    }

    /// Relays one event to the topics that carry it.
    pub fn on_event(&mut self, e: &MarketEvent) {
        match &e.kind {
            MarketEventKind::Kline(k) => {
                if self.derive {
                    self.mark_native(e.market, &e.symbol, k.interval);
                }
                offer_kline(&self.feed, e, k);
            }
            MarketEventKind::Ticker(t) => {
                self.feed
                    .offer(e.market, &e.symbol, What::Ticker, 0, |name| {
                        frame::ticker(name, e, t)
                    });
            }
            MarketEventKind::BookTicker(b) => {
                self.feed.offer(e.market, &e.symbol, What::Book, 0, |name| {
                    frame::book(name, e, b)
                });
            }
            MarketEventKind::Trade(_) | MarketEventKind::AggTrade(_) => self.build(e),
            MarketEventKind::Gap(_) => {
                // The candles in progress miss trades: start again with the next one.
                if let Some(built) = self.builders[e.market as usize].get_mut(e.symbol.as_str()) {
                    built.iter_mut().for_each(|b| b.builder.reset());
                }
            }
            _ => {}
        }
    }

    fn mark_native(&mut self, market: Market, symbol: &str, iv: Interval) {
        if let Some(built) = self.builders[market as usize].get_mut(symbol) {
            built.retain(|b| b.builder.interval() != iv);
        }
        self.native.insert((market, symbol.to_string(), iv));
    }

    fn build(&mut self, e: &MarketEvent) {
        let Some(built) = self.builders[e.market as usize].get_mut(e.symbol.as_str()) else {
            return;
        };
        for b in built {
            let closed = match (&e.kind, b.agg) {
                (MarketEventKind::AggTrade(t), None | Some(true)) => {
                    b.agg = Some(true);
                    b.builder.push_agg(t)
                }
                (MarketEventKind::Trade(t), None | Some(false)) => {
                    b.agg = Some(false);
                    b.builder.push_trade(t)
                }
                _ => continue,
            };
            if let Some(k) = closed {
                offer_kline(&self.feed, e, &k);
            }
            if let Some(k) = b.builder.current() {
                offer_kline(&self.feed, e, k);
            }
        }
    }
}

/// A kline update to its interval's topic, and a final one to the closed topic too.
fn offer_kline(feed: &Feed, e: &MarketEvent, k: &Kline) {
    let topics: &[What] = match k.closed {
        true => &[What::Kline(k.interval), What::ClosedKline(k.interval)],
        false => &[What::Kline(k.interval)],
    };
    for what in topics {
        feed.offer(e.market, &e.symbol, *what, k.open_time_ms, |name| {
            frame::kline(name, e, k)
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::hub::feed::Inbox;
    use crate::market::{Decimal, Trade};

    fn trade(id: u64, time_ms: i64, price: i64) -> MarketEvent {
        MarketEvent {
            market: Market::Spot,
            symbol: "BTCUSDT".into(),
            exchange_time_ms: time_ms,
            received_at: SystemTime::UNIX_EPOCH,
            kind: MarketEventKind::Trade(Trade {
                id,
                price: Decimal::from(price),
                quantity: Decimal::ONE,
                time_ms,
                buyer_is_maker: false,
            }),
        }
    }

    fn contents(inbox: &Inbox) -> Vec<serde_json::Value> {
        inbox
            .take()
            .iter()
            .map(|f| {
                serde_json::from_str::<serde_json::Value>(f.as_str()).unwrap()["content"].clone()
            })
            .collect()
    }

    #[test]
    fn klines_are_built_from_trades_for_subscribed_intervals() {
        let feed = Arc::new(Feed::new());
        let mut relay = Relay::new(feed.clone(), true);
        let inbox = Arc::new(Inbox::default());
        let closed = MarketTopic::parse("spot.BTCUSDT.1s.closed").unwrap();
        feed.subscribe(&inbox, &closed).unwrap();
        relay.on_event(&trade(1, 500, 10)); // before anyone asked: not built
        relay.on_wanted(&feed.wanted().borrow());
        relay.on_event(&trade(2, 1_100, 11));
        relay.on_event(&trade(3, 1_900, 9));
        relay.on_event(&trade(4, 2_100, 12));
        let got = contents(&inbox);
        assert_eq!(got.len(), 1, "{got:?}");
        let k = &got[0];
        assert_eq!(
            (
                k["open"].as_f64(),
                k["high"].as_f64(),
                k["low"].as_f64(),
                k["close"].as_f64()
            ),
            (Some(11.0), Some(11.0), Some(9.0), Some(9.0))
        );
        assert_eq!(
            (
                k["open_time_ms"].as_i64(),
                k["trades"].as_i64(),
                k["closed"].as_bool()
            ),
            (Some(1000), Some(2), Some(true))
        );
    }

    #[test]
    fn native_klines_win_over_built_ones() {
        let feed = Arc::new(Feed::new());
        let mut relay = Relay::new(feed.clone(), true);
        let inbox = Arc::new(Inbox::default());
        feed.subscribe(&inbox, &MarketTopic::parse("spot.BTCUSDT.1s").unwrap())
            .unwrap();
        relay.on_wanted(&feed.wanted().borrow());
        relay.on_event(&trade(1, 1_100, 11));
        assert_eq!(contents(&inbox).len(), 1, "built while nothing native came");
        let mut native = trade(0, 1_200, 0);
        native.kind = MarketEventKind::Kline(Kline {
            interval: Interval::S1,
            open_time_ms: 1_000,
            close_time_ms: 1_999,
            first_trade_id: 1,
            last_trade_id: 1,
            open: Decimal::from(11),
            high: Decimal::from(11),
            low: Decimal::from(11),
            close: Decimal::from(11),
            volume: Decimal::ONE,
            quote_volume: Decimal::from(11),
            trades: 1,
            taker_buy_volume: Decimal::ZERO,
            taker_buy_quote_volume: Decimal::ZERO,
            closed: false,
            contract: None,
        });
        relay.on_event(&native);
        relay.on_event(&trade(2, 1_300, 12));
        relay.on_wanted(&feed.wanted().borrow());
        relay.on_event(&trade(3, 1_400, 13));
        let got = contents(&inbox);
        assert_eq!(got.len(), 1, "only the source's kline: {got:?}");
        assert_eq!(got[0]["close"], 11);
    }
}
