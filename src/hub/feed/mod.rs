//! Market-data topics: the live market behind the signals, relayed to the sessions that
//! subscribed, serialized once per update and conflated for slow clients.
//!
//! Each subscribing session owns an [`Inbox`] that holds at most one pending frame per topic
//! (per candle, for klines): a newer update replaces the one the session has not written
//! yet, so a slow client gets the latest value late instead of being cut off, and its memory
//! stays bounded. Signals never pass through here and are never conflated.
//!
//! The set of topics someone subscribes to is [`Feed::wanted`]; `serve` follows it with its
//! upstream subscriptions.

mod frame;
pub mod relay;
pub mod topic;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{Notify, watch};

use super::Frame;
use crate::market::Market;
pub use relay::Relay;
pub use topic::{MarketTopic, What};

/// Frames one inbox holds before the oldest is dropped (only kline candles can pile up: the
/// final update of each candle is kept apart from the next candle's).
const MAX_PENDING: usize = 256;

/// Routes market-data updates to the inboxes of subscribed sessions.
#[derive(Default)]
pub struct Feed {
    /// Subscribers by market, then symbol, then topic.
    routes: Mutex<[HashMap<String, Vec<Route>>; 2]>,
    /// Subscriptions held across all sessions; zero lets the relay skip every update at once.
    active: AtomicUsize,
    /// Topics with at least one subscriber, sorted; the live upstream follows it.
    wanted: watch::Sender<Vec<MarketTopic>>,
    /// Which symbols clients may ask for.
    offered: RwLock<Offered>,
    /// Updates replaced in an inbox before being written (the conflation count).
    conflated: AtomicU64,
}

/// The symbols market data is offered for.
#[derive(Debug, Clone, Default)]
pub struct Offered {
    /// Any symbol (replayed or synthetic data, or `market_data.symbols = ["*"]`).
    pub any: bool,
    pub symbols: HashSet<(Market, String)>,
}

/// One topic's subscribers.
struct Route {
    what: What,
    /// The topic's name, shared by every frame and pending slot of it.
    name: Arc<str>,
    inboxes: Vec<Arc<Inbox>>,
}

impl Feed {
    pub fn new() -> Self {
        Self {
            offered: RwLock::new(Offered {
                any: true,
                symbols: HashSet::new(),
            }),
            ..Default::default()
        }
    }

    /// Sets which symbols clients may subscribe to (existing subscriptions stay).
    pub fn set_offered(&self, offered: Offered) {
        *self.offered.write().unwrap_or_else(|p| p.into_inner()) = offered;
    }

    /// A receiver of the subscribed topic set, which changes as sessions come and go.
    pub fn wanted(&self) -> watch::Receiver<Vec<MarketTopic>> {
        self.wanted.subscribe()
    }

    /// Market-data subscriptions held across all sessions.
    pub fn subscriptions(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Updates that were replaced by a newer one before a slow session wrote them.
    pub fn conflated(&self) -> u64 {
        self.conflated.load(Ordering::Relaxed)
    }

    /// Adds `inbox` to `topic`'s subscribers; refused for a symbol that is not offered.
    pub fn subscribe(&self, inbox: &Arc<Inbox>, topic: &MarketTopic) -> Result<(), String> {
        {
            let offered = self.offered.read().unwrap_or_else(|p| p.into_inner());
            if !offered.any
                && !offered
                    .symbols
                    .contains(&(topic.market, topic.symbol.clone()))
            {
                return Err(format!(
                    "{topic}: sigcast relays {} market data for the symbols its strategies trade and market_data.symbols; {} is not among them",
                    topic.market.as_str(),
                    topic.symbol
                ));
            }
        }
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let by_topic = routes[topic.market as usize]
            .entry(topic.symbol.clone())
            .or_default();
        let route = match by_topic.iter_mut().position(|r| r.what == topic.what) {
            Some(i) => &mut by_topic[i],
            None => {
                by_topic.push(Route {
                    what: topic.what,
                    name: Arc::from(topic.to_string()),
                    inboxes: Vec::new(),
                });
                self.wanted.send_modify(|w| {
                    if let Err(at) = w.binary_search(topic) {
                        w.insert(at, topic.clone());
                    }
                });
                by_topic.last_mut().expect("just pushed")
            }
        };
        if !route.inboxes.iter().any(|i| Arc::ptr_eq(i, inbox)) {
            route.inboxes.push(inbox.clone());
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes `inbox` from `topic`'s subscribers and drops what it had pending of it.
    pub fn unsubscribe(&self, inbox: &Arc<Inbox>, topic: &MarketTopic) {
        let name = {
            let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            let map = &mut routes[topic.market as usize];
            let Some(by_topic) = map.get_mut(&topic.symbol) else {
                return;
            };
            let Some(i) = by_topic.iter().position(|r| r.what == topic.what) else {
                return;
            };
            let route = &mut by_topic[i];
            let before = route.inboxes.len();
            route.inboxes.retain(|i| !Arc::ptr_eq(i, inbox));
            if route.inboxes.len() < before {
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
            let name = route.name.clone();
            if route.inboxes.is_empty() {
                by_topic.swap_remove(i);
                if by_topic.is_empty() {
                    map.remove(&topic.symbol);
                }
                self.wanted.send_modify(|w| w.retain(|t| t != topic));
            }
            name
        };
        inbox.purge(&name);
    }

    /// Offers one update of `what` for `symbol` to its subscribers, if any. `slot` tells
    /// updates apart that must not replace each other (a kline's open time); `encode` writes
    /// the frame, once, given the topic name. Returns how many sessions it went to.
    pub fn offer(
        &self,
        market: Market,
        symbol: &str,
        what: What,
        slot: i64,
        encode: impl FnOnce(&str) -> Frame,
    ) -> usize {
        if self.active.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(route) = routes[market as usize]
            .get(symbol)
            .and_then(|by_topic| by_topic.iter().find(|r| r.what == what))
        else {
            return 0;
        };
        let frame = encode(&route.name);
        for inbox in &route.inboxes {
            if inbox.put(&route.name, slot, frame.clone()) {
                self.conflated.fetch_add(1, Ordering::Relaxed);
            }
        }
        route.inboxes.len()
    }

    /// Whether anyone subscribes to `what` of this symbol.
    pub fn is_wanted(&self, market: Market, symbol: &str, what: What) -> bool {
        if self.active.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes[market as usize]
            .get(symbol)
            .is_some_and(|by_topic| by_topic.iter().any(|r| r.what == what))
    }
}

/// One session's pending market-data frames, at most one per topic and slot.
#[derive(Default)]
pub struct Inbox {
    pending: Mutex<VecDeque<Pending>>,
    /// Wakes the session when something is pending.
    ready: Notify,
}

struct Pending {
    topic: Arc<str>,
    slot: i64,
    frame: Frame,
}

impl Inbox {
    /// Queues `frame`, replacing a pending one of the same topic and slot; true when it did.
    fn put(&self, topic: &Arc<str>, slot: i64, frame: Frame) -> bool {
        let replaced = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending
                .iter_mut()
                .rev()
                .find(|p| p.slot == slot && Arc::ptr_eq(&p.topic, topic))
            {
                Some(p) => {
                    p.frame = frame;
                    true
                }
                None => {
                    if pending.len() >= MAX_PENDING {
                        pending.pop_front();
                    }
                    pending.push_back(Pending {
                        topic: topic.clone(),
                        slot,
                        frame,
                    });
                    false
                }
            }
        };
        self.ready.notify_one();
        replaced
    }

    /// Waits until something is pending (returns at once if something arrived meanwhile).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Everything pending, oldest first.
    pub fn take(&self) -> Vec<Frame> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.drain(..).map(|p| p.frame).collect()
    }

    fn purge(&self, topic: &Arc<str>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|p| !Arc::ptr_eq(&p.topic, topic));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Interval;

    fn topic(text: &str) -> MarketTopic {
        MarketTopic::parse(text).unwrap()
    }

    fn texts(frames: Vec<Frame>) -> Vec<String> {
        frames.iter().map(|f| f.as_str().to_string()).collect()
    }

    #[test]
    fn latest_wins_per_topic_and_candle() {
        let feed = Feed::new();
        let inbox = Arc::new(Inbox::default());
        feed.subscribe(&inbox, &topic("spot.BTCUSDT.book")).unwrap();
        feed.subscribe(&inbox, &topic("spot.BTCUSDT.1m")).unwrap();
        let m = Market::Spot;
        let kline = What::Kline(Interval::M1);
        for (what, slot, text) in [
            (What::Book, 0, "b1"),
            (kline, 60, "k60a"),
            (What::Book, 0, "b2"),
            (kline, 60, "k60b-closed"),
            (kline, 120, "k120a"),
            (What::Book, 0, "b3"),
            (kline, 120, "k120b"),
        ] {
            assert_eq!(feed.offer(m, "BTCUSDT", what, slot, |_| text.into()), 1);
        }
        assert_eq!(
            texts(inbox.take()),
            ["b3", "k60b-closed", "k120b"],
            "one frame per topic and candle, the latest, in first-arrival order"
        );
        assert_eq!(feed.conflated(), 4);
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn only_subscribers_get_updates_and_wanted_follows() {
        let feed = Feed::new();
        let wanted = feed.wanted();
        let (a, b) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
        let book = topic("futures.ETHUSDT.book");
        feed.subscribe(&a, &book).unwrap();
        feed.subscribe(&b, &book).unwrap();
        feed.subscribe(&b, &book).unwrap(); // twice is once
        assert_eq!(*wanted.borrow(), vec![book.clone()]);
        let mut names = Vec::new();
        let n = feed.offer(Market::Futures, "ETHUSDT", What::Book, 0, |name| {
            names.push(name.to_string());
            "x".into()
        });
        assert_eq!(
            (n, names.as_slice()),
            (2, ["futures.ETHUSDT.book".to_string()].as_slice()),
            "encoded once"
        );
        assert_eq!(
            feed.offer(Market::Spot, "ETHUSDT", What::Book, 0, |_| "y".into()),
            0
        );
        assert_eq!(
            feed.offer(Market::Futures, "ETHUSDT", What::Ticker, 0, |_| "z".into()),
            0
        );
        feed.unsubscribe(&a, &book);
        assert!(
            a.take().is_empty(),
            "pending frames of the topic go with it"
        );
        assert_eq!(*wanted.borrow(), vec![book.clone()], "b still wants it");
        feed.unsubscribe(&b, &book);
        assert!(wanted.borrow().is_empty());
        assert!(!feed.is_wanted(Market::Futures, "ETHUSDT", What::Book));
    }

    #[test]
    fn symbols_not_offered_are_refused() {
        let feed = Feed::new();
        feed.set_offered(Offered {
            any: false,
            symbols: [(Market::Spot, "BTCUSDT".to_string())].into(),
        });
        let inbox = Arc::new(Inbox::default());
        assert!(feed.subscribe(&inbox, &topic("spot.BTCUSDT.1m")).is_ok());
        let e = feed
            .subscribe(&inbox, &topic("futures.BTCUSDT.1m"))
            .unwrap_err();
        assert!(e.contains("not among them"), "{e}");
    }

    #[test]
    fn a_stuck_inbox_stays_bounded() {
        let feed = Feed::new();
        let inbox = Arc::new(Inbox::default());
        feed.subscribe(&inbox, &topic("spot.BTCUSDT.1s")).unwrap();
        for slot in 0..1000 {
            feed.offer(
                Market::Spot,
                "BTCUSDT",
                What::Kline(Interval::S1),
                slot,
                |_| slot.to_string().into(),
            );
        }
        let frames = texts(inbox.take());
        assert_eq!(frames.len(), MAX_PENDING);
        assert_eq!(
            frames.last().map(String::as_str),
            Some("999"),
            "newest kept"
        );
    }
}
