//! Binance: turning combined-stream messages into [`MarketEvent`]s.
//!
//! [`parse`] never panics: anything it cannot understand is a [`ParseError`], which the caller
//! counts and logs at a rate limit (see [`super::Malformed`]) and then carries on.

pub mod live;
pub mod wire;

use std::str::FromStr;
use std::time::SystemTime;

use rust_decimal::Decimal;

use super::{
    AggTrade, BookTicker, ContractType, DepthUpdate, Interval, Kline, Level, Market, MarketEvent,
    MarketEventKind, Ticker24h, Trade,
};

/// What one upstream message was.
// `Event` is nearly every message; boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A market event from a stream.
    Event(MarketEvent),
    /// A reply to a control request: `result` is `None` for `null` (SUBSCRIBE/UNSUBSCRIBE).
    Reply {
        id: Option<i64>,
        result: Option<Vec<String>>,
    },
    /// An error reply (`{"code":N,"msg":"..."}`).
    Error {
        id: Option<i64>,
        code: i64,
        message: String,
    },
    /// The server announced a planned disconnect.
    ServerShutdown { time_ms: i64 },
    /// A REST depth snapshot (recordings interleave them with stream messages).
    DepthSnapshot { last_update_id: u64 },
}

/// Why a message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("stream {stream}: {error}")]
    Payload { stream: String, error: String },
    #[error("stream {0}: not a stream kind sigcast reads")]
    UnknownStream(String),
    #[error("message is neither a stream event nor a control reply")]
    Unrecognized,
}

/// The stream kinds sigcast reads, from the part of a stream name after the first `@`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Trade,
    AggTrade,
    Kline(Interval),
    ContinuousKline(Interval),
    BookTicker,
    Ticker,
    Depth,
}

impl StreamKind {
    /// Classifies a stream name such as `btcusdt@kline_1m` or `btcusdt@depth@100ms`.
    pub fn of(stream: &str) -> Option<StreamKind> {
        let (_, kind) = stream.split_once('@')?;
        Some(match kind {
            "trade" => StreamKind::Trade,
            "aggTrade" => StreamKind::AggTrade,
            "bookTicker" => StreamKind::BookTicker,
            "ticker" => StreamKind::Ticker,
            k if k.starts_with("kline_") => StreamKind::Kline(k[6..].parse().ok()?),
            k if k.starts_with("continuousKline_") => {
                StreamKind::ContinuousKline(k[16..].parse().ok()?)
            }
            // Diff depth at any speed: depth, depth@100ms, depth@0ms, ...
            k if k == "depth" || k.starts_with("depth@") => StreamKind::Depth,
            _ => return None,
        })
    }
}

/// Parses one message received at `received_at` from a `market` connection.
pub fn parse(market: Market, text: &str, received_at: SystemTime) -> Result<Parsed, ParseError> {
    let envelope: wire::Envelope =
        serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    if let (Some(stream), Some(data)) = (envelope.stream, envelope.data) {
        let kind =
            StreamKind::of(stream).ok_or_else(|| ParseError::UnknownStream(stream.into()))?;
        return event(market, kind, data.get(), received_at)
            .map(Parsed::Event)
            .map_err(|error| ParseError::Payload {
                stream: stream.to_string(),
                error,
            });
    }
    let id = envelope.id.and_then(|raw| raw.get().parse::<i64>().ok());
    if let Some(code) = envelope.code {
        return Ok(Parsed::Error {
            id,
            code,
            message: envelope.msg.map(|m| m.into_owned()).unwrap_or_default(),
        });
    }
    if envelope.id.is_some() {
        let result = match envelope.result {
            None => None,
            Some(raw) => Some(
                serde_json::from_str::<Vec<String>>(raw.get())
                    .map_err(|e| ParseError::Json(e.to_string()))?,
            ),
        };
        return Ok(Parsed::Reply { id, result });
    }
    if envelope.e == Some("serverShutdown") {
        return Ok(Parsed::ServerShutdown {
            time_ms: envelope.event_time.unwrap_or(0),
        });
    }
    if let Some(last_update_id) = envelope.last_update_id {
        return Ok(Parsed::DepthSnapshot { last_update_id });
    }
    Err(ParseError::Unrecognized)
}

fn decode<'a, T: serde::Deserialize<'a>>(data: &'a str) -> Result<T, String> {
    serde_json::from_str(data).map_err(|e| e.to_string())
}

/// The longest number sigcast reads from Binance. Its prices and quantities are at most about
/// 30 characters. The limit matters: rust_decimal parses one byte per call and relies on the
/// compiler turning those into jumps, so a long enough number (leading zeros, `_` separators)
/// overflowed the stack of a build that keeps the frames.
pub(crate) const MAX_DECIMAL_LEN: usize = 64;

/// An exact decimal from Binance's text, refused if it is longer than [`MAX_DECIMAL_LEN`].
pub(crate) fn decimal(s: &str) -> Result<Decimal, String> {
    if s.len() > MAX_DECIMAL_LEN {
        return Err(format!(
            "a {}-byte number is too long (at most {MAX_DECIMAL_LEN})",
            s.len()
        ));
    }
    Decimal::from_str_exact(s).map_err(|_| format!("{s:?} is not a decimal"))
}

/// [`decimal`], its error naming the field.
fn dec(field: &'static str, s: &str) -> Result<Decimal, String> {
    decimal(s).map_err(|e| format!("field {field}: {e}"))
}

fn levels(raw: &[[&str; 2]]) -> Result<Vec<Level>, String> {
    raw.iter()
        .map(|[p, q]| Ok((dec("price level", p)?, dec("level quantity", q)?)))
        .collect()
}

fn event(
    market: Market,
    kind: StreamKind,
    data: &str,
    received_at: SystemTime,
) -> Result<MarketEvent, String> {
    let make = |symbol: &str, exchange_time_ms: i64, kind: MarketEventKind| MarketEvent {
        market,
        symbol: symbol.into(),
        exchange_time_ms,
        received_at,
        kind,
    };
    Ok(match (kind, market) {
        (StreamKind::Trade, Market::Spot) => {
            let w: wire::SpotTrade = decode(data)?;
            make(w.s, w.event_time, trade(w.t, w.p, w.q, w.trade_time, w.m)?)
        }
        (StreamKind::Trade, Market::Futures) => {
            let w: wire::FuturesTrade = decode(data)?;
            make(w.s, w.event_time, trade(w.t, w.p, w.q, w.trade_time, w.m)?)
        }
        (StreamKind::AggTrade, _) => {
            let w: wire::AggTrade = decode(data)?;
            make(
                w.s,
                w.event_time,
                MarketEventKind::AggTrade(AggTrade {
                    id: w.a,
                    price: dec("p", w.p)?,
                    quantity: dec("q", w.q)?,
                    first_trade_id: w.f,
                    last_trade_id: w.l,
                    time_ms: w.trade_time,
                    buyer_is_maker: w.m,
                }),
            )
        }
        (StreamKind::Kline(_) | StreamKind::ContinuousKline(_), _) => {
            let w: wire::KlineEvent = decode(data)?;
            let contract = match (kind, w.ct) {
                (StreamKind::ContinuousKline(_), Some(ct)) => Some(contract_type(ct)?),
                (StreamKind::ContinuousKline(_), None) => return Err("missing field `ct`".into()),
                _ => None,
            };
            let symbol = w.s.or(w.ps).ok_or("missing field `s`")?;
            make(
                symbol,
                w.event_time,
                MarketEventKind::Kline(kline(&w.k, contract)?),
            )
        }
        (StreamKind::BookTicker, Market::Spot) => {
            let w: wire::SpotBookTicker = decode(data)?;
            // Spot book tickers carry no event time; the receive time stands in.
            let time = received_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            make(w.s, time, book(w.u, w.b, w.bid_qty, w.a, w.ask_qty)?)
        }
        (StreamKind::BookTicker, Market::Futures) => {
            let w: wire::FuturesBookTicker = decode(data)?;
            make(
                w.s,
                w.event_time,
                book(w.u, w.b, w.bid_qty, w.a, w.ask_qty)?,
            )
        }
        (StreamKind::Ticker, _) => {
            let w: wire::Ticker = decode(data)?;
            make(
                w.s,
                w.event_time,
                MarketEventKind::Ticker(Ticker24h {
                    price_change: dec("p", w.p)?,
                    price_change_percent: dec("P", w.change_percent)?,
                    weighted_average: dec("w", w.w)?,
                    last_price: dec("c", w.c)?,
                    last_quantity: dec("Q", w.last_qty)?,
                    open: dec("o", w.o)?,
                    high: dec("h", w.h)?,
                    low: dec("l", w.l)?,
                    volume: dec("v", w.v)?,
                    quote_volume: dec("q", w.q)?,
                    open_time_ms: w.open_time,
                    close_time_ms: w.close_time,
                    first_trade_id: w.first_id,
                    last_trade_id: w.last_id,
                    trades: w.n,
                }),
            )
        }
        (StreamKind::Depth, Market::Spot) => {
            let w: wire::SpotDepth = decode(data)?;
            let update = depth(w.first_update_id, w.u, None, &w.b, &w.a)?;
            make(w.s, w.event_time, update)
        }
        (StreamKind::Depth, Market::Futures) => {
            let w: wire::FuturesDepth = decode(data)?;
            let update = depth(w.first_update_id, w.u, Some(w.pu), &w.b, &w.a)?;
            make(w.s, w.event_time, update)
        }
    })
}

fn trade(id: u64, p: &str, q: &str, time_ms: i64, m: bool) -> Result<MarketEventKind, String> {
    Ok(MarketEventKind::Trade(Trade {
        id,
        price: dec("p", p)?,
        quantity: dec("q", q)?,
        time_ms,
        buyer_is_maker: m,
    }))
}

fn depth(
    first: u64,
    last: u64,
    previous: Option<u64>,
    bids: &[[&str; 2]],
    asks: &[[&str; 2]],
) -> Result<MarketEventKind, String> {
    Ok(MarketEventKind::Depth(DepthUpdate {
        first_update_id: first,
        final_update_id: last,
        previous_final_update_id: previous,
        bids: levels(bids)?,
        asks: levels(asks)?,
    }))
}

fn book(u: u64, b: &str, bq: &str, a: &str, aq: &str) -> Result<MarketEventKind, String> {
    Ok(MarketEventKind::BookTicker(BookTicker {
        update_id: u,
        bid_price: dec("b", b)?,
        bid_quantity: dec("B", bq)?,
        ask_price: dec("a", a)?,
        ask_quantity: dec("A", aq)?,
    }))
}

fn contract_type(ct: &str) -> Result<ContractType, String> {
    match ct {
        "PERPETUAL" => Ok(ContractType::Perpetual),
        "CURRENT_QUARTER" => Ok(ContractType::CurrentQuarter),
        "NEXT_QUARTER" => Ok(ContractType::NextQuarter),
        other => Err(format!("unknown contract type {other:?}")),
    }
}

fn kline(k: &wire::Kline, contract: Option<ContractType>) -> Result<Kline, String> {
    Ok(Kline {
        interval: Interval::from_str(k.i).map_err(|e| e.to_string())?,
        open_time_ms: k.t,
        close_time_ms: k.close_time,
        first_trade_id: k.f,
        last_trade_id: k.last_trade_id,
        open: dec("o", k.o)?,
        high: dec("h", k.h)?,
        low: dec("l", k.l)?,
        close: dec("c", k.c)?,
        volume: dec("v", k.v)?,
        quote_volume: dec("q", k.q)?,
        trades: k.n,
        taker_buy_volume: dec("V", k.taker_buy_volume)?,
        taker_buy_quote_volume: dec("Q", k.taker_buy_quote_volume)?,
        closed: k.x,
        contract,
    })
}

#[cfg(test)]
mod tests;
