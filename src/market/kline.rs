//! Building klines from trades or aggregate trades, in exact decimal arithmetic, so the
//! result equals Binance's own kline events field for field.

use rust_decimal::Decimal;

use super::{AggTrade, Interval, Kline, Trade};

/// Builds klines of one fixed interval from a symbol's trades, in trade-id order.
#[derive(Debug, Clone)]
pub struct KlineBuilder {
    interval: Interval,
    millis: i64,
    /// The kline being built; `closed` is false until a later trade starts the next one.
    current: Option<Kline>,
}

/// An interval that has no fixed length (weeks align to Mondays, months vary).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("klines of {0} cannot be built from trades; use 1s to 1d")]
pub struct UnsupportedInterval(pub Interval);

impl KlineBuilder {
    pub fn new(interval: Interval) -> Result<Self, UnsupportedInterval> {
        let millis = interval
            .fixed_millis()
            .ok_or(UnsupportedInterval(interval))?;
        Ok(Self {
            interval,
            millis,
            current: None,
        })
    }

    /// Forgets the kline being built (after a gap its contents are incomplete).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The interval being built.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Continues `kline` (the open one from REST history) with the trades that follow.
    pub fn seed(&mut self, mut kline: Kline) {
        kline.closed = false;
        self.current = Some(kline);
    }

    /// The kline being built, if any trade arrived yet.
    pub fn current(&self) -> Option<&Kline> {
        self.current.as_ref()
    }

    /// Adds an aggregate trade; returns the previous kline, closed, when this one starts a new one.
    pub fn push_agg(&mut self, t: &AggTrade) -> Option<Kline> {
        let trades = t
            .last_trade_id
            .saturating_sub(t.first_trade_id)
            .saturating_add(1);
        self.push(
            t.time_ms,
            t.price,
            t.quantity,
            t.first_trade_id,
            t.last_trade_id,
            trades,
            t.buyer_is_maker,
        )
    }

    /// Adds a single trade; returns the previous kline, closed, when this one starts a new one.
    pub fn push_trade(&mut self, t: &Trade) -> Option<Kline> {
        self.push(
            t.time_ms,
            t.price,
            t.quantity,
            t.id,
            t.id,
            1,
            t.buyer_is_maker,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        time_ms: i64,
        price: Decimal,
        quantity: Decimal,
        first_id: u64,
        last_id: u64,
        trades: u64,
        buyer_is_maker: bool,
    ) -> Option<Kline> {
        // Arithmetic saturates: numbers at the edges of their types are nonsense from
        // upstream, and must not panic the task that builds klines.
        let open_time = time_ms.saturating_sub(time_ms.rem_euclid(self.millis));
        let quote = price.saturating_mul(quantity);
        // The taker bought when the buyer was not the maker.
        let (taker_base, taker_quote) = if buyer_is_maker {
            (Decimal::ZERO, Decimal::ZERO)
        } else {
            (quantity, quote)
        };
        if let Some(k) = &mut self.current {
            // A late trade (earlier bucket) still belongs to the open kline: ids are ordered.
            if open_time <= k.open_time_ms {
                k.high = k.high.max(price);
                k.low = k.low.min(price);
                k.close = price;
                k.volume = k.volume.saturating_add(quantity);
                k.quote_volume = k.quote_volume.saturating_add(quote);
                k.trades = k.trades.saturating_add(trades);
                k.taker_buy_volume = k.taker_buy_volume.saturating_add(taker_base);
                k.taker_buy_quote_volume = k.taker_buy_quote_volume.saturating_add(taker_quote);
                k.last_trade_id = last_id as i64;
                return None;
            }
        }
        let next = Kline {
            interval: self.interval,
            open_time_ms: open_time,
            close_time_ms: open_time.saturating_add(self.millis - 1),
            first_trade_id: first_id as i64,
            last_trade_id: last_id as i64,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: quantity,
            quote_volume: quote,
            trades,
            taker_buy_volume: taker_base,
            taker_buy_quote_volume: taker_quote,
            closed: false,
            contract: None,
        };
        self.current.replace(next).map(|mut done| {
            done.closed = true;
            done
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn agg(id: u64, f: u64, l: u64, t: i64, p: &str, q: &str, m: bool) -> AggTrade {
        AggTrade {
            id,
            price: d(p),
            quantity: d(q),
            first_trade_id: f,
            last_trade_id: l,
            time_ms: t,
            buyer_is_maker: m,
        }
    }

    /// Upstream numbers at the edges of their types (the largest decimals, trade ids and
    /// times) saturate instead of panicking on overflow: a kline of such trades is nonsense,
    /// but the market task that builds it must keep running.
    #[test]
    fn extreme_trades_saturate_instead_of_panicking() {
        let max = Decimal::MAX.to_string();
        for (time, price, quantity) in [
            (60_000, max.as_str(), max.as_str()),
            (i64::MIN, "1", "1"),
            (i64::MAX, "1", "1"),
            (i64::MAX, max.as_str(), "-2"),
        ] {
            let mut b = KlineBuilder::new(Interval::M1).unwrap();
            for id in 0..3 {
                b.push_agg(&agg(id, 0, u64::MAX, time, price, quantity, id % 2 == 0));
            }
            let k = b.current().unwrap();
            assert_eq!(k.trades, u64::MAX, "{time} {price} {quantity}");
            assert!(k.open_time_ms <= time && k.close_time_ms >= k.open_time_ms);
        }
        let mut b = KlineBuilder::new(Interval::M1).unwrap();
        b.push_agg(&agg(1, 1, 1, 0, &max, &max, false));
        b.push_agg(&agg(2, 2, 2, 1, &max, &max, false));
        assert_eq!(b.current().unwrap().volume, Decimal::MAX);
    }

    #[test]
    fn aggregates_exactly() {
        let mut b = KlineBuilder::new(Interval::M1).unwrap();
        assert!(
            b.push_agg(&agg(1, 10, 12, 60_000, "1.01000", "100", false))
                .is_none()
        );
        assert!(
            b.push_agg(&agg(2, 13, 13, 60_500, "1.01100", "7", true))
                .is_none()
        );
        assert!(
            b.push_agg(&agg(3, 14, 15, 119_999, "1.00900", "3", false))
                .is_none()
        );
        let k = b
            .push_agg(&agg(4, 16, 16, 120_000, "1.02", "1", false))
            .unwrap();
        assert!(k.closed);
        assert_eq!((k.open_time_ms, k.close_time_ms), (60_000, 119_999));
        assert_eq!((k.first_trade_id, k.last_trade_id, k.trades), (10, 15, 6));
        assert_eq!(
            (k.open, k.high, k.low, k.close),
            (d("1.01"), d("1.011"), d("1.009"), d("1.009"))
        );
        assert_eq!(k.volume, d("110"));
        // 101 + 7.077 + 3.027, to the last digit
        assert_eq!(k.quote_volume, d("111.104"));
        assert_eq!(k.taker_buy_volume, d("103"));
        assert_eq!(k.taker_buy_quote_volume, d("104.027"));
        let open = b.current().unwrap();
        assert_eq!((open.open_time_ms, open.closed), (120_000, false));
    }

    #[test]
    fn weekly_klines_are_refused() {
        assert!(KlineBuilder::new(Interval::W1).is_err());
    }
}
