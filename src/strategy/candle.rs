//! Time-bucketed OHLC candles built from trades, on exchange time.

/// A candle; `close_time_ms` is the first millisecond after its bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub open_time_ms: i64,
    pub close_time_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Builds candles of one interval; a candle closes when the first trade of a later bucket arrives.
#[derive(Debug, Clone)]
pub struct CandleBuilder {
    interval_ms: i64,
    current: Option<Candle>,
}

impl CandleBuilder {
    pub fn new(interval_ms: i64) -> Self {
        assert!(interval_ms > 0, "candle interval must be positive");
        Self {
            interval_ms,
            current: None,
        }
    }

    /// Adds a trade; returns the candle it closed, if any. Late trades join the open candle.
    pub fn push(&mut self, time_ms: i64, price: f64, quantity: f64) -> Option<Candle> {
        let open_time = time_ms - time_ms.rem_euclid(self.interval_ms);
        match &mut self.current {
            Some(c) if open_time <= c.open_time_ms => {
                c.high = c.high.max(price);
                c.low = c.low.min(price);
                c.close = price;
                c.volume += quantity;
                None
            }
            slot => {
                let closed = slot.take();
                *slot = Some(Candle {
                    open_time_ms: open_time,
                    close_time_ms: open_time + self.interval_ms,
                    open: price,
                    high: price,
                    low: price,
                    close: price,
                    volume: quantity,
                });
                closed
            }
        }
    }

    /// Forgets the open candle (after a gap its contents are incomplete).
    pub fn reset(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_on_next_bucket() {
        let mut b = CandleBuilder::new(1000);
        assert_eq!(b.push(1_000, 10.0, 1.0), None);
        assert_eq!(b.push(1_500, 12.0, 1.0), None);
        assert_eq!(b.push(1_999, 9.0, 2.0), None);
        assert_eq!(b.push(900, 11.0, 1.0), None, "late trade joins open candle");
        let c = b.push(2_000, 13.0, 1.0).unwrap();
        assert_eq!(
            (
                c.open_time_ms,
                c.close_time_ms,
                c.open,
                c.high,
                c.low,
                c.close,
                c.volume
            ),
            (1_000, 2_000, 10.0, 12.0, 9.0, 11.0, 5.0)
        );
    }
}
