#!/usr/bin/env python3
"""A sigcast plugin (kind = "exec"): close breaking out of the last N closes.

sigcast writes one JSON object per line on stdin (hello, then candles, trades, gaps) and
reads signals, one JSON object per line, from stdout. Standard library only.
"""
import json
import sys
from collections import deque

lookback = 5
closes = deque()


def emit(side, candle, reason):
    print(json.dumps({
        "type": side,
        "price": candle["close"],
        "timestamp": (candle["close_time"] + 1) // 1000,
        "reason": reason,
    }), flush=True)


for line in sys.stdin:
    msg = json.loads(line)
    kind = msg["type"]
    if kind == "hello":
        lookback = int(msg["settings"].get("lookback", lookback))
        closes = deque(maxlen=lookback)
        print(f"breakout plugin for {msg['symbol']} {msg['interval']}, lookback {lookback}",
              file=sys.stderr, flush=True)
    elif kind == "gap":
        closes.clear()  # data was lost: start over
    elif kind == "candle":
        close = msg["close"]
        full = len(closes) == lookback
        # History only warms up: no signal from it.
        if full and not msg["history"]:
            if close > max(closes):
                emit("buy", msg, f"close above the last {lookback} closes")
            elif close < min(closes):
                emit("sell", msg, f"close below the last {lookback} closes")
        closes.append(close)
