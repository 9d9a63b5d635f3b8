//! `GET /v1/performance` on the client port: the live track record (docs/performance.md),
//! for a bearer token, as far as its scope reaches.
//!
//! The shape is `report.json`'s: per strategy its rules, figures, per-symbol figures, its
//! latest trades and its equity curve (thinned to at most [`MAX_POINTS`] points). A token
//! scoped to some strategies sees only those; one scoped to some symbols sees only their
//! per-symbol figures and trades, and a strategy that also traded other symbols shows no
//! strategy-wide figures or curve (they would tell of the others).

use std::net::SocketAddr;

use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::authorize::bearer;
use super::http::{self, Body};
use crate::auth::Scope;
use crate::ledger::Report;

/// The endpoint's path.
pub const PATH: &str = "/v1/performance";
/// Most points of an equity curve served.
pub const MAX_POINTS: usize = 1_000;
/// Trades per strategy served, the latest.
pub const MAX_TRADES: usize = 100;

/// Answers one `GET /v1/performance`.
pub fn serve<B>(request: &Request<B>, peer: SocketAddr, shared: &Shared) -> Response<Body> {
    let claims = match bearer(request, peer, shared) {
        Ok(claims) => claims,
        Err(refused) => return *refused,
    };
    let report = shared.hub.performance();
    http::json(StatusCode::OK, &scoped(&report, &Scope::of(&claims)))
}

/// The report as `scope` may see it.
pub fn scoped(report: &Report, scope: &Scope) -> Value {
    let strategies: Vec<Value> = report
        .strategies
        .iter()
        .filter(|s| scope.allows_strategy(&s.strategy))
        .filter_map(|s| {
            let symbols: Vec<_> = s
                .symbols
                .iter()
                .filter(|y| scope.allows_symbol(&y.symbol))
                .collect();
            if symbols.is_empty() {
                return None;
            }
            let whole = symbols.len() == s.symbols.len();
            let trades: Vec<_> = s
                .trades
                .iter()
                .filter(|t| scope.allows_symbol(&t.symbol))
                .collect();
            let latest = &trades[trades.len().saturating_sub(MAX_TRADES)..];
            Some(json!({
                "strategy": s.strategy,
                "settings": s.settings,
                "figures": if whole { json!(s.figures) } else { Value::Null },
                "symbols": symbols,
                "trades": latest,
                "equity": if whole { thin(&s.equity) } else { Vec::new() },
            }))
        })
        .collect();
    let untracked: Vec<_> = report
        .untracked
        .iter()
        .filter(|u| scope.allows_strategy(&u.strategy) && scope.allows_symbol(&u.symbol))
        .collect();
    json!({"type": "performance", "sample_minutes": report.sample_minutes, "strategies": strategies, "untracked": untracked})
}

/// At most [`MAX_POINTS`] of `curve`, evenly spread, the last kept.
fn thin(curve: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if curve.len() <= MAX_POINTS {
        return curve.to_vec();
    }
    let step = curve.len().div_ceil(MAX_POINTS);
    let mut out: Vec<(i64, f64)> = curve.iter().step_by(step).copied().collect();
    if let Some(last) = curve.last()
        && out.last() != Some(last)
    {
        out.push(*last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, Rules};
    use crate::market::Market;
    use crate::strategy::Side;

    fn report() -> Report {
        let mut ledger = Ledger::new(Rules::default());
        ledger.mark(Market::Spot, "BTCUSDT", 0, 100.0);
        ledger.mark(Market::Spot, "ETHUSDT", 0, 10.0);
        ledger.signal("a", "BTCUSDT", Side::Buy, 100.0, 1, 0);
        ledger.signal("a", "ETHUSDT", Side::Buy, 10.0, 2, 0);
        ledger.signal("b", "BTCUSDT", Side::Buy, 100.0, 3, 0);
        ledger.signal("b", "SOLUSDT", Side::Buy, 1.0, 4, 0);
        ledger.mark(Market::Spot, "BTCUSDT", 90_000, 110.0);
        ledger.report()
    }

    #[test]
    fn a_scope_sees_only_its_part() {
        let report = report();
        let all = scoped(&report, &Scope::default());
        assert_eq!(all["strategies"].as_array().unwrap().len(), 2);
        assert_eq!(all["untracked"][0]["symbol"], "SOLUSDT");
        let only_b = Scope {
            strategies: Some(vec!["b".into()]),
            ..Scope::default()
        };
        let b = scoped(&report, &only_b);
        assert_eq!(b["strategies"].as_array().unwrap().len(), 1);
        assert_eq!(b["strategies"][0]["strategy"], "b");
        assert!(
            b["strategies"][0]["figures"].is_object(),
            "b traded BTCUSDT only"
        );
        let only_btc = Scope {
            symbols: Some(vec!["BTCUSDT".into()]),
            ..Scope::default()
        };
        let btc = scoped(&report, &only_btc);
        let a = &btc["strategies"][0];
        assert_eq!(a["strategy"], "a");
        assert!(a["figures"].is_null(), "a also traded ETHUSDT");
        assert_eq!(a["symbols"].as_array().unwrap().len(), 1);
        assert!(
            a["trades"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["symbol"] == "BTCUSDT")
        );
        assert!(a["equity"].as_array().unwrap().is_empty());
        assert!(
            btc["untracked"].as_array().unwrap().is_empty(),
            "SOLUSDT is out of scope"
        );
    }

    #[test]
    fn long_curves_are_thinned_to_the_limit_keeping_the_end() {
        let curve: Vec<(i64, f64)> = (0..2_500).map(|i| (i, i as f64)).collect();
        let thinned = thin(&curve);
        assert!(thinned.len() <= MAX_POINTS + 1);
        assert_eq!(thinned.last(), curve.last());
    }
}
