//! Checkpoints: the marks a restart needs to take the same equity samples. A live ledger's
//! curve is sampled from market prices the journal does not hold; a mark that took a sample,
//! or priced a symbol for the first time, is kept beside the journal with the prices it
//! sampled, and replayed in its place among the signals after a restart.

use serde::{Deserialize, Serialize};

use super::Ledger;
use crate::market::Market;

/// One kept mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last `seq` traded before it: signals up to here are replayed first.
    pub after_seq: u64,
    pub market: Market,
    pub symbol: String,
    pub time_ms: i64,
    pub price: f64,
    /// Held symbols' latest prices just before it, each on the market its book is marked
    /// by, which its sample marked them at.
    pub prices: Vec<(Market, String, f64)>,
}

impl Ledger {
    /// [`Ledger::mark`], and the checkpoint a restart needs when this mark takes a sample or
    /// is its symbol's first.
    pub fn mark_checked(
        &mut self,
        market: Market,
        symbol: &str,
        time_ms: i64,
        price: f64,
    ) -> Option<Checkpoint> {
        if !price.is_finite() || price <= 0.0 {
            return None;
        }
        let first = !self.priced(market, symbol);
        let samples = self
            .minute
            .is_none_or(|last| time_ms.div_euclid(self.period_ms()) > last);
        if !first && !samples {
            self.mark(market, symbol, time_ms, price);
            return None;
        }
        let prices = if samples {
            self.held_prices()
        } else {
            Vec::new()
        };
        self.mark(market, symbol, time_ms, price);
        Some(Checkpoint {
            after_seq: self.last_seq,
            market,
            symbol: symbol.to_string(),
            time_ms,
            price,
            prices,
        })
    }

    /// Takes a kept mark again: the prices it sampled, then the mark itself.
    pub fn restore(&mut self, checkpoint: &Checkpoint) {
        for (market, symbol, price) in &checkpoint.prices {
            if let Some(mark) = self.prices[*market as usize].get_mut(symbol) {
                mark.last = *price;
            }
        }
        self.mark(
            checkpoint.market,
            &checkpoint.symbol,
            checkpoint.time_ms,
            checkpoint.price,
        );
    }

    /// The latest price of every symbol some strategy has a book in, on the book's market.
    fn held_prices(&self) -> Vec<(Market, String, f64)> {
        let mut held: Vec<(Market, String, f64)> = Vec::new();
        for account in self.accounts.values() {
            for (symbol, sampled) in &account.books {
                let market = sampled.market;
                if let Some(mark) = self.prices[market as usize].get(symbol)
                    && !held.iter().any(|(m, s, _)| *m == market && s == symbol)
                {
                    held.push((market, symbol.clone(), mark.last));
                }
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{Side, Signal};

    fn signal(symbol: &str, side: Side, price: f64, time_s: i64) -> Signal {
        Signal {
            side,
            symbol: symbol.into(),
            price,
            timestamp: time_s,
            strategy: "s".into(),
            interval: "1m".into(),
            reason: String::new(),
        }
    }

    /// A record rebuilt from its signals and checkpoints equals the live one exactly: every
    /// equity sample, every figure. From the signals alone (each marking at its own price,
    /// as before checkpoints) the curve is another.
    #[test]
    fn signals_and_checkpoints_rebuild_the_same_record() {
        let mut live = Ledger::default();
        let (mut checkpoints, mut signals) = (Vec::new(), Vec::new());
        let mut seq = 0;
        // Three hours of marks every 10 s on two symbols, a signal every 7 minutes.
        for step in 0..1_080i64 {
            let t = 1_720_000_000_000 + step * 10_000;
            let wave = (step as f64 / 40.0).sin();
            for (symbol, base) in [("BTCUSDT", 60_000.0), ("ETHUSDT", 3_000.0)] {
                let price = base * (1.0 + 0.02 * wave);
                checkpoints.extend(live.mark_checked(Market::Spot, symbol, t, price));
            }
            if step % 42 == 41 {
                seq += 1;
                let symbol = if seq % 3 == 0 { "ETHUSDT" } else { "BTCUSDT" };
                let side = if seq % 2 == 1 { Side::Buy } else { Side::Sell };
                let base = if symbol == "BTCUSDT" {
                    60_000.0
                } else {
                    3_000.0
                };
                let price = base * (1.0 + 0.02 * wave);
                let s = signal(symbol, side, price, t / 1000);
                live.trade(&s, seq);
                signals.push((seq, s));
            }
        }
        // End on a sample, so both stop at the same mark.
        checkpoints.extend(live.mark_checked(
            Market::Spot,
            "BTCUSDT",
            1_720_000_000_000 + 1_080 * 10_000 + 60_000,
            61_000.0,
        ));
        assert!(
            checkpoints.len() > 180,
            "a sample a minute, and each symbol's first"
        );

        let mut rebuilt = Ledger::default();
        let mut pending = signals.iter().peekable();
        for c in &checkpoints {
            while let Some((seq, s)) = pending.next_if(|(seq, _)| *seq <= c.after_seq) {
                rebuilt.trade(s, *seq);
            }
            rebuilt.restore(c);
        }
        for (seq, s) in pending {
            rebuilt.trade(s, *seq);
        }
        let json = |l: &Ledger| serde_json::to_value(l.report()).unwrap();
        assert_eq!(json(&rebuilt), json(&live));

        let mut coarse = Ledger::default();
        for (seq, s) in &signals {
            coarse.mark_at_signal(s);
            coarse.trade(s, *seq);
        }
        let curve = |l: &Ledger| l.report().strategies[0].equity.clone();
        assert_ne!(curve(&coarse), curve(&live), "the test tells the two apart");
    }
}
