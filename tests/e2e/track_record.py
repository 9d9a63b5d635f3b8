"""Recomputes a sigcast backtest's track record on its own, with numpy, and compares.

Usage: track_record.py OUT_DIR

Reads OUT_DIR/signals.jsonl (the signals, numbered from 1) and OUT_DIR/report.json. Paper-
trades the signals again per strategy and symbol, by the rules the report names for each
strategy, as docs/performance.md describes them, and checks
every trade of the report; then computes the trade figures from those trades, and the curve
figures (drawdown, Sharpe, Sortino) from the report's equity curve. Prints what it checked;
exits 1 on the first figure that differs.
"""

import json
import sys

import numpy as np

out = sys.argv[1]
report = json.load(open(f"{out}/report.json"))
rules = {s["strategy"]: s["settings"] for s in report["strategies"]}
signals = [json.loads(line) for line in open(f"{out}/signals.jsonl")]

checked = 0


def same(what, got, want, tol=1e-6):
    global checked
    checked += 1
    if got is None or want is None:
        ok = got is None and want is None
    else:
        ok = abs(got - want) <= tol * max(1.0, abs(want))
    if not ok:
        sys.exit(f"track_record.py: {what}: report says {got}, recomputed {want}")


def fill(price, side, slip):
    return price * (1 + slip) if side == "buy" else price * (1 - slip)


# Paper trades, per (strategy, symbol): [direction, entry fill, quantity, entry seq, pnl?]
trades = {}
open_ = {}
for s in signals:
    c = s["content"]
    key = (c["strategy"], c["symbol"])
    side, price, seq = s["type"], c["price"], s["seq"]
    r = rules[c["strategy"]]
    positions, notional = r["positions"], r["notional"]
    fee, slip = r["fee_bps"] / 1e4, r["slippage_bps"] / 1e4
    want = "long" if side == "buy" else ("short" if positions == "long_short" else None)
    held = open_.get(key)
    if held and held["direction"] == want:
        continue
    if held:
        exit_fill = fill(price, "sell" if held["direction"] == "long" else "buy", slip)
        sign = 1 if held["direction"] == "long" else -1
        pnl = sign * held["quantity"] * (exit_fill - held["entry"]) - notional * fee - held["quantity"] * exit_fill * fee
        trades.setdefault(key[0], []).append(dict(held, exit_seq=seq, pnl=pnl))
        del open_[key]
    if want:
        entry = fill(price, side, slip)
        open_[key] = {"direction": want, "entry": entry, "quantity": notional / entry, "entry_seq": seq}

for strategy in report["strategies"]:
    name = strategy["strategy"]
    notional, capital = strategy["settings"]["notional"], strategy["settings"]["capital"]
    closed = [t for t in strategy["trades"] if t["exit_seq"] is not None]
    mine = sorted(trades.get(name, []), key=lambda t: t["exit_seq"])
    closed = sorted(closed, key=lambda t: t["exit_seq"])
    if len(closed) != len(mine):
        sys.exit(f"track_record.py: {name}: {len(closed)} closed trades reported, {len(mine)} recomputed")
    for got, want in zip(closed, mine):
        if (got["entry_seq"], got["exit_seq"], got["direction"]) != (want["entry_seq"], want["exit_seq"], want["direction"]):
            sys.exit(f"track_record.py: {name}: trade {got} is not {want}")
        same(f"{name} trade {got['entry_seq']}-{got['exit_seq']} pnl", got["pnl"], want["pnl"])
        same(f"{name} trade entry price", got["entry_price"], want["entry"])
    f = strategy["figures"]
    pnl = np.array([t["pnl"] for t in mine])
    returns = pnl / notional * 100
    if len(pnl):
        same(f"{name} win rate", f["win_rate_pct"], float(np.mean(pnl > 0) * 100))
        same(f"{name} avg trade", f["avg_trade_return_pct"], float(np.mean(returns)))
        same(f"{name} median trade", f["median_trade_return_pct"], float(np.median(returns)))
        same(f"{name} best trade", f["best_trade_pct"], float(np.max(returns)))
        same(f"{name} worst trade", f["worst_trade_pct"], float(np.min(returns)))
        same(f"{name} expectancy", f["expectancy"], float(np.mean(pnl)))
        same(f"{name} realized", f["realized_pnl"], float(np.sum(pnl)))
        losses = -np.sum(pnl[pnl < 0])
        same(f"{name} profit factor", f["profit_factor"], float(np.sum(pnl[pnl > 0]) / losses) if losses > 0 else None)
        streaks = {"w": 0, "l": 0}
        run_w = run_l = 0
        for p in pnl:
            run_w, run_l = (run_w + 1, 0) if p > 0 else ((0, run_l + 1) if p < 0 else (0, 0))
            streaks["w"], streaks["l"] = max(streaks["w"], run_w), max(streaks["l"], run_l)
        same(f"{name} win streak", f["longest_win_streak"], streaks["w"])
        same(f"{name} loss streak", f["longest_loss_streak"], streaks["l"])
    equity = np.array([e for _, e in strategy["equity"]])
    times = np.array([t for t, _ in strategy["equity"]])
    peaks = np.maximum.accumulate(equity)
    same(f"{name} max drawdown", f["max_drawdown_pct"], float(np.max((peaks - equity) / peaks) * 100))
    same(f"{name} total return", f["total_return_pct"], float((equity[-1] / capital - 1) * 100))
    same(f"{name} span", f["span_s"], float((times[-1] - times[0]) // 1000))
    r = equity[1:] / equity[:-1] - 1
    year = np.sqrt(525_600 / report.get("sample_minutes", 1))
    sd = np.std(r, ddof=1) if len(r) > 1 else 0.0
    same(f"{name} sharpe", f["sharpe"], float(np.mean(r) / sd * year) if sd > 0 else None)
    down = np.sqrt(np.mean(np.minimum(r, 0) ** 2)) if len(r) > 1 else 0.0
    same(f"{name} sortino", f["sortino"], float(np.mean(r) / down * year) if down > 0 else None)

print(f"track_record.py: {len(report['strategies'])} strategies, {checked} figures and trades agree")
