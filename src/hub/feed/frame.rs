//! The messages of market-data topics, written once per update.
//!
//! Prices and quantities are exact: Binance's decimals, trailing zeros dropped, as JSON numbers.
//! Times are Unix milliseconds (`*_ms`), plus `timestamp` in Unix seconds as in signals.

use std::fmt::Write;

use rust_decimal::Decimal;

use super::super::Frame;
use crate::market::{BookTicker, Kline, MarketEvent, Ticker24h};

/// `{"type":"kline","topic":...,"content":{...}}`.
pub fn kline(topic: &str, event: &MarketEvent, k: &Kline) -> Frame {
    let mut s = head("kline", topic, event);
    field(
        &mut s,
        "interval",
        format_args!("\"{}\"", k.interval.as_str()),
    );
    field(&mut s, "open_time_ms", format_args!("{}", k.open_time_ms));
    field(&mut s, "close_time_ms", format_args!("{}", k.close_time_ms));
    for (name, d) in [
        ("open", k.open),
        ("high", k.high),
        ("low", k.low),
        ("close", k.close),
        ("volume", k.volume),
        ("quote_volume", k.quote_volume),
        ("taker_buy_volume", k.taker_buy_volume),
    ] {
        decimal(&mut s, name, d);
    }
    field(&mut s, "trades", format_args!("{}", k.trades));
    field(&mut s, "closed", format_args!("{}", k.closed));
    tail(s, event)
}

/// `{"type":"ticker",...}`: the rolling 24 h statistics.
pub fn ticker(topic: &str, event: &MarketEvent, t: &Ticker24h) -> Frame {
    let mut s = head("ticker", topic, event);
    for (name, d) in [
        ("last_price", t.last_price),
        ("last_quantity", t.last_quantity),
        ("price_change", t.price_change),
        ("price_change_percent", t.price_change_percent),
        ("weighted_average", t.weighted_average),
        ("open", t.open),
        ("high", t.high),
        ("low", t.low),
        ("volume", t.volume),
        ("quote_volume", t.quote_volume),
    ] {
        decimal(&mut s, name, d);
    }
    field(&mut s, "trades", format_args!("{}", t.trades));
    field(&mut s, "open_time_ms", format_args!("{}", t.open_time_ms));
    field(&mut s, "close_time_ms", format_args!("{}", t.close_time_ms));
    tail(s, event)
}

/// `{"type":"book",...}`: the best bid and ask.
pub fn book(topic: &str, event: &MarketEvent, b: &BookTicker) -> Frame {
    let mut s = head("book", topic, event);
    decimal(&mut s, "bid_price", b.bid_price);
    decimal(&mut s, "bid_quantity", b.bid_quantity);
    decimal(&mut s, "ask_price", b.ask_price);
    decimal(&mut s, "ask_quantity", b.ask_quantity);
    field(&mut s, "update_id", format_args!("{}", b.update_id));
    tail(s, event)
}

/// Opens the message and its content with the fields every update has. Symbols are checked
/// to be `A-Z0-9` and topics are built from checked parts, so neither needs escaping.
fn head(kind: &str, topic: &str, event: &MarketEvent) -> String {
    let mut s = String::with_capacity(384);
    let _ = write!(
        s,
        "{{\"type\":\"{kind}\",\"topic\":\"{topic}\",\"content\":{{\"market\":\"{}\",\"symbol\":\"{}\"",
        event.market.as_str(),
        event.symbol
    );
    s
}

fn tail(mut s: String, event: &MarketEvent) -> Frame {
    field(
        &mut s,
        "event_time_ms",
        format_args!("{}", event.exchange_time_ms),
    );
    field(
        &mut s,
        "timestamp",
        format_args!("{}", event.exchange_time_ms.div_euclid(1000)),
    );
    s.push_str("}}");
    s.into()
}

fn field(s: &mut String, name: &str, value: std::fmt::Arguments<'_>) {
    let _ = write!(s, ",\"{name}\":{value}");
}

fn decimal(s: &mut String, name: &str, d: Decimal) {
    field(s, name, format_args!("{}", d.normalize()));
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::market::binance::{Parsed, parse};
    use crate::market::{Market, MarketEventKind};

    fn event(market: Market, text: &str) -> MarketEvent {
        match parse(market, text, SystemTime::UNIX_EPOCH) {
            Ok(Parsed::Event(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    /// Real payloads from the recordings and Binance's documentation, field by field.
    #[test]
    fn real_payloads_relay_exactly() {
        let k = event(
            Market::Futures,
            r#"{"stream":"sushiusdt@kline_1m","data":{"e":"kline","E":1626971401001,"s":"SUSHIUSDT","k":{"t":1626971400000,"T":1626971459999,"s":"SUSHIUSDT","i":"1m","f":137369830,"L":137369833,"o":"7.43000","c":"7.42900","h":"7.43000","l":"7.42900","v":"177.0","n":4,"x":false,"q":"1314.93890","V":"0.0","Q":"0.00000","B":"0"}}}"#,
        );
        let MarketEventKind::Kline(kl) = &k.kind else {
            panic!()
        };
        let v: serde_json::Value =
            serde_json::from_str(kline("futures.SUSHIUSDT.1m", &k, kl).as_str()).unwrap();
        assert_eq!(v["type"], "kline");
        assert_eq!(v["topic"], "futures.SUSHIUSDT.1m");
        let c = &v["content"];
        assert_eq!(c["market"], "futures");
        assert_eq!(c["symbol"], "SUSHIUSDT");
        assert_eq!(c["interval"], "1m");
        assert_eq!(c["open_time_ms"], 1626971400000i64);
        assert_eq!(c["close_time_ms"], 1626971459999i64);
        assert_eq!(c["open"], 7.43);
        assert_eq!(c["close"], 7.429);
        assert_eq!(c["volume"], 177.0);
        assert_eq!(c["quote_volume"], 1314.9389);
        assert_eq!(c["trades"], 4);
        assert_eq!(c["closed"], false);
        assert_eq!(c["event_time_ms"], 1626971401001i64);
        assert_eq!(c["timestamp"], 1626971401);

        let b = event(
            Market::Futures,
            r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000","T":1568014460891,"E":1568014460893}}"#,
        );
        let MarketEventKind::BookTicker(bt) = &b.kind else {
            panic!()
        };
        let text = book("futures.BTCUSDT.book", &b, bt);
        assert!(
            text.as_str().contains(r#""bid_price":25.3519,"bid_quantity":31.21,"ask_price":25.3652,"ask_quantity":40.66,"update_id":400900217"#),
            "{}",
            text.as_str()
        );
        serde_json::from_str::<serde_json::Value>(text.as_str()).unwrap();

        let t = event(
            Market::Spot,
            r#"{"stream":"bnbbtc@ticker","data":{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}}"#,
        );
        let MarketEventKind::Ticker(tk) = &t.kind else {
            panic!()
        };
        let v: serde_json::Value =
            serde_json::from_str(ticker("spot.BNBBTC.ticker", &t, tk).as_str()).unwrap();
        assert_eq!(v["content"]["last_price"], 0.0025);
        assert_eq!(v["content"]["price_change_percent"], 250.0);
        assert_eq!(v["content"]["trades"], 18151);
        assert_eq!(v["content"]["close_time_ms"], 86400000);
    }
}
