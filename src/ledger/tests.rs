//! The ledger over a hand-made tape: samples, exposure, untracked signals, per-symbol sums.

use super::*;

const S: i64 = 1_000;

fn frictionless() -> LedgerSettings {
    LedgerSettings {
        positions: Positions::LongOnly,
        fee_bps: 0.0,
        slippage_bps: 0.0,
        notional: 1_000.0,
        capital: 10_000.0,
    }
}

#[test]
fn a_round_trip_by_hand() {
    let mut ledger = Ledger::new(Rules::uniform(frictionless()));
    ledger.mark(Market::Spot, "BTCUSDT", 0, 100.0);
    ledger.signal("ma", "BTCUSDT", Side::Buy, 100.0, 1, 30 * S);
    ledger.signal("ma", "ETHUSDT", Side::Buy, 3_000.0, 2, 31 * S);
    ledger.mark(Market::Spot, "BTCUSDT", 61 * S, 110.0); // sample at 60 s: still 100
    ledger.mark(Market::Spot, "BTCUSDT", 125 * S, 120.0); // sample at 120 s: 110, +100
    ledger.signal("ma", "BTCUSDT", Side::Sell, 120.0, 3, 130 * S);
    ledger.mark(Market::Spot, "BTCUSDT", 190 * S, 90.0); // sample at 180 s: flat, +200
    let report = ledger.report();
    let ma = &report.strategies[0];
    let equity: Vec<(i64, f64)> = vec![
        (0, 10_000.0),
        (60 * S, 10_000.0),
        (120 * S, 10_100.0),
        (180 * S, 10_200.0),
        (190 * S, 10_200.0),
    ];
    assert_eq!(ma.equity, equity);
    let f = &ma.figures;
    assert_eq!((f.closed_trades, f.open_trades), (1, 0));
    assert_eq!(f.win_rate_pct, Some(100.0));
    assert!((f.total_return_pct - 2.0).abs() < 1e-12);
    assert_eq!(f.max_drawdown_pct, 0.0);
    assert_eq!(f.span_s, 190);
    // In the market from 30 s to 130 s of 190 s.
    assert!((f.exposure_pct.unwrap() - 100.0 / 190.0 * 100.0).abs() < 1e-9);
    assert!((f.buy_and_hold_pct.unwrap() + 10.0).abs() < 1e-12);
    assert_eq!(ma.trades.len(), 1);
    assert_eq!(ma.trades[0].trade.exit_seq, Some(3));
    // ETHUSDT had no price: listed, not traded.
    assert_eq!(report.untracked.len(), 1);
    assert_eq!(
        (
            report.untracked[0].symbol.as_str(),
            report.untracked[0].signals
        ),
        ("ETHUSDT", 1)
    );
}

#[test]
fn symbols_add_up_to_their_strategy() {
    let mut rules = Rules::default();
    rules.settings.insert(
        "flip".to_string(),
        LedgerSettings {
            positions: Positions::LongShort,
            ..LedgerSettings::default()
        },
    );
    let mut ledger = Ledger::new(rules);
    let tape = [
        ("BTCUSDT", 100.0),
        ("ETHUSDT", 50.0),
        ("BTCUSDT", 104.0),
        ("ETHUSDT", 47.0),
        ("BTCUSDT", 99.0),
        ("ETHUSDT", 52.0),
    ];
    for (i, (symbol, price)) in tape.iter().enumerate() {
        let t = i as i64 * 45 * S;
        ledger.mark(Market::Spot, symbol, t, *price);
        let side = if i % 4 < 2 { Side::Buy } else { Side::Sell };
        ledger.signal("flip", symbol, side, *price, i as u64 + 1, t);
        ledger.signal("plain", symbol, side, *price, i as u64 + 1, t);
    }
    let report = ledger.report();
    for strategy in &report.strategies {
        let sum: f64 = strategy
            .symbols
            .iter()
            .map(|s| s.figures.total_return_pct)
            .sum();
        assert!(
            (sum - strategy.figures.total_return_pct).abs() < 1e-9,
            "{}: {sum} vs {}",
            strategy.strategy,
            strategy.figures.total_return_pct
        );
        let pnl: f64 = strategy.trades.iter().map(|t| t.trade.pnl).sum();
        let f = &strategy.figures;
        assert!((pnl - (f.realized_pnl + f.unrealized_pnl)).abs() < 1e-9);
    }
    let flip = report
        .strategies
        .iter()
        .find(|s| s.strategy == "flip")
        .unwrap();
    assert_eq!(flip.settings.positions, Positions::LongShort);
    assert!(
        flip.trades
            .iter()
            .any(|t| t.trade.direction == Direction::Short)
    );
    let plain = report
        .strategies
        .iter()
        .find(|s| s.strategy == "plain")
        .unwrap();
    assert!(
        plain
            .trades
            .iter()
            .all(|t| t.trade.direction == Direction::Long)
    );
}

/// A record longer than [`MAX_SAMPLES`] keeps every other sample and doubles its period,
/// again and again, so a long-running server's curves stay bounded; the trades, the P&L and
/// the latest equity are those of the whole record.
#[test]
fn a_long_record_thins_its_curves_and_keeps_its_sums() {
    const MIN: i64 = 60 * S;
    let mut ledger = Ledger::new(Rules::uniform(frictionless()));
    ledger.mark(Market::Spot, "BTCUSDT", 0, 100.0);
    ledger.signal("ma", "BTCUSDT", Side::Buy, 100.0, 1, 0);
    let minutes = 3 * MAX_SAMPLES as i64 + 7;
    for m in 1..=minutes {
        // A walk with a different price each minute, so every sample is its own.
        let price = 100.0 + (m % 50) as f64;
        ledger.mark(Market::Spot, "BTCUSDT", m * MIN + S, price);
        if m == MAX_SAMPLES as i64 {
            ledger.signal("ma", "BTCUSDT", Side::Sell, price, 2, m * MIN + 2 * S);
            ledger.signal("ma", "BTCUSDT", Side::Buy, price, 3, m * MIN + 3 * S);
        }
    }
    let report = ledger.report();
    assert_eq!(report.sample_minutes, 4, "doubled twice");
    let ma = &report.strategies[0];
    assert!(ma.equity.len() <= MAX_SAMPLES + 1, "{}", ma.equity.len());
    assert!(ma.equity.len() > MAX_SAMPLES / 2, "{}", ma.equity.len());
    assert!(
        ma.equity.windows(2).all(|w| w[0].0 < w[1].0),
        "in time order"
    );
    assert_eq!(ma.equity[0], (0, 10_000.0));
    // Closed: bought at 100, sold at 100 + (MAX_SAMPLES % 50); open: marked at the last price.
    let exit = 100.0 + (MAX_SAMPLES as i64 % 50) as f64;
    let last = 100.0 + (minutes % 50) as f64;
    let realized = 1_000.0 * (exit / 100.0 - 1.0);
    let open = 1_000.0 * (last / exit - 1.0);
    assert_eq!(ma.figures.closed_trades, 1);
    assert!((ma.figures.realized_pnl - realized).abs() < 1e-9);
    let end = ma.equity.last().unwrap();
    assert_eq!(end.0, minutes * MIN + S);
    assert!(
        (end.1 - (10_000.0 + realized + open)).abs() < 1e-9,
        "{end:?}"
    );
    assert!(ma.figures.sharpe.is_some());
}

/// Spot and futures of one symbol move apart: each strategy is marked by its own market's
/// prices, a publisher's (no definition) by spot where spot follows the symbol, else by
/// futures, and a futures strategy is untracked where only spot prices the symbol.
#[test]
fn each_strategy_is_marked_by_its_own_market() {
    let mut rules = Rules::uniform(frictionless());
    rules.markets.insert("perp".into(), Market::Futures);
    rules.markets.insert("cash".into(), Market::Spot);
    let mut ledger = Ledger::new(rules);
    ledger.mark(Market::Spot, "BTCUSDT", 0, 100.0);
    // Only spot follows ETHUSDT: a futures strategy has no price for it.
    ledger.mark(Market::Spot, "ETHUSDT", 0, 10.0);
    ledger.signal("perp", "BTCUSDT", Side::Buy, 100.0, 1, S);
    ledger.mark(Market::Futures, "BTCUSDT", 2 * S, 101.0);
    ledger.mark(Market::Futures, "SOLUSDT", 2 * S, 50.0);
    ledger.signal("perp", "BTCUSDT", Side::Buy, 101.0, 2, 3 * S);
    ledger.signal("perp", "ETHUSDT", Side::Buy, 10.0, 3, 3 * S);
    ledger.signal("cash", "BTCUSDT", Side::Buy, 100.0, 4, 3 * S);
    ledger.signal("external", "BTCUSDT", Side::Buy, 100.0, 5, 3 * S);
    ledger.signal("external", "SOLUSDT", Side::Buy, 50.0, 6, 3 * S);
    // Spot rallies, futures fall; a later spot mark must not move the futures book.
    ledger.mark(Market::Futures, "BTCUSDT", 4 * S, 90.9);
    ledger.mark(Market::Futures, "SOLUSDT", 4 * S, 55.0);
    ledger.mark(Market::Spot, "BTCUSDT", 5 * S, 120.0);
    let report = ledger.report();
    let of = |name: &str| {
        report
            .strategies
            .iter()
            .find(|s| s.strategy == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let perp = of("perp");
    assert_eq!(perp.symbols.len(), 1);
    assert_eq!(perp.symbols[0].market, Market::Futures);
    // Bought at 101, marked at 90.9: -10 %.
    assert!((perp.figures.unrealized_pnl + 100.0).abs() < 1e-9);
    assert!(
        (perp.figures.buy_and_hold_pct.unwrap() + 10.0).abs() < 1e-9,
        "futures from 101 to 90.9"
    );
    let cash = of("cash");
    assert_eq!(cash.symbols[0].market, Market::Spot);
    assert!((cash.figures.unrealized_pnl - 200.0).abs() < 1e-9);
    let external = of("external");
    let markets: Vec<(&str, Market)> = external
        .symbols
        .iter()
        .map(|s| (s.symbol.as_str(), s.market))
        .collect();
    assert_eq!(
        markets,
        [("BTCUSDT", Market::Spot), ("SOLUSDT", Market::Futures)]
    );
    assert!((external.figures.unrealized_pnl - 300.0).abs() < 1e-9);
    let untracked: Vec<(&str, &str)> = report
        .untracked
        .iter()
        .map(|u| (u.strategy.as_str(), u.symbol.as_str()))
        .collect();
    assert_eq!(untracked, [("perp", "BTCUSDT"), ("perp", "ETHUSDT")]);
}
