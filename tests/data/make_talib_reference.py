"""Makes talib_reference.json: TA-Lib's outputs for sigcast's indicator tests.

How the figures were made (rerun to check them):
    python3 -m venv /tmp/talib && /tmp/talib/bin/pip install TA-Lib==0.8.2 numpy==2.4.6
    /tmp/talib/bin/python tests/data/make_talib_reference.py > tests/data/talib_reference.json

The input is a seeded random walk (no market data is copied), with flat stretches so the
edge cases (RSI with no movement, zero deviation) are covered. TA-Lib leaves the first
values of each output undefined (its lookback); those are written as null, and sigcast's
indicators must not produce a value there either.
"""
import json
import random

import numpy as np
import talib

random.seed(20261121)
close, high, low = [], [], []
price = 100.0
for i in range(400):
    if 150 <= i < 175 or 300 <= i < 320:
        step = 0.0  # flat: no gains, no losses
    else:
        step = random.gauss(0, 0.8)
    price = max(1.0, price + step)
    c = round(price, 2)
    spread = 0.0 if step == 0.0 else abs(random.gauss(0, 0.5))
    close.append(c)
    high.append(round(c + spread, 2))
    low.append(round(c - spread, 2))

c, h, l = (np.array(x, dtype=float) for x in (close, high, low))


def out(a):
    return [None if np.isnan(v) else float(v) for v in a]


upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
macd, signal, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
print(json.dumps({
    "note": __doc__.strip().splitlines()[0] + " TA-Lib " + talib.__version__ + ".",
    "input": {"close": close, "high": high, "low": low},
    "sma_20": out(talib.SMA(c, timeperiod=20)),
    "ema_10": out(talib.EMA(c, timeperiod=10)),
    "ema_50": out(talib.EMA(c, timeperiod=50)),
    "rsi_14": out(talib.RSI(c, timeperiod=14)),
    "rsi_7": out(talib.RSI(c, timeperiod=7)),
    "bbands_20_2": {"upper": out(upper), "middle": out(middle), "lower": out(lower)},
    "macd_12_26_9": {"macd": out(macd), "signal": out(signal), "hist": out(hist)},
    "max_high_20": out(talib.MAX(h, timeperiod=20)),
    "min_low_20": out(talib.MIN(l, timeperiod=20)),
}, indent=None))
