//! The track record as a text table, read from its JSON (a backtest's `report.json`, or a
//! server's `GET /v1/performance`), so `backtest` and `performance` print the same columns.

use serde_json::Value;

/// One row per strategy, then one per symbol when it traded more than one; `-` where a
/// figure is undefined or hidden by a token's scope.
pub fn text(report: &Value) -> String {
    let strategies = report["strategies"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if strategies.is_empty() {
        return "track record: no signal traded yet\n".to_string();
    }
    let mut t = format!(
        "{:<20} {:>7} {:>5} {:>6} {:>9} {:>10} {:>8} {:>8} {:>6} {:>7} {:>6}\n",
        "track record",
        "trades",
        "open",
        "win %",
        "return %",
        "P&L",
        "hold %",
        "max DD %",
        "PF",
        "Sharpe",
        "in %"
    );
    for s in strategies {
        row(&mut t, s["strategy"].as_str().unwrap_or("?"), &s["figures"]);
        let symbols = s["symbols"].as_array().map_or(&[][..], Vec::as_slice);
        if symbols.len() > 1 || s["figures"].is_null() {
            for y in symbols {
                let name = format!("  {}", y["symbol"].as_str().unwrap_or("?"));
                row(&mut t, &name, &y["figures"]);
            }
        }
    }
    if let Some(untracked) = report["untracked"].as_array().filter(|u| !u.is_empty()) {
        let list: Vec<String> = untracked
            .iter()
            .map(|u| {
                format!(
                    "{} {} x{}",
                    u["strategy"].as_str().unwrap_or("?"),
                    u["symbol"].as_str().unwrap_or("?"),
                    u["signals"]
                )
            })
            .collect();
        t.push_str(&format!(
            "untracked (no market price): {}\n",
            list.join(", ")
        ));
    }
    t
}

fn row(t: &mut String, name: &str, f: &Value) {
    let num = |key: &str, digits: usize, signed: bool| match f[key].as_f64() {
        Some(v) if signed => format!("{v:+.digits$}"),
        Some(v) => format!("{v:.digits$}"),
        None => "-".to_string(),
    };
    let pnl = match (f["realized_pnl"].as_f64(), f["unrealized_pnl"].as_f64()) {
        (Some(r), Some(u)) => format!("{:+.2}", r + u),
        _ => "-".to_string(),
    };
    t.push_str(&format!(
        "{:<20} {:>7} {:>5} {:>6} {:>9} {:>10} {:>8} {:>8} {:>6} {:>7} {:>6}\n",
        name,
        num("closed_trades", 0, false),
        num("open_trades", 0, false),
        num("win_rate_pct", 1, false),
        num("total_return_pct", 3, true),
        pnl,
        num("buy_and_hold_pct", 2, false),
        num("max_drawdown_pct", 3, false),
        num("profit_factor", 2, false),
        num("sharpe", 2, false),
        num("exposure_pct", 1, false),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_and_hidden_figures_print_as_dashes() {
        let report = serde_json::json!({
            "strategies": [
                {"strategy": "a", "figures": {"closed_trades": 3, "open_trades": 0, "win_rate_pct": 66.66,
                  "total_return_pct": 1.5, "realized_pnl": 150.0, "unrealized_pnl": 0.0,
                  "max_drawdown_pct": 0.5, "profit_factor": null},
                 "symbols": [{"symbol": "BTCUSDT", "figures": {}}]},
                {"strategy": "b", "figures": null,
                 "symbols": [{"symbol": "ETHUSDT", "figures": {"closed_trades": 1}}]}
            ],
            "untracked": [{"strategy": "tv", "symbol": "XYZUSDT", "signals": 2}]
        });
        let t = text(&report);
        let a = t.lines().find(|l| l.starts_with("a ")).unwrap();
        assert!(
            a.contains("66.7") && a.contains("+1.500") && a.contains("+150.00"),
            "{t}"
        );
        assert_eq!(
            a.split_whitespace().nth(8),
            Some("-"),
            "no losing trade: no PF\n{t}"
        );
        assert!(
            t.contains("  ETHUSDT"),
            "b's figures are hidden: its symbols show\n{t}"
        );
        assert!(
            t.contains("untracked (no market price): tv XYZUSDT x2"),
            "{t}"
        );
    }
}
