//! One paper trade, and one strategy's position on one symbol that signals open and close.

use serde::Serialize;

use crate::config::ledger::{LedgerSettings, Positions};
use crate::strategy::Side;

/// Which way a position bets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Long,
    Short,
}

impl Direction {
    fn sign(self) -> f64 {
        match self {
            Direction::Long => 1.0,
            Direction::Short => -1.0,
        }
    }
}

/// A position and, once closed, how it ended. Prices are fills (the signal's price moved by
/// the slippage against the trader); fees are quote amounts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub direction: Direction,
    pub entry_seq: u64,
    pub entry_time_ms: i64,
    pub entry_price: f64,
    pub entry_fee: f64,
    pub exit_seq: Option<u64>,
    pub exit_time_ms: Option<i64>,
    pub exit_price: Option<f64>,
    pub exit_fee: f64,
    /// Base units held: the notional over the entry fill.
    pub quantity: f64,
    /// Quote P&L after both fees (unrealized, marked to the last price, while open).
    pub pnl: f64,
    /// `pnl` over the notional, percent.
    pub return_pct: f64,
}

impl Trade {
    pub fn is_open(&self) -> bool {
        self.exit_seq.is_none()
    }

    /// P&L if closed at `price` now (its fill and exit fee included), and the return.
    pub(super) fn pnl_at(&self, price: f64, settings: &LedgerSettings) -> (f64, f64, f64) {
        let fill = fill(price, self.closing_side(), settings);
        let exit_fee = self.quantity * fill * settings.fee();
        let gross = self.direction.sign() * self.quantity * (fill - self.entry_price);
        let pnl = gross - self.entry_fee - exit_fee;
        (pnl, exit_fee, fill)
    }

    fn closing_side(&self) -> Side {
        match self.direction {
            Direction::Long => Side::Sell,
            Direction::Short => Side::Buy,
        }
    }
}

/// The fill for a `side` at `price`: a buy pays the slippage, a sell gives it up.
pub fn fill(price: f64, side: Side, settings: &LedgerSettings) -> f64 {
    match side {
        Side::Buy => price * (1.0 + settings.slippage()),
        Side::Sell => price * (1.0 - settings.slippage()),
    }
}

/// A signal as the ledger takes it.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    pub side: Side,
    pub price: f64,
    pub seq: u64,
    pub time_ms: i64,
}

/// One strategy's trades on one symbol: at most one open, the last.
#[derive(Debug, Default, Clone)]
pub struct Book {
    pub trades: Vec<Trade>,
    /// Quote P&L of the closed trades.
    pub realized: f64,
    /// Time with a position open, closed spells only.
    pub exposed_ms: i64,
}

impl Book {
    /// The open position, if any.
    pub fn open(&self) -> Option<&Trade> {
        self.trades.last().filter(|t| t.is_open())
    }

    /// Applies a signal: closes what it reverses, opens what the mode allows. Returns whether
    /// a position is open afterwards.
    pub fn apply(&mut self, order: Order, settings: &LedgerSettings) -> bool {
        let open = self.open().map(|t| t.direction);
        let wanted = match (order.side, settings.positions) {
            (Side::Buy, _) => Some(Direction::Long),
            (Side::Sell, Positions::LongShort) => Some(Direction::Short),
            (Side::Sell, Positions::LongOnly) => None,
        };
        if open.is_some() && open == wanted {
            return true; // already there: a repeated signal changes nothing
        }
        if open.is_some() {
            self.close(order, settings);
        }
        if let Some(direction) = wanted {
            let entry = fill(order.price, order.side, settings);
            let quantity = settings.notional / entry;
            self.trades.push(Trade {
                direction,
                entry_seq: order.seq,
                entry_time_ms: order.time_ms,
                entry_price: entry,
                entry_fee: settings.notional * settings.fee(),
                exit_seq: None,
                exit_time_ms: None,
                exit_price: None,
                exit_fee: 0.0,
                quantity,
                pnl: -settings.notional * settings.fee(),
                return_pct: -settings.fee() * 100.0,
            });
        }
        wanted.is_some()
    }

    fn close(&mut self, order: Order, settings: &LedgerSettings) {
        let Some(trade) = self.trades.last_mut().filter(|t| t.is_open()) else {
            return;
        };
        let (pnl, exit_fee, exit_fill) = trade.pnl_at(order.price, settings);
        trade.exit_seq = Some(order.seq);
        trade.exit_time_ms = Some(order.time_ms);
        trade.exit_price = Some(exit_fill);
        trade.exit_fee = exit_fee;
        trade.pnl = pnl;
        trade.return_pct = pnl / settings.notional * 100.0;
        self.realized += pnl;
        self.exposed_ms += (order.time_ms - trade.entry_time_ms).max(0);
    }

    /// Marks the open position to `price`: its P&L as if closed now.
    pub fn mark(&mut self, price: f64, settings: &LedgerSettings) {
        if let Some(trade) = self.trades.last_mut().filter(|t| t.is_open()) {
            let (pnl, _, _) = trade.pnl_at(price, settings);
            trade.pnl = pnl;
            trade.return_pct = pnl / settings.notional * 100.0;
        }
    }

    /// The open position's P&L as last marked.
    pub fn unrealized(&self) -> f64 {
        self.open().map_or(0.0, |t| t.pnl)
    }

    /// Time with a position open up to `now_ms`.
    pub fn exposed_until(&self, now_ms: i64) -> i64 {
        self.exposed_ms + self.open().map_or(0, |t| (now_ms - t.entry_time_ms).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(side: Side, price: f64, seq: u64) -> Order {
        Order {
            side,
            price,
            seq,
            time_ms: seq as i64 * 60_000,
        }
    }

    fn settings(positions: Positions, fee_bps: f64, slippage_bps: f64) -> LedgerSettings {
        LedgerSettings {
            positions,
            fee_bps,
            slippage_bps,
            notional: 1_000.0,
            capital: 10_000.0,
        }
    }

    #[test]
    fn a_long_trade_by_hand() {
        // 10 bps fee, 10 bps slippage: buy at 100 fills at 100.1, 9.99001 units; sell at 110
        // fills at 109.89; fees 1.00 and 9.99001 * 109.89 * 0.001.
        let s = settings(Positions::LongOnly, 10.0, 10.0);
        let mut book = Book::default();
        assert!(book.apply(order(Side::Buy, 100.0, 1), &s));
        assert!(
            book.apply(order(Side::Buy, 105.0, 2), &s),
            "a repeat keeps it"
        );
        assert_eq!(book.trades.len(), 1);
        assert!(!book.apply(order(Side::Sell, 110.0, 3), &s));
        let t = &book.trades[0];
        let qty = 1_000.0 / 100.1;
        let exit_fee = qty * 109.89 * 0.001;
        let pnl = qty * (109.89 - 100.1) - 1.0 - exit_fee;
        assert!((t.quantity - qty).abs() < 1e-12);
        assert!((t.exit_price.unwrap() - 109.89).abs() < 1e-9);
        assert!((t.pnl - pnl).abs() < 1e-9, "{} vs {pnl}", t.pnl);
        assert!((t.return_pct - pnl / 10.0).abs() < 1e-9);
        assert_eq!((t.entry_seq, t.exit_seq), (1, Some(3)));
        assert_eq!(book.exposed_ms, 2 * 60_000);
        // Long only: a sell with nothing open opens nothing.
        assert!(!book.apply(order(Side::Sell, 120.0, 4), &s));
        assert_eq!(book.trades.len(), 1);
    }

    #[test]
    fn long_short_flips_and_marks() {
        let s = settings(Positions::LongShort, 0.0, 0.0);
        let mut book = Book::default();
        book.apply(order(Side::Sell, 100.0, 1), &s);
        book.mark(90.0, &s);
        assert!(
            (book.unrealized() - 100.0).abs() < 1e-9,
            "short 10 units, 10 down"
        );
        book.apply(order(Side::Buy, 80.0, 2), &s);
        assert_eq!(book.trades.len(), 2);
        assert_eq!(book.trades[0].direction, Direction::Short);
        assert!((book.trades[0].pnl - 200.0).abs() < 1e-9);
        assert_eq!(book.open().map(|t| t.direction), Some(Direction::Long));
        assert!((book.trades[1].quantity - 12.5).abs() < 1e-12);
        assert_eq!(book.exposed_until(5 * 60_000), 60_000 + 3 * 60_000);
    }
}
