//! sigcast's indicators against figures computed with TA-Lib (tests/data/talib_reference.json,
//! made by tests/data/make_talib_reference.py; its docstring says how). Values must agree,
//! and each indicator must start exactly where TA-Lib starts: never from a half-warmed state.

use serde_json::Value;
use sigcast::strategy::indicators::{Bollinger, Ema, Macd, RollingMax, RollingMin, Rsi, Sma};

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/talib_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn series(v: &Value) -> Vec<Option<f64>> {
    v.as_array().unwrap().iter().map(Value::as_f64).collect()
}

/// Compares ours with TA-Lib's, index by index: `None` exactly where TA-Lib has null.
fn compare(name: &str, ours: &[Option<f64>], talib: &[Option<f64>], tolerance: f64) {
    assert_eq!(ours.len(), talib.len(), "{name}: length");
    let first = talib.iter().position(Option::is_some).unwrap();
    assert_eq!(
        ours.iter().position(Option::is_some),
        Some(first),
        "{name}: first output index"
    );
    for (i, (a, b)) in ours.iter().zip(talib).enumerate() {
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let scale = b.abs().max(1.0);
                assert!(
                    (a - b).abs() <= tolerance * scale,
                    "{name}[{i}]: ours {a}, TA-Lib {b}"
                );
            }
            _ => panic!("{name}[{i}]: ours {a:?}, TA-Lib {b:?}"),
        }
    }
}

fn run<T>(input: &[Option<f64>], mut f: impl FnMut(f64) -> Option<T>) -> Vec<Option<T>> {
    input.iter().map(|v| f(v.unwrap())).collect()
}

#[test]
fn indicators_equal_talib() {
    let r = reference();
    let close = series(&r["input"]["close"]);
    let high = series(&r["input"]["high"]);
    let low = series(&r["input"]["low"]);
    const TIGHT: f64 = 1e-9;

    let mut sma = Sma::new(20);
    compare(
        "SMA(20)",
        &run(&close, |v| sma.push(v)),
        &series(&r["sma_20"]),
        TIGHT,
    );
    for p in [10, 50] {
        let mut ema = Ema::new(p);
        compare(
            &format!("EMA({p})"),
            &run(&close, |v| ema.push(v)),
            &series(&r[format!("ema_{p}")]),
            TIGHT,
        );
    }
    for p in [14, 7] {
        let mut rsi = Rsi::new(p);
        compare(
            &format!("RSI({p})"),
            &run(&close, |v| rsi.push(v)),
            &series(&r[format!("rsi_{p}")]),
            TIGHT,
        );
    }

    let mut bb = Bollinger::new(20, 2.0);
    let bands = run(&close, |v| bb.push(v));
    for (key, pick) in [
        (
            "upper",
            (|b: &sigcast::strategy::indicators::Bands| b.upper) as fn(&_) -> f64,
        ),
        ("middle", |b| b.middle),
        ("lower", |b| b.lower),
    ] {
        let ours: Vec<Option<f64>> = bands.iter().map(|b| b.as_ref().map(pick)).collect();
        // E[x^2] - E[x]^2 loses digits on flat stretches; TA-Lib does the same sum.
        compare(
            &format!("BBANDS(20,2).{key}"),
            &ours,
            &series(&r["bbands_20_2"][key]),
            1e-7,
        );
    }

    let mut macd = Macd::new(12, 26, 9);
    let readings = run(&close, |v| macd.push(v));
    for (key, pick) in [
        (
            "macd",
            (|m: &sigcast::strategy::indicators::MacdOutput| m.macd) as fn(&_) -> f64,
        ),
        ("signal", |m| m.signal),
        ("hist", |m| m.histogram),
    ] {
        let ours: Vec<Option<f64>> = readings.iter().map(|m| m.as_ref().map(pick)).collect();
        compare(
            &format!("MACD(12,26,9).{key}"),
            &ours,
            &series(&r["macd_12_26_9"][key]),
            TIGHT,
        );
    }

    let mut max = RollingMax::new(20);
    compare(
        "MAX(high,20)",
        &run(&high, |v| max.push(v)),
        &series(&r["max_high_20"]),
        0.0,
    );
    let mut min = RollingMin::new(20);
    compare(
        "MIN(low,20)",
        &run(&low, |v| min.push(v)),
        &series(&r["min_low_20"]),
        0.0,
    );
}
