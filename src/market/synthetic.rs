//! The synthetic market: a seeded random walk over a few symbols, for demos and tests offline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use rust_decimal::Decimal;

use super::{Market, MarketEvent, MarketEventKind, Trade};

/// A deterministic price walk: the same seed and symbols give the same trades.
pub struct RandomWalk {
    rng: StdRng,
    /// `(symbol, current price)`, walked in turn by a random pick.
    books: Vec<(super::Symbol, f64)>,
    next_trade_id: u64,
}

/// A plausible starting price for well-known symbols, 100 for the rest.
fn start_price(symbol: &str) -> f64 {
    match symbol {
        "BTCUSDT" => 75_000.0,
        "ETHUSDT" => 3_500.0,
        "SOLUSDT" => 150.0,
        "BNBUSDT" => 600.0,
        _ => 100.0,
    }
}

impl RandomWalk {
    pub fn new(symbols: &[String], seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            books: symbols
                .iter()
                .map(|s| (super::Symbol::from(s), start_price(s)))
                .collect(),
            next_trade_id: 1,
        }
    }

    /// The next trade, stamped with `now_ms` as its exchange time.
    pub fn next_event(&mut self, now_ms: i64) -> MarketEvent {
        let i = self.rng.random_range(0..self.books.len());
        // Log-normal step, ~5 bp per trade: crossovers on 1 s candles every few seconds.
        let (u1, u2): (f64, f64) = (self.rng.random::<f64>().max(1e-12), self.rng.random());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let (symbol, price) = &mut self.books[i];
        *price *= (normal * 0.0005).exp();
        // Prices in cents, quantities in thousandths, as exact decimals like Binance's.
        let cents = (*price * 100.0).round() as i64;
        let quantity = Decimal::new(self.rng.random_range(1..=1000), 3);
        let id = self.next_trade_id;
        self.next_trade_id += 1;
        MarketEvent {
            market: Market::Spot,
            symbol: symbol.clone(),
            exchange_time_ms: now_ms,
            received_at: SystemTime::now(),
            kind: MarketEventKind::Trade(Trade {
                id,
                price: Decimal::new(cents, 2),
                quantity,
                time_ms: now_ms,
                buyer_is_maker: self.rng.random(),
            }),
        }
    }
}

/// Runs the walk, one trade per `tick`, into a bounded channel until `stop` is cancelled
/// or the receiver is dropped.
pub fn spawn(
    symbols: Vec<String>,
    seed: u64,
    tick: Duration,
    stop: CancellationToken,
) -> mpsc::Receiver<MarketEvent> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut walk = RandomWalk::new(&symbols, seed);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            if tx.send(walk.next_event(now_ms)).await.is_err() {
                break;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_walk() {
        let symbols = vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()];
        let mut a = RandomWalk::new(&symbols, 7);
        let mut b = RandomWalk::new(&symbols, 7);
        for t in 0..1000 {
            let (ea, eb) = (a.next_event(t), b.next_event(t));
            assert_eq!((ea.price(), ea.symbol), (eb.price(), eb.symbol));
        }
        let mut c = RandomWalk::new(&symbols, 8);
        let differs = (0..100).any(|t| a.next_event(t).price() != c.next_event(t).price());
        assert!(differs);
    }

    #[test]
    fn prices_stay_positive_and_near_start() {
        let mut w = RandomWalk::new(&["BTCUSDT".to_string()], 1);
        for t in 0..100_000 {
            let p = w.next_event(t).price().unwrap();
            assert!(p > 30_000.0 && p < 150_000.0, "{p}");
        }
    }
}
