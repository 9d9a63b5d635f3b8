//! Market-data topic names: `<market>.<SYMBOL>.<what>`, after reference 003's
//! `{type}.{symbol}.{interval}`.
//!
//! | topic | carries |
//! |---|---|
//! | `spot.BTCUSDT.1m` | every update of the 1m kline, the final one with `"closed":true` |
//! | `spot.BTCUSDT.1m.closed` | only final klines |
//! | `futures.BTCUSDT.ticker` | the rolling 24 h ticker |
//! | `futures.BTCUSDT.book` | the best bid and ask (top of book) |

use std::fmt;

use crate::market::{Interval, Market};

/// What a market-data topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum What {
    /// Every update of the current kline, the final one marked closed.
    Kline(Interval),
    /// Final klines only.
    ClosedKline(Interval),
    /// The rolling 24 h ticker.
    Ticker,
    /// Best bid and ask.
    Book,
}

/// One market-data topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarketTopic {
    pub market: Market,
    pub symbol: String,
    pub what: What,
}

const SYNTAX: &str =
    "expected <spot|futures>.<SYMBOL>.<interval|interval.closed|ticker|book>, e.g. spot.BTCUSDT.1m";

impl MarketTopic {
    /// Whether `text` names a market-data topic at all (it starts with a market), so a typo
    /// in one gets this syntax's error rather than the signal topics'.
    pub fn is_market(text: &str) -> bool {
        matches!(text.split('.').next(), Some("spot" | "futures"))
    }

    /// Parses a market-data topic, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<MarketTopic, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let market = match parts.first() {
            Some(&"spot") => Market::Spot,
            Some(&"futures") => Market::Futures,
            _ => return Err(format!("{text:?}: {SYNTAX}")),
        };
        let (symbol, rest) = match parts.as_slice() {
            [_, symbol, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => (*symbol, rest),
            _ => return Err(format!("{text:?}: {SYNTAX}")),
        };
        if !crate::config::valid_symbol(symbol) {
            return Err(format!("{text:?}: {symbol:?} is not a symbol like BTCUSDT"));
        }
        let interval = |s: &str| {
            s.parse::<Interval>().map_err(|_| {
                format!("{text:?}: {s:?} is not an interval (1s, 1m, 5m, ... 1d, 1w, 1M)")
            })
        };
        let what = match rest {
            ["ticker"] => What::Ticker,
            ["book"] => What::Book,
            [iv] => What::Kline(interval(iv)?),
            [iv, "closed"] => What::ClosedKline(interval(iv)?),
            _ => return Err(format!("{text:?}: {SYNTAX}")),
        };
        Ok(MarketTopic {
            market,
            symbol: symbol.to_string(),
            what,
        })
    }

    /// The Binance stream that carries this topic's updates.
    pub fn stream(&self) -> String {
        let symbol = self.symbol.to_ascii_lowercase();
        match self.what {
            What::Kline(iv) | What::ClosedKline(iv) => format!("{symbol}@kline_{}", iv.as_str()),
            What::Ticker => format!("{symbol}@ticker"),
            What::Book => format!("{symbol}@bookTicker"),
        }
    }
}

impl fmt::Display for MarketTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.", self.market.as_str(), self.symbol)?;
        match self.what {
            What::Kline(iv) => write!(f, "{}", iv.as_str()),
            What::ClosedKline(iv) => write!(f, "{}.closed", iv.as_str()),
            What::Ticker => f.write_str("ticker"),
            What::Book => f.write_str("book"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_name_their_stream() {
        for (text, stream) in [
            ("spot.BTCUSDT.1m", "btcusdt@kline_1m"),
            ("futures.ETHUSDT.1M.closed", "ethusdt@kline_1M"),
            ("futures.BTCUSDT.ticker", "btcusdt@ticker"),
            ("spot.SOLUSDT.book", "solusdt@bookTicker"),
        ] {
            let t = MarketTopic::parse(text).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(t.stream(), stream);
            assert!(MarketTopic::is_market(text));
        }
        assert_eq!(
            MarketTopic::parse("spot.BTCUSDT.5m.closed").unwrap().what,
            What::ClosedKline(Interval::M5)
        );
    }

    #[test]
    fn bad_topics_say_why() {
        for (bad, says) in [
            ("spot.BTCUSDT", "expected"),
            ("spot.btc usdt.1m", "not a symbol"),
            ("futures.BTCUSDT.7m", "not an interval"),
            ("spot.BTCUSDT.1m.open", "expected"),
            ("spot.BTCUSDT.1m.closed.x", "expected"),
            ("stock.AAPL.1m", "expected"),
        ] {
            let e = MarketTopic::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(!MarketTopic::is_market("signals.BTCUSDT.*"));
    }
}
