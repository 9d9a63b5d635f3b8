//! The track record in the backtest's HTML report: the ledger's figures per strategy and per
//! symbol, and per strategy an equity curve and a drawdown chart (inline SVG).

use std::fmt::Write;

use super::chart::{Frame, downsample, escape};
use crate::ledger::{Figures, Report, StrategyReport};

const HEIGHT: f64 = 200.0;

/// The section: a headline table, then each strategy's charts and per-symbol table.
pub fn html(report: &Report) -> String {
    if report.strategies.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h2>Track record</h2>\n");
    let rows: Vec<(String, &Figures)> = report
        .strategies
        .iter()
        .map(|s| (s.strategy.clone(), &s.figures))
        .collect();
    h.push_str(&table("strategy", &rows));
    let s0 = &report.strategies[0].settings;
    let _ = writeln!(
        h,
        "<p>Each strategy's signals paper-traded per symbol ({}, {} quote a position, fee {} bps a side, slippage {} bps, against {} quote of capital, unless its definition says otherwise); open positions marked to the last price. Ratios are annualized from one-minute equity samples; docs/performance.md defines every figure.</p>",
        s0.positions.as_str(),
        s0.notional,
        s0.fee_bps,
        s0.slippage_bps,
        s0.capital
    );
    for s in &report.strategies {
        strategy(&mut h, s);
    }
    if !report.untracked.is_empty() {
        h.push_str("<p>Untracked (no market price for the symbol, so not traded): ");
        let list: Vec<String> = report
            .untracked
            .iter()
            .map(|u| {
                format!(
                    "{} {} × {}",
                    escape(&u.strategy),
                    escape(&u.symbol),
                    u.signals
                )
            })
            .collect();
        let _ = writeln!(h, "{}.</p>", list.join(", "));
    }
    h
}

fn strategy(h: &mut String, s: &StrategyReport) {
    let _ = writeln!(h, "<h3>{}</h3>", escape(&s.strategy));
    let equity = downsample(&s.equity);
    h.push_str(&chart(&equity, "equity", "equity (quote)", false));
    let mut peak = f64::MIN;
    let drawdown: Vec<(i64, f64)> = equity
        .iter()
        .map(|&(t, e)| {
            peak = peak.max(e);
            (t, (e - peak) / peak * 100.0)
        })
        .collect();
    h.push_str(&chart(&drawdown, "drawdown", "drawdown (%)", true));
    let rows: Vec<(String, &Figures)> = s
        .symbols
        .iter()
        .map(|y| (y.symbol.clone(), &y.figures))
        .collect();
    h.push_str(&table("symbol", &rows));
}

fn table(first: &str, rows: &[(String, &Figures)]) -> String {
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    let mut h = format!(
        "<table><tr><th>{first}</th><th>trades</th><th>open</th><th>win rate %</th><th>avg / median trade %</th><th>best / worst %</th><th>return %</th><th>buy &amp; hold %</th><th>profit factor</th><th>expectancy</th><th>streaks W / L</th><th>max DD % (duration)</th><th>Sharpe</th><th>Sortino</th><th>Calmar</th><th>exposure %</th></tr>\n"
    );
    for (name, f) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{} / {}</td><td>{:+.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{:.3} ({} s)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            f.closed_trades,
            f.open_trades,
            opt(f.win_rate_pct),
            opt(f.avg_trade_return_pct),
            opt(f.median_trade_return_pct),
            opt(f.best_trade_pct),
            opt(f.worst_trade_pct),
            f.total_return_pct,
            opt(f.buy_and_hold_pct),
            opt(f.profit_factor),
            opt(f.expectancy),
            f.longest_win_streak,
            f.longest_loss_streak,
            f.max_drawdown_pct,
            f.max_drawdown_duration_s,
            opt(f.sharpe),
            opt(f.sortino),
            opt(f.calmar),
            opt(f.exposure_pct),
        );
    }
    h.push_str("</table>\n");
    h
}

/// A line over time; `filled` shades the area between the line and zero (drawdown).
fn chart(points: &[(i64, f64)], class: &str, label: &str, filled: bool) -> String {
    let Some(frame) = Frame::around(points, HEIGHT, filled) else {
        return String::new();
    };
    let mut h = frame.open(label, |v| format!("{v:.2}"), Some(label));
    let tag = if filled { "polygon" } else { "polyline" };
    let _ = write!(h, "<{tag} class=\"{class}\" points=\"");
    if filled {
        let _ = write!(h, "{:.1},{:.1} ", frame.x(frame.t0), frame.y(0.0));
    }
    for (t, v) in points {
        let _ = write!(h, "{:.1},{:.1} ", frame.x(*t), frame.y(*v));
    }
    if filled {
        let _ = write!(h, "{:.1},{:.1} ", frame.x(frame.t1), frame.y(0.0));
    }
    h.push_str("\"/>\n</svg>\n");
    h
}
