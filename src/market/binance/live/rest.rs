//! REST backfill: aggregate trades by id and klines by time, from spot or USD-M futures.

use std::time::Duration;

use super::super::decimal;
use super::super::wire::{RestAggTrade, RestKline};
use crate::market::{AggTrade, Interval, Kline, Market};

/// Binance returns at most this many rows per request.
pub const PAGE: usize = 1000;

/// Why a backfill request failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("GET {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("GET {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("GET {url}: unexpected body: {reason}")]
    Body { url: String, reason: String },
}

/// A REST client for both markets.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    spot: String,
    futures: String,
}

impl Rest {
    pub fn new(spot_base: &str, futures_base: &str, proxy: Option<&str>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured((*super::transport::client_tls()).clone())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("sigcast/", env!("CARGO_PKG_VERSION")));
        builder = match proxy {
            Some(p) => builder.proxy(reqwest::Proxy::all(p).map_err(|e| e.to_string())?),
            None => builder.no_proxy(),
        };
        Ok(Self {
            http: builder.build().map_err(|e| e.to_string())?,
            spot: spot_base.trim_end_matches('/').to_string(),
            futures: futures_base.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, market: Market, spot_path: &str, futures_path: &str, query: &str) -> String {
        match market {
            Market::Spot => format!("{}{spot_path}?{query}", self.spot),
            Market::Futures => format!("{}{futures_path}?{query}", self.futures),
        }
    }

    async fn get(&self, url: &str) -> Result<String, RestError> {
        let http = |reason: String| RestError::Http {
            url: url.to_string(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| http(e.to_string()))?;
        if !status.is_success() {
            return Err(RestError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        Ok(body)
    }

    /// Aggregate trades from id `from_id` on, or the most recent ones for `None`, up to
    /// [`PAGE`] of them, in id order.
    pub async fn agg_trades(
        &self,
        market: Market,
        symbol: &str,
        from_id: Option<u64>,
    ) -> Result<Vec<AggTrade>, RestError> {
        let from = from_id
            .map(|id| format!("&fromId={id}"))
            .unwrap_or_default();
        let url = self.url(
            market,
            "/api/v3/aggTrades",
            "/fapi/v1/aggTrades",
            &format!("symbol={symbol}{from}&limit={PAGE}"),
        );
        let body = self.get(&url).await?;
        let bad = |reason: String| RestError::Body {
            url: url.clone(),
            reason,
        };
        let rows: Vec<RestAggTrade> =
            serde_json::from_str(&body).map_err(|e| bad(e.to_string()))?;
        rows.into_iter()
            .map(|r| {
                Ok(AggTrade {
                    id: r.a,
                    price: decimal(&r.p).map_err(&bad)?,
                    quantity: decimal(&r.q).map_err(&bad)?,
                    first_trade_id: r.f,
                    last_trade_id: r.l,
                    time_ms: r.trade_time,
                    buyer_is_maker: r.m,
                })
            })
            .collect()
    }

    /// Klines whose open time lies in `start_ms..=end_ms`, up to [`PAGE`] of them.
    pub async fn klines(
        &self,
        market: Market,
        symbol: &str,
        interval: Interval,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Kline>, RestError> {
        let url = self.url(
            market,
            "/api/v3/klines",
            "/fapi/v1/klines",
            &format!(
                "symbol={symbol}&interval={interval}&startTime={start_ms}&endTime={end_ms}&limit={PAGE}"
            ),
        );
        let body = self.get(&url).await?;
        let bad = |reason: String| RestError::Body {
            url: url.clone(),
            reason,
        };
        let rows: Vec<RestKline> = serde_json::from_str(&body).map_err(|e| bad(e.to_string()))?;
        rows.into_iter()
            .map(|r| {
                Ok(Kline {
                    interval,
                    open_time_ms: r.0,
                    close_time_ms: r.6,
                    // REST klines do not name their trade ids.
                    first_trade_id: -1,
                    last_trade_id: -1,
                    open: decimal(&r.1).map_err(&bad)?,
                    high: decimal(&r.2).map_err(&bad)?,
                    low: decimal(&r.3).map_err(&bad)?,
                    close: decimal(&r.4).map_err(&bad)?,
                    volume: decimal(&r.5).map_err(&bad)?,
                    quote_volume: decimal(&r.7).map_err(&bad)?,
                    trades: r.8,
                    taker_buy_volume: decimal(&r.9).map_err(&bad)?,
                    taker_buy_quote_volume: decimal(&r.10).map_err(&bad)?,
                    closed: true,
                    contract: None,
                })
            })
            .collect()
    }
}
