//! Filling gaps through REST: aggTrades by id, klines by time, and catching every aggTrade
//! stream up after a reconnect. What cannot be recovered becomes a gap event.

use std::time::SystemTime;

use super::{Shard, gap_event, symbol_of};
use crate::market::binance::StreamKind;
use crate::market::binance::live::rest::PAGE;
use crate::market::binance::live::sequence::Admit;
use crate::market::{AggTrade, Interval, MarketEvent, MarketEventKind};

impl Shard {
    /// After a reconnect, fetches every aggTrade stream's missed trades at once, so a trade
    /// made while disconnected arrives even if no later trade reveals the gap. A stream that
    /// has not traded since it was subscribed starts from Binance's most recent page, so its
    /// first trades are not lost either. (Where history has expired, the next live trade
    /// reports the gap.)
    ///
    /// On the first connection (`reconnect == false`) only streams resumed from an earlier
    /// run are caught up: they fetch what was traded while sigcast was stopped.
    pub(super) async fn catch_up(&mut self, reconnect: bool) -> bool {
        let resume: std::collections::HashMap<String, u64> = self
            .sequencer
            .agg_trade_resume_points()
            .into_iter()
            .collect();
        for symbol in self.agg_trade_symbols() {
            let (from, resumed) = match resume.get(&symbol) {
                Some(next) => (*next, true),
                None if !reconnect => continue,
                None => match self.recent_agg_trades(&symbol).await {
                    Some(Some(next)) => (next, false),
                    Some(None) => continue, // no trade to resume from
                    None => return false,
                },
            };
            let Some(next) = self.fetch_agg_trades(&symbol, from, None).await else {
                return false;
            };
            if !reconnect {
                tracing::info!(shard = %self.spec.name, %symbol, from_id = from, trades = next - from, "resumed where the last run stopped: trades made meanwhile fetched");
            } else if resumed && next > from {
                // Trades made while disconnected: a hole, filled before anyone saw it.
                self.stats.gap_detected();
                self.stats.gap_backfilled();
            }
        }
        true
    }

    /// The symbols of this shard's aggTrade streams.
    fn agg_trade_symbols(&self) -> Vec<String> {
        let mut symbols: Vec<String> = self
            .spec
            .streams
            .iter()
            .filter(|s| StreamKind::of(s) == Some(StreamKind::AggTrade))
            .map(|s| symbol_of(s))
            .collect();
        symbols.sort();
        symbols.dedup();
        symbols
    }

    /// Passes Binance's most recent aggTrades of `symbol` on; returns the next id to ask for
    /// (`Some(None)` when it has none), or `None` once nobody listens any more.
    async fn recent_agg_trades(&mut self, symbol: &str) -> Option<Option<u64>> {
        let rows = match self.rest.agg_trades(self.spec.market, symbol, None).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(shard = %self.spec.name, %symbol, error = %e, "catch-up failed");
                return Some(None);
            }
        };
        let mut next = None;
        for t in rows {
            next = Some(t.id + 1);
            if !self.pass_agg_trade(symbol, t).await {
                return None;
            }
        }
        Some(next)
    }

    /// Passes one REST aggTrade through the sequencer; false once nobody listens any more.
    async fn pass_agg_trade(&mut self, symbol: &str, t: AggTrade) -> bool {
        let e = MarketEvent {
            market: self.spec.market,
            symbol: symbol.into(),
            exchange_time_ms: t.time_ms,
            received_at: SystemTime::now(),
            kind: MarketEventKind::AggTrade(t),
        };
        self.sequencer.admit(&e) != Admit::Emit || self.out.send(e).await.is_ok()
    }

    /// Fills aggTrades `from_id..before_id`, then passes `event` on (after a gap event when
    /// the history could not be had).
    pub(super) async fn backfill_trades(
        &mut self,
        event: MarketEvent,
        from_id: u64,
        before_id: u64,
    ) -> bool {
        tracing::info!(shard = %self.spec.name, symbol = %event.symbol, from_id, before_id, "backfilling aggTrades");
        let Some(next_id) = self
            .fetch_agg_trades(&event.symbol, from_id, Some(before_id))
            .await
        else {
            return false;
        };
        self.finish_backfill(
            event,
            next_id >= before_id,
            "aggTrade",
            next_id.saturating_sub(1),
        )
        .await
    }

    /// Fetches aggTrades of `symbol` from `from_id` (up to `before`, or until caught up) and
    /// passes each through the sequencer. Returns the next id still wanted, or `None` once
    /// nobody listens any more.
    async fn fetch_agg_trades(
        &mut self,
        symbol: &str,
        from_id: u64,
        before: Option<u64>,
    ) -> Option<u64> {
        let market = self.spec.market;
        let mut next_id = from_id;
        while before.is_none_or(|b| next_id < b) {
            let rows = match self.rest.agg_trades(market, symbol, Some(next_id)).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(shard = %self.spec.name, %symbol, error = %e, "aggTrade backfill failed");
                    break;
                }
            };
            // History that starts later than asked (older than Binance keeps) cannot fill it.
            if rows.first().is_some_and(|t| t.id != next_id) {
                break;
            }
            let full_page = rows.len() >= PAGE;
            for t in rows {
                if before.is_some_and(|b| t.id >= b) {
                    break;
                }
                next_id = t.id + 1;
                if !self.pass_agg_trade(symbol, t).await {
                    return None;
                }
            }
            if !full_page {
                break;
            }
        }
        Some(next_id)
    }

    /// Fills klines opening in `from_open_ms..before_open_ms`, then passes `event` on.
    pub(super) async fn backfill_klines(
        &mut self,
        event: MarketEvent,
        interval: Interval,
        from_open_ms: i64,
        before_open_ms: i64,
    ) -> bool {
        let fetched = self
            .rest
            .klines(
                event.market,
                &event.symbol,
                interval,
                from_open_ms,
                before_open_ms - 1,
            )
            .await;
        let mut complete = false;
        match fetched {
            Ok(klines) => {
                complete = klines.first().map(|k| k.open_time_ms) == Some(from_open_ms);
                for k in klines {
                    let e = MarketEvent {
                        market: event.market,
                        symbol: event.symbol.clone(),
                        exchange_time_ms: k.close_time_ms,
                        received_at: SystemTime::now(),
                        kind: MarketEventKind::Kline(k),
                    };
                    if self.sequencer.admit(&e) == Admit::Emit && self.out.send(e).await.is_err() {
                        return false;
                    }
                }
            }
            Err(e) => tracing::warn!(shard = %self.spec.name, error = %e, "kline backfill failed"),
        }
        self.finish_backfill(event, complete, "kline", from_open_ms.max(0) as u64)
            .await
    }

    /// Emits the event that revealed a gap: in order when the backfill closed it, else after
    /// an explicit gap event.
    async fn finish_backfill(
        &mut self,
        event: MarketEvent,
        complete: bool,
        stream: &'static str,
        after_id: u64,
    ) -> bool {
        match self.sequencer.admit(&event) {
            Admit::Emit if complete => {
                self.stats.gap_backfilled();
                self.out.send(event).await.is_ok()
            }
            // The history fetched reached past it: the gap is closed all the same.
            Admit::Duplicate => {
                self.stats.gap_backfilled();
                true
            }
            _ => {
                let gap = self.sequencer.give_up(&event, stream, after_id);
                tracing::warn!(shard = %self.spec.name, symbol = %event.symbol, stream, after = after_id, "backfill incomplete: gap");
                self.out.send(gap_event(&event, gap)).await.is_ok()
                    && self.out.send(event).await.is_ok()
            }
        }
    }
}
