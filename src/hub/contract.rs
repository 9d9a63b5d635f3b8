//! The client contract's JSON for one signal, made once however many clients receive it,
//! and read back (journaled and stored frames).

use serde::{Deserialize, Serialize};

use super::Frame;
use crate::strategy::{Side, Signal};

/// The client contract: `{"type","content":{"symbol","price","timestamp",...},"is_test"}`.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    content: Content<'a>,
    is_test: bool,
    /// The broadcast sequence number (test signals have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

#[derive(Serialize)]
struct Content<'a> {
    symbol: &'a str,
    price: f64,
    timestamp: i64,
    strategy: &'a str,
    interval: &'a str,
    reason: &'a str,
}

/// Serializes a signal in the client contract shape, without a `seq`.
pub fn encode(signal: &Signal, is_test: bool) -> Frame {
    encode_with(signal, is_test, None)
}

/// Serializes a broadcast signal: the contract shape plus its `seq`.
pub fn encode_seq(signal: &Signal, seq: u64) -> Frame {
    encode_with(signal, false, Some(seq))
}

fn encode_with(signal: &Signal, is_test: bool, seq: Option<u64>) -> Frame {
    let wire = Wire {
        kind: signal.side.as_str(),
        content: Content {
            symbol: &signal.symbol,
            price: signal.price,
            timestamp: signal.timestamp,
            strategy: &signal.strategy,
            interval: &signal.interval,
            reason: &signal.reason,
        },
        is_test,
        seq,
    };
    // Serializing plain strings and finite numbers cannot fail; NaN would become null.
    serde_json::to_string(&wire)
        .unwrap_or_else(|_| String::from("{}"))
        .into()
}

/// A frame read back: the fields [`encode_with`] writes (others, such as a proof, ignored).
#[derive(Deserialize)]
struct Read<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    content: ReadContent,
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct ReadContent {
    symbol: String,
    price: f64,
    timestamp: i64,
    #[serde(default)]
    strategy: String,
    #[serde(default)]
    interval: String,
    #[serde(default)]
    reason: String,
}

/// The signal a contract frame carries, and its `seq` when it has one; `None` for text that
/// is not a buy or sell frame.
pub fn decode(frame: &str) -> Option<(Signal, Option<u64>)> {
    let read: Read = serde_json::from_str(frame).ok()?;
    let side = match read.kind {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return None,
    };
    let c = read.content;
    let signal = Signal {
        side,
        symbol: c.symbol.into(),
        price: c.price,
        timestamp: c.timestamp,
        strategy: c.strategy,
        interval: c.interval,
        reason: c.reason,
    };
    Some((signal, read.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_as_its_signal_and_seq() {
        let signal = Signal {
            side: Side::Sell,
            symbol: "BTCUSDT".into(),
            price: 75000.5,
            timestamp: 1720000000,
            strategy: "quick".into(),
            interval: "1m".into(),
            reason: "a \"quoted\" reason".into(),
        };
        let frame = encode_seq(&signal, 42);
        assert_eq!(decode(frame.as_str()), Some((signal.clone(), Some(42))));
        let text = frame.as_str();
        let sealed = format!(
            "{},\"proof\":{{\"kid\":\"k\",\"prev\":\"00\",\"sig\":\"s\"}}}}",
            &text[..text.len() - 1]
        );
        assert_eq!(decode(&sealed).map(|d| d.1), Some(Some(42)));
        assert_eq!(
            decode(encode(&signal, true).as_str()).map(|d| d.1),
            Some(None)
        );
        assert_eq!(
            decode(r#"{"type":"hold","content":{"symbol":"X","price":1,"timestamp":1}}"#),
            None
        );
        assert_eq!(decode("not json"), None);
    }
}
