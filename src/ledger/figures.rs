//! The figures traders read from a paper-traded record: returns, risk and their ratios, each
//! defined, with its formula, in docs/performance.md.

use serde::Serialize;

use super::trade::Trade;

/// Equity is sampled once a minute; Sharpe and Sortino are annualized over a year of
/// minutes, every day of it (crypto trades around the clock).
pub const PERIODS_PER_YEAR: f64 = 525_600.0;
const YEAR_MS: f64 = 365.0 * 86_400_000.0;

/// What the figures are computed from.
pub struct Record<'a> {
    /// Closed trades, in the order they closed.
    pub closed: &'a [&'a Trade],
    pub open: usize,
    pub unrealized: f64,
    pub capital: f64,
    /// `(Unix ms, equity)`, once a sampling period over the whole span, the last at its end.
    pub curve: &'a [(i64, f64)],
    /// Sampling periods in a year: [`PERIODS_PER_YEAR`] for one-minute samples (the ledger
    /// lengthens the period on a long record, see `ledger::MAX_SAMPLES`).
    pub periods_per_year: f64,
    /// Time with a position open.
    pub exposed_ms: i64,
    pub buy_and_hold_pct: Option<f64>,
}

/// Every figure of one strategy, or of one strategy on one symbol. `None` (JSON `null`) where
/// a figure is undefined: no closed trade, no losing trade, a flat curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub closed_trades: usize,
    pub open_trades: usize,
    pub win_rate_pct: Option<f64>,
    pub avg_trade_return_pct: Option<f64>,
    pub median_trade_return_pct: Option<f64>,
    pub best_trade_pct: Option<f64>,
    pub worst_trade_pct: Option<f64>,
    pub total_return_pct: f64,
    pub annualized_return_pct: Option<f64>,
    pub realized_pnl: f64,
    pub unrealized_pnl: f64,
    pub profit_factor: Option<f64>,
    pub expectancy: Option<f64>,
    pub expectancy_ratio: Option<f64>,
    pub longest_win_streak: usize,
    pub longest_loss_streak: usize,
    pub max_drawdown_pct: f64,
    pub max_drawdown_duration_s: i64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub calmar: Option<f64>,
    pub exposure_pct: Option<f64>,
    pub buy_and_hold_pct: Option<f64>,
    pub span_s: i64,
}

/// Computes every figure of `record`.
pub fn compute(record: &Record) -> Figures {
    let returns: Vec<f64> = record.closed.iter().map(|t| t.return_pct).collect();
    let pnls: Vec<f64> = record.closed.iter().map(|t| t.pnl).collect();
    let n = returns.len();
    let realized = total(&pnls);
    let wins: Vec<f64> = pnls.iter().copied().filter(|p| *p > 0.0).collect();
    let losses: Vec<f64> = pnls.iter().copied().filter(|p| *p < 0.0).collect();
    let gross_win = total(&wins);
    let gross_loss = -total(&losses);
    let win_rate = (n > 0).then(|| wins.len() as f64 / n as f64);
    let expectancy_ratio = match (wins.is_empty(), losses.is_empty(), win_rate) {
        (false, false, Some(rate)) => {
            let avg_win = gross_win / wins.len() as f64;
            let avg_loss = gross_loss / losses.len() as f64;
            Some((1.0 + avg_win / avg_loss) * rate - 1.0)
        }
        _ => None,
    };
    let span_ms = match (record.curve.first(), record.curve.last()) {
        (Some(first), Some(last)) => last.0 - first.0,
        _ => 0,
    };
    let end_equity = record
        .curve
        .last()
        .map_or(record.capital + realized + record.unrealized, |p| p.1);
    let total_return_pct = (end_equity / record.capital - 1.0) * 100.0;
    let annualized = (span_ms > 0).then(|| total_return_pct * YEAR_MS / span_ms as f64);
    let (max_drawdown_pct, drawdown_ms) = drawdown(record.curve);
    let period_returns: Vec<f64> = record
        .curve
        .windows(2)
        .map(|w| w[1].1 / w[0].1 - 1.0)
        .collect();
    let (longest_win_streak, longest_loss_streak) = streaks(&pnls);
    Figures {
        closed_trades: n,
        open_trades: record.open,
        win_rate_pct: win_rate.map(|r| r * 100.0),
        avg_trade_return_pct: mean(&returns),
        median_trade_return_pct: median(&returns),
        best_trade_pct: returns.iter().copied().reduce(f64::max),
        worst_trade_pct: returns.iter().copied().reduce(f64::min),
        total_return_pct,
        annualized_return_pct: annualized,
        realized_pnl: realized,
        unrealized_pnl: record.unrealized,
        profit_factor: (gross_loss > 0.0).then(|| gross_win / gross_loss),
        expectancy: mean(&pnls),
        expectancy_ratio,
        longest_win_streak,
        longest_loss_streak,
        max_drawdown_pct,
        max_drawdown_duration_s: drawdown_ms / 1000,
        sharpe: sharpe(&period_returns, record.periods_per_year),
        sortino: sortino(&period_returns, record.periods_per_year),
        calmar: annualized
            .filter(|_| max_drawdown_pct > 0.0)
            .map(|a| a / max_drawdown_pct),
        exposure_pct: (span_ms > 0).then(|| record.exposed_ms as f64 / span_ms as f64 * 100.0),
        buy_and_hold_pct: record.buy_and_hold_pct,
        span_s: span_ms / 1000,
    }
}

/// The sum, from +0.0 (std's float sum of nothing is -0.0, which would print as "-0.00").
pub fn total(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |sum, v| sum + v)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The deepest fall from a running peak, percent of that peak, and the longest time from a
/// peak until equity was back at it (or the curve ended), ms.
pub(super) fn drawdown(curve: &[(i64, f64)]) -> (f64, i64) {
    let Some(&(mut peak_time, mut peak)) = curve.first() else {
        return (0.0, 0);
    };
    let (mut deepest, mut longest) = (0.0f64, 0i64);
    for &(time, equity) in curve {
        if equity >= peak {
            longest = longest.max(time - peak_time);
            peak = equity;
            peak_time = time;
        } else {
            deepest = deepest.max((peak - equity) / peak * 100.0);
        }
    }
    if let Some(&(end, equity)) = curve.last()
        && equity < peak
    {
        longest = longest.max(end - peak_time);
    }
    (deepest, longest)
}

/// The longest runs of winning and of losing trades (a trade that made exactly nothing
/// ends both).
fn streaks(pnls: &[f64]) -> (usize, usize) {
    let (mut wins, mut losses, mut best_wins, mut best_losses) = (0, 0, 0, 0);
    for &p in pnls {
        (wins, losses) = match p {
            p if p > 0.0 => (wins + 1, 0),
            p if p < 0.0 => (0, losses + 1),
            _ => (0, 0),
        };
        best_wins = usize::max(best_wins, wins);
        best_losses = usize::max(best_losses, losses);
    }
    (best_wins, best_losses)
}

/// Mean over sample standard deviation of the per-period returns, times √(periods a year).
fn sharpe(returns: &[f64], periods_per_year: f64) -> Option<f64> {
    let n = returns.len();
    if n < 2 {
        return None;
    }
    let m = mean(returns)?;
    let variance = returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    (variance > 0.0).then(|| m / variance.sqrt() * periods_per_year.sqrt())
}

/// Mean over the downside deviation (√ of the mean of min(r, 0)² over every period), times
/// √(periods a year).
fn sortino(returns: &[f64], periods_per_year: f64) -> Option<f64> {
    let n = returns.len();
    if n < 2 {
        return None;
    }
    let m = mean(returns)?;
    let downside = returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n as f64;
    (downside > 0.0).then(|| m / downside.sqrt() * periods_per_year.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::trade::Direction;

    fn trade(pnl: f64) -> Trade {
        Trade {
            direction: Direction::Long,
            entry_seq: 1,
            entry_time_ms: 0,
            entry_price: 100.0,
            entry_fee: 0.0,
            exit_seq: Some(2),
            exit_time_ms: Some(60_000),
            exit_price: Some(100.0 + pnl / 10.0),
            exit_fee: 0.0,
            quantity: 10.0,
            pnl,
            return_pct: pnl / 1_000.0 * 100.0,
        }
    }

    const MIN: i64 = 60_000;

    fn near(got: Option<f64>, want: f64) {
        let got = got.expect("a figure");
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }

    #[test]
    fn trade_figures_by_hand() {
        // P&L +50, -20, +30, -10, -10, +0 on 1,000 notional: returns 5, -2, 3, -1, -1, 0 %.
        let trades: Vec<Trade> = [50.0, -20.0, 30.0, -10.0, -10.0, 0.0]
            .into_iter()
            .map(trade)
            .collect();
        let closed: Vec<&Trade> = trades.iter().collect();
        let curve = [(0, 10_000.0), (MIN, 10_040.0)];
        let f = compute(&Record {
            closed: &closed,
            open: 1,
            unrealized: 0.0,
            capital: 10_000.0,
            curve: &curve,
            exposed_ms: MIN / 2,
            buy_and_hold_pct: Some(1.5),
            periods_per_year: PERIODS_PER_YEAR,
        });
        assert_eq!((f.closed_trades, f.open_trades), (6, 1));
        near(f.win_rate_pct, 200.0 / 6.0); // 2 of 6
        near(f.avg_trade_return_pct, 4.0 / 6.0);
        near(f.median_trade_return_pct, -0.5); // (-1 + 0) / 2
        assert_eq!(
            (f.best_trade_pct, f.worst_trade_pct),
            (Some(5.0), Some(-2.0))
        );
        assert_eq!(f.realized_pnl, 40.0);
        near(f.profit_factor, 2.0);
        near(f.expectancy, 40.0 / 6.0);
        // Average win 40, average loss 40/3: (1 + 3) * 1/3 - 1.
        assert!((f.expectancy_ratio.unwrap() - (4.0 / 3.0 - 1.0)).abs() < 1e-12);
        assert_eq!((f.longest_win_streak, f.longest_loss_streak), (1, 2));
        assert!((f.total_return_pct - 0.4).abs() < 1e-12);
        near(f.exposure_pct, 50.0);
        assert_eq!(f.span_s, 60);
        // 0.4 % in one minute, over a year of minutes, simple.
        assert!((f.annualized_return_pct.unwrap() - 0.4 * 525_600.0).abs() < 1e-6);
    }

    #[test]
    fn no_losses_leave_the_ratios_undefined() {
        let trades = [trade(10.0)];
        let closed: Vec<&Trade> = trades.iter().collect();
        let f = compute(&Record {
            closed: &closed,
            open: 0,
            unrealized: 0.0,
            capital: 1_000.0,
            curve: &[],
            exposed_ms: 0,
            buy_and_hold_pct: None,
            periods_per_year: PERIODS_PER_YEAR,
        });
        assert_eq!((f.profit_factor, f.expectancy_ratio), (None, None));
        assert_eq!((f.sharpe, f.sortino, f.calmar), (None, None, None));
        assert!(
            (f.total_return_pct - 1.0).abs() < 1e-12,
            "from the P&L alone"
        );
        let none = compute(&Record {
            closed: &[],
            ..Record {
                closed: &closed,
                open: 0,
                unrealized: 0.0,
                capital: 1_000.0,
                curve: &[],
                exposed_ms: 0,
                buy_and_hold_pct: None,
                periods_per_year: PERIODS_PER_YEAR,
            }
        });
        assert_eq!(
            (none.win_rate_pct, none.median_trade_return_pct),
            (None, None)
        );
    }

    #[test]
    fn drawdown_depth_and_duration() {
        // Peak 110 at 1 min, down to 88 (-20 %) at 3, back to 110 at 5, new peak 120 at 6,
        // 114 (-5 %) at the end, 8: the longest time under a peak is 4 minutes.
        let curve: Vec<(i64, f64)> = [100.0, 110.0, 99.0, 88.0, 100.0, 110.0, 120.0, 118.0, 114.0]
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i as i64 * MIN, e))
            .collect();
        let (depth, duration) = drawdown(&curve);
        assert!((depth - 20.0).abs() < 1e-12);
        assert_eq!(duration, 4 * MIN);
        // Still under water at the end: the duration runs to the end.
        let (_, open) = drawdown(&curve[..5]);
        assert_eq!(open, 3 * MIN);
    }

    #[test]
    fn sharpe_and_sortino_by_hand() {
        // Minute returns +1 %, -1 %, +2 %: mean 2/3 %, sample sd √(7/3) %, downside √(1/3) %.
        let returns = [0.01, -0.01, 0.02];
        let year = 525_600f64.sqrt();
        let m: f64 = 0.02 / 3.0;
        let sd =
            (((0.01f64 - m).powi(2) + (-0.01f64 - m).powi(2) + (0.02f64 - m).powi(2)) / 2.0).sqrt();
        assert!((sharpe(&returns, PERIODS_PER_YEAR).unwrap() - m / sd * year).abs() < 1e-9);
        let downside = (0.0001f64 / 3.0).sqrt();
        assert!((sortino(&returns, PERIODS_PER_YEAR).unwrap() - m / downside * year).abs() < 1e-9);
        assert_eq!(
            sortino(&[0.01, 0.02], PERIODS_PER_YEAR),
            None,
            "no losing minute"
        );
    }
}
