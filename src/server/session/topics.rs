//! Subscriptions: signal topics narrow what the token's scope lets through; market-data
//! topics join the hub's feed, conflated per topic.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;

use super::{Flow, Session, error_reply};
use crate::clock::unix_now;
use crate::hub::feed::{Feed, Inbox, MarketTopic};
use crate::server::filter::Topic;

/// A session's market-data subscriptions; leaving the feed when the session ends.
pub(super) struct MarketSubs {
    feed: Arc<Feed>,
    /// Where the feed leaves this session's frames, conflated.
    inbox: Arc<Inbox>,
    topics: Vec<MarketTopic>,
}

impl Drop for MarketSubs {
    fn drop(&mut self) {
        for topic in &self.topics {
            self.feed.unsubscribe(&self.inbox, topic);
        }
    }
}

/// Resolves when market-data frames are pending; never without subscriptions.
pub(super) async fn market_ready(subs: Option<&MarketSubs>) {
    match subs {
        Some(subs) => subs.inbox.ready().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// Applies a subscribe or unsubscribe; returns the ack or the error to send.
    pub(super) fn on_topic(&mut self, kind: &str, text: &str) -> Message {
        let outcome = if MarketTopic::is_market(text) {
            match MarketTopic::parse(text) {
                Ok(topic) => self.on_market_topic(kind, topic),
                Err(e) => return error_reply("invalid_topic", &e),
            }
        } else {
            match self.on_signal_topic(kind, text) {
                Ok(outcome) => outcome,
                Err(e) => return error_reply("invalid_topic", &e),
            }
        };
        match outcome {
            Ok(()) => Message::text(
                serde_json::json!({"type": format!("{kind}_ack"), "topic": text, "timestamp": unix_now()})
                    .to_string(),
            ),
            Err(e) => error_reply("subscription_failed", &e),
        }
    }

    /// A market-data topic: checked against the token's scope and the per-session limit.
    fn on_market_topic(&mut self, kind: &str, topic: MarketTopic) -> Result<(), String> {
        let feed = self.shared.hub.feed();
        let subs = self.market.get_or_insert_with(|| MarketSubs {
            feed: feed.clone(),
            inbox: Arc::default(),
            topics: Vec::new(),
        });
        let held = subs.topics.contains(&topic);
        if kind != "subscribe" {
            if !held {
                return Err(format!("{topic}: not subscribed"));
            }
            subs.feed.unsubscribe(&subs.inbox, &topic);
            subs.topics.retain(|t| *t != topic);
            return Ok(());
        }
        if held {
            return Ok(());
        }
        if !self.filter.scope().allows_symbol(&topic.symbol) {
            return Err(format!(
                "{topic}: this token may not receive {}",
                topic.symbol
            ));
        }
        let max = self.shared.max_market_topics;
        if subs.topics.len() >= max {
            return Err(format!(
                "{topic}: a session may hold {max} market-data topics (market_data.max_topics)"
            ));
        }
        subs.feed.subscribe(&subs.inbox, &topic)?;
        subs.topics.push(topic);
        Ok(())
    }

    /// A signal topic; the outer error is a malformed topic, the inner a refused one.
    fn on_signal_topic(&mut self, kind: &str, text: &str) -> Result<Result<(), String>, String> {
        let topic = Topic::parse(text)?;
        Ok(if kind == "subscribe" {
            self.filter.subscribe(text, topic)
        } else if self.filter.unsubscribe(text) {
            Ok(())
        } else {
            Err(format!("{text}: not subscribed"))
        })
    }

    /// Writes the pending market-data frames, each the latest of its topic, in one flush.
    pub(super) async fn on_market(&mut self) -> Result<Flow, WsError> {
        let frames = match &self.market {
            Some(m) => m.inbox.take(),
            None => return Ok(Flow::Continue),
        };
        if !frames.is_empty() {
            self.write_frames(&frames).await?;
        }
        Ok(Flow::Continue)
    }
}
