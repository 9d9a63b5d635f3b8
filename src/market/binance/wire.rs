//! Binance's wire structs, borrowed from the message text, kept apart from the market model.
//!
//! Field names are Binance's single letters (case matters: `q` is quantity, `Q` taker-buy quote
//! volume). Where spot and USD-M futures differ, each has its own struct.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Any message on a combined-stream connection: a stream event, a control reply, an error,
/// `serverShutdown`, or (in recordings) a REST depth snapshot.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    #[serde(borrow)]
    pub stream: Option<&'a str>,
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    /// Control replies: `null` for SUBSCRIBE, a list for LIST_SUBSCRIPTIONS.
    #[serde(borrow)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    pub code: Option<i64>,
    #[serde(borrow)]
    pub msg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub e: Option<&'a str>,
    #[serde(rename = "E")]
    pub event_time: Option<i64>,
    #[serde(rename = "lastUpdateId")]
    pub last_update_id: Option<u64>,
}

/// Spot `<symbol>@trade`.
#[derive(Debug, Deserialize)]
pub struct SpotTrade<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    pub s: &'a str,
    pub t: u64,
    pub p: &'a str,
    pub q: &'a str,
    #[serde(rename = "T")]
    pub trade_time: i64,
    pub m: bool,
}

/// Futures `<symbol>@trade`: as spot, plus `X` (order type), without `M`.
#[derive(Debug, Deserialize)]
pub struct FuturesTrade<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    pub s: &'a str,
    pub t: u64,
    pub p: &'a str,
    pub q: &'a str,
    #[serde(rename = "T")]
    pub trade_time: i64,
    pub m: bool,
    /// `MARKET`, `LIQUIDATION`, ...; absent in older payloads.
    #[serde(rename = "X")]
    pub order_type: Option<&'a str>,
}

/// `<symbol>@aggTrade`, the same on both markets (spot adds `M`, futures `nq`/`st`; ignored).
#[derive(Debug, Deserialize)]
pub struct AggTrade<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    pub s: &'a str,
    pub a: u64,
    pub p: &'a str,
    pub q: &'a str,
    pub f: u64,
    pub l: u64,
    #[serde(rename = "T")]
    pub trade_time: i64,
    pub m: bool,
}

/// `<symbol>@kline_<i>` and futures `<pair>_<contract>@continuousKline_<i>`.
#[derive(Debug, Deserialize)]
pub struct KlineEvent<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Symbol (plain klines).
    pub s: Option<&'a str>,
    /// Pair (continuous klines).
    pub ps: Option<&'a str>,
    /// Contract type (continuous klines).
    pub ct: Option<&'a str>,
    #[serde(borrow)]
    pub k: Kline<'a>,
}

/// The `k` object of a kline event.
#[derive(Debug, Deserialize)]
pub struct Kline<'a> {
    pub t: i64,
    #[serde(rename = "T")]
    pub close_time: i64,
    pub i: &'a str,
    pub f: i64,
    #[serde(rename = "L")]
    pub last_trade_id: i64,
    pub o: &'a str,
    pub c: &'a str,
    pub h: &'a str,
    pub l: &'a str,
    pub v: &'a str,
    pub n: u64,
    pub x: bool,
    pub q: &'a str,
    #[serde(rename = "V")]
    pub taker_buy_volume: &'a str,
    #[serde(rename = "Q")]
    pub taker_buy_quote_volume: &'a str,
}

/// Spot `<symbol>@bookTicker`: no event type or time.
#[derive(Debug, Deserialize)]
pub struct SpotBookTicker<'a> {
    pub u: u64,
    pub s: &'a str,
    pub b: &'a str,
    #[serde(rename = "B")]
    pub bid_qty: &'a str,
    pub a: &'a str,
    #[serde(rename = "A")]
    pub ask_qty: &'a str,
}

/// Futures `<symbol>@bookTicker`: with event and transaction time.
#[derive(Debug, Deserialize)]
pub struct FuturesBookTicker<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "T")]
    pub transaction_time: i64,
    pub u: u64,
    pub s: &'a str,
    pub b: &'a str,
    #[serde(rename = "B")]
    pub bid_qty: &'a str,
    pub a: &'a str,
    #[serde(rename = "A")]
    pub ask_qty: &'a str,
}

/// `<symbol>@ticker` (24 h rolling window).
#[derive(Debug, Deserialize)]
pub struct Ticker<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    pub s: &'a str,
    pub p: &'a str,
    #[serde(rename = "P")]
    pub change_percent: &'a str,
    pub w: &'a str,
    pub c: &'a str,
    #[serde(rename = "Q")]
    pub last_qty: &'a str,
    pub o: &'a str,
    pub h: &'a str,
    pub l: &'a str,
    pub v: &'a str,
    pub q: &'a str,
    #[serde(rename = "O")]
    pub open_time: i64,
    #[serde(rename = "C")]
    pub close_time: i64,
    #[serde(rename = "F")]
    pub first_id: i64,
    #[serde(rename = "L")]
    pub last_id: i64,
    pub n: u64,
}

/// Spot `<symbol>@depth[@100ms]`.
#[derive(Debug, Deserialize)]
pub struct SpotDepth<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    pub s: &'a str,
    #[serde(rename = "U")]
    pub first_update_id: u64,
    pub u: u64,
    #[serde(borrow)]
    pub b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    pub a: Vec<[&'a str; 2]>,
}

/// Futures `<symbol>@depth[@Nms]`: adds transaction time and `pu`, the previous `u`.
#[derive(Debug, Deserialize)]
pub struct FuturesDepth<'a> {
    #[serde(rename = "E")]
    pub event_time: i64,
    pub s: &'a str,
    #[serde(rename = "U")]
    pub first_update_id: u64,
    pub u: u64,
    pub pu: u64,
    #[serde(borrow)]
    pub b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    pub a: Vec<[&'a str; 2]>,
}

/// One element of `GET /api/v3/aggTrades` or `/fapi/v1/aggTrades`.
#[derive(Debug, Deserialize)]
pub struct RestAggTrade {
    pub a: u64,
    pub p: String,
    pub q: String,
    pub f: u64,
    pub l: u64,
    #[serde(rename = "T")]
    pub trade_time: i64,
    pub m: bool,
}

/// One element of `GET /api/v3/klines` or `/fapi/v1/klines`: open time, o, h, l, c, volume,
/// close time, quote volume, trades, taker buy base, taker buy quote, ignore.
pub type RestKline = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    u64,
    String,
    String,
    serde_json::Value,
);
