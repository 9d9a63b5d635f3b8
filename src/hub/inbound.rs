//! Signals published from outside (a publisher token): checked and turned into [`Signal`]s.
//!
//! The body is the client contract itself: `{"type":"buy","content":{"symbol":"BTCUSDT",
//! "price":75000.0,"timestamp":1720000000},"is_test":false}`, with optional `content.strategy`
//! (default `external`), `content.interval` and `content.reason`.

use serde_json::Value;

use crate::config::valid_symbol;
use crate::strategy::{Side, Signal};

/// How far a published timestamp may lie in the past and in the future.
const MAX_AGE_SECS: i64 = 7 * 86_400;
const MAX_AHEAD_SECS: i64 = 300;

/// Checks a published signal; the error says which field is wrong and why.
pub fn parse(body: &Value, now_unix: i64) -> Result<Signal, String> {
    let side = match body.get("type").and_then(Value::as_str) {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        other => return Err(format!("type: expected \"buy\" or \"sell\", got {other:?}")),
    };
    if body
        .get("is_test")
        .is_some_and(|t| t != &Value::Bool(false))
    {
        return Err("is_test: published signals are real; leave it out or false".into());
    }
    let content = body
        .get("content")
        .and_then(Value::as_object)
        .ok_or("content: expected an object with symbol, price and timestamp")?;
    let symbol = content
        .get("symbol")
        .and_then(Value::as_str)
        .filter(|s| valid_symbol(s))
        .ok_or("content.symbol: expected a symbol like BTCUSDT")?;
    let price = content
        .get("price")
        .and_then(Value::as_f64)
        .filter(|p| p.is_finite() && *p > 0.0)
        .ok_or("content.price: expected a positive number")?;
    // Unix seconds, or an RFC 3339 time as TradingView's {{timenow}} gives.
    let timestamp = match content.get("timestamp") {
        Some(Value::String(t)) => humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64),
        Some(v) => v.as_i64(),
        None => None,
    }
    .ok_or("content.timestamp: expected Unix seconds, a whole number, or an RFC 3339 time")?;
    if timestamp < now_unix - MAX_AGE_SECS || timestamp > now_unix + MAX_AHEAD_SECS {
        return Err(format!(
            "content.timestamp: {timestamp} is not within the last 7 days or the next 5 minutes (Unix seconds)"
        ));
    }
    let text = |key: &str, default: &str, max: usize| -> Result<String, String> {
        match content.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) if s.len() <= max => Ok(s.clone()),
            Some(_) => Err(format!(
                "content.{key}: expected text of at most {max} bytes"
            )),
        }
    };
    let strategy = text("strategy", "external", 64)?;
    if !strategy
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("content.strategy: use letters, digits, - and _".into());
    }
    Ok(Signal {
        side,
        symbol: symbol.into(),
        price,
        timestamp,
        strategy,
        interval: text("interval", "", 8)?,
        reason: text("reason", "published", 200)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_720_000_000;

    #[test]
    fn contract_bodies_parse_and_bad_ones_name_the_field() {
        let ok = parse(
            &json!({"type":"sell","content":{"symbol":"ETHUSDT","price":3500.5,"timestamp":NOW,"strategy":"tv-alert"},"is_test":false}),
            NOW,
        )
        .unwrap();
        let iso = parse(
            &json!({"type":"buy","content":{"symbol":"BTCUSDT","price":1.5,"timestamp":"2024-07-03T09:46:40Z"}}),
            NOW,
        )
        .unwrap();
        assert_eq!(iso.timestamp, NOW, "RFC 3339 times are taken too");
        assert_eq!(
            (ok.side, ok.price, ok.strategy.as_str()),
            (Side::Sell, 3500.5, "tv-alert")
        );
        for (body, field) in [
            (json!({"type":"hold","content":{}}), "type"),
            (json!({"type":"buy"}), "content"),
            (
                json!({"type":"buy","content":{"symbol":"btc","price":1,"timestamp":NOW}}),
                "content.symbol",
            ),
            (
                json!({"type":"buy","content":{"symbol":"BTCUSDT","price":-1,"timestamp":NOW}}),
                "content.price",
            ),
            (
                json!({"type":"buy","content":{"symbol":"BTCUSDT","price":1,"timestamp":NOW * 1000}}),
                "content.timestamp",
            ),
            (
                json!({"type":"buy","content":{"symbol":"BTCUSDT","price":1,"timestamp":"now"}}),
                "content.timestamp",
            ),
            (
                json!({"type":"buy","content":{"symbol":"BTCUSDT","price":1,"timestamp":NOW},"is_test":true}),
                "is_test",
            ),
            (
                json!({"type":"buy","content":{"symbol":"BTCUSDT","price":1,"timestamp":NOW,"strategy":"a b"}}),
                "content.strategy",
            ),
        ] {
            let err = parse(&body, NOW).unwrap_err();
            assert!(err.starts_with(field), "{body}: {err}");
        }
    }
}
