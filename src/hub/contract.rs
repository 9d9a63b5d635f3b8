//! The client contract's JSON for one signal, made once however many clients receive it.

use serde::Serialize;

use super::Frame;
use crate::strategy::Signal;

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
