//! What one session receives: its token's scope, narrowed by the topics it subscribed to.
//!
//! Signal topics are `signals.<SYMBOL>.<strategy>`, either part `*` for any
//! (`signals.BTCUSDT.*`, `signals.*.ma-fast`, `signals.*.*`); `signals.<SYMBOL>` is short for
//! `signals.<SYMBOL>.*` and `signals` for `signals.*.*`. A session that never subscribes gets
//! every signal its scope allows, as plain clients expect.

use crate::auth::Scope;
use crate::hub::Published;

/// One signal topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// `None` is any symbol.
    pub symbol: Option<String>,
    /// `None` is any strategy.
    pub strategy: Option<String>,
}

impl Topic {
    /// Parses a topic, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Topic, String> {
        let mut parts = text.split('.');
        if parts.next() != Some("signals") {
            return Err(format!(
                "{text:?}: expected signals.<SYMBOL|*>.<strategy|*>, e.g. signals.BTCUSDT.*"
            ));
        }
        let any = |p: Option<&str>| p.filter(|p| *p != "*").map(str::to_string);
        let symbol = parts.next();
        let strategy = parts.next();
        if parts.next().is_some() {
            return Err(format!("{text:?}: a topic has at most three parts"));
        }
        if let Some(s) = symbol.filter(|s| *s != "*") {
            if !crate::config::valid_symbol(s) {
                return Err(format!("{text:?}: {s:?} is not a symbol like BTCUSDT"));
            }
        }
        if strategy.is_some_and(str::is_empty) || symbol.is_some_and(str::is_empty) {
            return Err(format!("{text:?}: empty part"));
        }
        Ok(Topic {
            symbol: any(symbol),
            strategy: any(strategy),
        })
    }

    fn matches(&self, symbol: &str, strategy: &str) -> bool {
        self.symbol.as_deref().is_none_or(|s| s == symbol)
            && self.strategy.as_deref().is_none_or(|s| s == strategy)
    }
}

/// A session's filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    scope: Scope,
    /// Subscribed topics, with their text; empty means every signal in scope.
    topics: Vec<(String, Topic)>,
}

impl Filter {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            topics: Vec::new(),
        }
    }

    /// The token's scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether the session receives this signal.
    pub fn allows(&self, p: &Published) -> bool {
        self.scope.allows_symbol(&p.symbol)
            && self.scope.allows_strategy(&p.strategy)
            && (self.topics.is_empty()
                || self
                    .topics
                    .iter()
                    .any(|(_, t)| t.matches(&p.symbol, &p.strategy)))
    }

    /// Adds a topic; a symbol or strategy the token's scope excludes is refused. (A `*` is
    /// allowed and stays narrowed by the scope.)
    pub fn subscribe(&mut self, text: &str, topic: Topic) -> Result<(), String> {
        if let Some(s) = topic
            .symbol
            .as_deref()
            .filter(|s| !self.scope.allows_symbol(s))
        {
            return Err(format!("{text}: this token may not receive {s}"));
        }
        if let Some(s) = topic
            .strategy
            .as_deref()
            .filter(|s| !self.scope.allows_strategy(s))
        {
            return Err(format!("{text}: this token may not receive strategy {s}"));
        }
        if !self.topics.iter().any(|(t, _)| t == text) {
            self.topics.push((text.to_string(), topic));
        }
        Ok(())
    }

    /// Removes a topic; false when it was not subscribed.
    pub fn unsubscribe(&mut self, text: &str) -> bool {
        let before = self.topics.len();
        self.topics.retain(|(t, _)| t != text);
        self.topics.len() != before
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn published(symbol: &str, strategy: &str) -> Published {
        Published {
            seq: 1,
            symbol: symbol.into(),
            strategy: Arc::from(strategy),
            frame: "{}".into(),
            at: std::time::Instant::now(),
            offered: std::time::Instant::now(),
        }
    }

    #[test]
    fn topics_parse_and_match() {
        let t = Topic::parse("signals.BTCUSDT.*").unwrap();
        assert!(t.matches("BTCUSDT", "x") && !t.matches("ETHUSDT", "x"));
        let t = Topic::parse("signals.*.ma-fast").unwrap();
        assert!(t.matches("ETHUSDT", "ma-fast") && !t.matches("ETHUSDT", "rsi"));
        assert_eq!(
            Topic::parse("signals").unwrap(),
            Topic {
                symbol: None,
                strategy: None
            }
        );
        assert_eq!(
            Topic::parse("signals.SOLUSDT").unwrap().symbol.as_deref(),
            Some("SOLUSDT")
        );
        for bad in [
            "stock.AAPL.1m",
            "signals.btc usdt.*",
            "signals.A.b.c",
            "signals..x",
            "",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_narrows_and_refuses() {
        let scope = Scope {
            symbols: Some(vec!["BTCUSDT".into()]),
            strategies: None,
            publisher: false,
        };
        let mut f = Filter::new(scope);
        assert!(f.allows(&published("BTCUSDT", "a")));
        assert!(!f.allows(&published("ETHUSDT", "a")), "out of scope");
        let eth = Topic::parse("signals.ETHUSDT.*").unwrap();
        assert!(f.subscribe("signals.ETHUSDT.*", eth).is_err());
        let any_b = Topic::parse("signals.*.b").unwrap();
        f.subscribe("signals.*.b", any_b).unwrap();
        assert!(!f.allows(&published("BTCUSDT", "a")), "not subscribed");
        assert!(f.allows(&published("BTCUSDT", "b")));
        assert!(!f.allows(&published("ETHUSDT", "b")), "still in scope only");
        assert!(f.unsubscribe("signals.*.b"));
        assert!(!f.unsubscribe("signals.*.b"));
        assert!(
            f.allows(&published("BTCUSDT", "a")),
            "no topics: all in scope"
        );
    }
}
