//! The headline figures per strategy (total return, max drawdown, closed trades), computed
//! from the ledger as it stands, without the copy and the whole report a `/metrics` scrape
//! would otherwise pay for three gauges.

use super::{Ledger, equity, figures};

/// One strategy's headline figures, equal to its report's.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub strategy: String,
    pub total_return_pct: f64,
    pub max_drawdown_pct: f64,
    pub closed_trades: usize,
}

impl Ledger {
    /// Every strategy's headline figures, as [`Ledger::report`] would give them.
    pub fn headlines(&self) -> Vec<Headline> {
        let now = self.now_ms;
        let final_sample = self.times.last().is_none_or(|t| *t < now);
        let mut times = self.times.clone();
        if final_sample {
            times.push(now);
        }
        self.accounts
            .iter()
            .map(|(name, account)| {
                let settings = &account.settings;
                let (mut pnl_now, mut closed_trades) = (0.0, 0);
                for (symbol, sampled) in &account.books {
                    let book = &sampled.book;
                    let open = match (
                        book.open(),
                        self.prices[sampled.market as usize].get(symbol),
                    ) {
                        (Some(trade), Some(mark)) => trade.pnl_at(mark.last, settings).0,
                        (Some(trade), None) => trade.pnl,
                        (None, _) => 0.0,
                    };
                    pnl_now += book.realized + open;
                    closed_trades += book.trades.len() - usize::from(book.open().is_some());
                }
                let mut pnl = account.pnl.clone();
                if final_sample {
                    pnl.push(pnl_now);
                }
                let curve = equity(&times, account.start, &pnl, settings.capital);
                let end = curve.last().map_or(settings.capital + pnl_now, |p| p.1);
                Headline {
                    strategy: name.clone(),
                    total_return_pct: (end / settings.capital - 1.0) * 100.0,
                    max_drawdown_pct: figures::drawdown(&curve).0,
                    closed_trades,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Rules;
    use crate::market::Market;
    use crate::strategy::Side;

    /// Over hours of marks and signals on two symbols, some positions left open (one on a
    /// symbol whose price moved after its last sample), the headlines are the report's.
    #[test]
    fn headlines_equal_the_reports_figures() {
        let mut ledger = Ledger::new(Rules::default());
        for step in 0..2_000i64 {
            let t = 1_720_000_000_000 + step * 7_000;
            let wave = (step as f64 / 60.0).sin();
            for (symbol, base) in [("BTCUSDT", 60_000.0), ("ETHUSDT", 3_000.0)] {
                ledger.mark(Market::Spot, symbol, t, base * (1.0 + 0.03 * wave));
            }
            if step % 37 == 5 {
                for (i, strategy) in ["a", "b", "c"].into_iter().enumerate() {
                    let symbol = if (step / 74 + i as i64) % 2 == 0 {
                        "BTCUSDT"
                    } else {
                        "ETHUSDT"
                    };
                    let side = if (step / 37 + i as i64) % 2 == 0 {
                        Side::Buy
                    } else {
                        Side::Sell
                    };
                    let price = if symbol == "BTCUSDT" {
                        60_000.0
                    } else {
                        3_000.0
                    } * (1.0 + 0.03 * wave);
                    ledger.signal(strategy, symbol, side, price, step as u64, t);
                }
            }
        }
        let report = ledger.report();
        let headlines = ledger.headlines();
        assert_eq!(headlines.len(), 3);
        assert!(headlines.iter().any(|h| h.closed_trades > 10));
        assert!(headlines.iter().any(|h| h.max_drawdown_pct > 0.0));
        assert!(report.strategies.iter().any(|s| s.figures.open_trades > 0));
        for (h, s) in headlines.iter().zip(&report.strategies) {
            assert_eq!(h.strategy, s.strategy);
            assert_eq!(h.closed_trades, s.figures.closed_trades, "{}", h.strategy);
            assert_eq!(
                h.total_return_pct, s.figures.total_return_pct,
                "{}",
                h.strategy
            );
            assert_eq!(
                h.max_drawdown_pct, s.figures.max_drawdown_pct,
                "{}",
                h.strategy
            );
        }
    }
}
