//! Table tests of the wire types: one payload per kind and market, bad input, and every
//! message of the real recordings in `../shared/data/binance/` (read at test time).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::SystemTime;

use super::*;
use crate::market::recording::RecordingReader;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn event(market: Market, text: &str) -> MarketEvent {
    match parse(market, text, SystemTime::UNIX_EPOCH) {
        Ok(Parsed::Event(e)) => e,
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn every_kind_on_both_markets() {
    use MarketEventKind as K;
    type Case<'a> = (Market, &'a str, &'a dyn Fn(&MarketEvent));
    let cases: &[Case] = &[
        (
            Market::Spot,
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#,
            &|e| {
                assert_eq!(
                    (e.symbol.as_str(), e.exchange_time_ms),
                    ("BTCUSDT", 1723161255343)
                );
                let K::Trade(t) = &e.kind else { panic!() };
                assert_eq!(
                    (t.id, t.price, t.quantity, t.time_ms, t.buyer_is_maker),
                    (3735683259, d("61837.63"), d("0.02"), 1723161255342, true)
                );
            },
        ),
        (
            Market::Futures,
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256321,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#,
            &|e| {
                let K::Trade(t) = &e.kind else { panic!() };
                assert_eq!(
                    (t.id, t.price, t.quantity, t.time_ms, t.buyer_is_maker),
                    (5266583935, d("61800.3"), d("0.006"), 1723161256321, false)
                );
            },
        ),
        (
            Market::Futures,
            r#"{"stream":"sushiusdt@aggTrade","data":{"e":"aggTrade","E":1626992742000,"a":91234,"s":"SUSHIUSDT","p":"7.6110","q":"12","f":100,"l":104,"T":1626992741999,"m":true}}"#,
            &|e| {
                let K::AggTrade(t) = &e.kind else { panic!() };
                assert_eq!(
                    (
                        t.id,
                        t.first_trade_id,
                        t.last_trade_id,
                        t.price,
                        t.quantity,
                        t.buyer_is_maker
                    ),
                    (91234, 100, 104, d("7.611"), d("12"), true)
                );
            },
        ),
        (
            Market::Spot,
            r#"{"stream":"ethbtc@aggTrade","data":{"e":"aggTrade","E":1,"s":"ETHBTC","a":5,"p":"0.03","q":"1.5","f":9,"l":9,"T":2,"m":false,"M":true}}"#,
            &|e| {
                let K::AggTrade(t) = &e.kind else { panic!() };
                assert_eq!((t.id, t.time_ms), (5, 2));
            },
        ),
        (
            Market::Futures,
            r#"{"stream":"ctkusdt@kline_1m","data":{"e":"kline","E":1626992741424,"s":"CTKUSDT","k":{"t":1626992700000,"T":1626992759999,"s":"CTKUSDT","i":"1m","f":23961275,"L":23961322,"o":"1.01000","c":"1.01100","h":"1.01200","l":"1.00900","v":"3917","n":48,"x":false,"q":"3957.89900","V":"1729","Q":"1748.01900","B":"0"}}}"#,
            &|e| {
                let K::Kline(k) = &e.kind else { panic!() };
                assert_eq!(
                    (
                        k.interval,
                        k.open_time_ms,
                        k.close_time_ms,
                        k.first_trade_id,
                        k.last_trade_id
                    ),
                    (
                        Interval::M1,
                        1626992700000,
                        1626992759999,
                        23961275,
                        23961322
                    )
                );
                assert_eq!(
                    (k.open, k.high, k.low, k.close),
                    (d("1.01"), d("1.012"), d("1.009"), d("1.011"))
                );
                assert_eq!(
                    (k.volume, k.quote_volume, k.trades),
                    (d("3917"), d("3957.899"), 48)
                );
                assert_eq!(
                    (
                        k.taker_buy_volume,
                        k.taker_buy_quote_volume,
                        k.closed,
                        k.contract
                    ),
                    (d("1729"), d("1748.019"), false, None)
                );
            },
        ),
        (
            Market::Futures,
            r#"{"stream":"btcusdt_perpetual@continuousKline_5m","data":{"e":"continuous_kline","E":1607443058651,"ps":"BTCUSDT","ct":"PERPETUAL","k":{"t":1607443020000,"T":1607443079999,"i":"5m","f":116467658886,"L":116468012423,"o":"18787.00","c":"18804.04","h":"18804.04","l":"18786.54","v":"197.664","n":543,"x":true,"q":"3715253.19494","V":"184.769","Q":"3472925.84746","B":"0"}}}"#,
            &|e| {
                assert_eq!(e.symbol, "BTCUSDT");
                let K::Kline(k) = &e.kind else { panic!() };
                assert_eq!(
                    (k.interval, k.closed, k.contract),
                    (Interval::M5, true, Some(ContractType::Perpetual))
                );
            },
        ),
        (
            Market::Spot,
            r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#,
            &|e| {
                let K::BookTicker(b) = &e.kind else { panic!() };
                assert_eq!(
                    (
                        b.update_id,
                        b.bid_price,
                        b.bid_quantity,
                        b.ask_price,
                        b.ask_quantity
                    ),
                    (
                        50093239212,
                        d("61837.63"),
                        d("3.78826"),
                        d("61837.64"),
                        d("1.54698")
                    )
                );
            },
        ),
        (
            Market::Futures,
            r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256314}}"#,
            &|e| {
                assert_eq!(e.exchange_time_ms, 1723161256314);
                let K::BookTicker(b) = &e.kind else { panic!() };
                assert_eq!((b.update_id, b.ask_quantity), (5123107839020, d("2.51")));
            },
        ),
        (
            Market::Spot,
            r#"{"stream":"bnbbtc@ticker","data":{"e":"24hrTicker","E":123456789,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}}"#,
            &|e| {
                let K::Ticker(t) = &e.kind else { panic!() };
                assert_eq!(
                    (
                        t.price_change,
                        t.price_change_percent,
                        t.last_price,
                        t.trades,
                        t.last_trade_id
                    ),
                    (d("0.0015"), d("250"), d("0.0025"), 18151, 18150)
                );
            },
        ),
        (
            Market::Spot,
            r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"],["61844.30000000","0.40163000"]]}}"#,
            &|e| {
                let K::Depth(u) = &e.kind else { panic!() };
                assert_eq!(
                    (
                        u.first_update_id,
                        u.final_update_id,
                        u.previous_final_update_id
                    ),
                    (50093239203, 50093239207, None)
                );
                assert_eq!(u.bids, vec![(d("55653.87"), Decimal::ZERO)]);
                assert_eq!(u.asks.len(), 2);
            },
        ),
        (
            Market::Futures,
            r#"{"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,"T":1626992741024,"s":"SUSHIUSDT","U":600859599090,"u":600859600917,"pu":600859598061,"b":[["7.5040","813"]],"a":[]}}"#,
            &|e| {
                let K::Depth(u) = &e.kind else { panic!() };
                assert_eq!(u.previous_final_update_id, Some(600859598061));
                assert!(u.asks.is_empty());
            },
        ),
    ];
    for (market, text, check) in cases {
        check(&event(*market, text));
    }
}

#[test]
fn control_messages() {
    let at = SystemTime::UNIX_EPOCH;
    assert_eq!(
        parse(Market::Spot, r#"{"result":null,"id":7}"#, at),
        Ok(Parsed::Reply {
            id: Some(7),
            result: None
        })
    );
    assert_eq!(
        parse(
            Market::Spot,
            r#"{"result":["btcusdt@aggTrade"],"id":3}"#,
            at
        ),
        Ok(Parsed::Reply {
            id: Some(3),
            result: Some(vec!["btcusdt@aggTrade".into()])
        })
    );
    assert_eq!(
        parse(
            Market::Futures,
            r#"{"code":2,"msg":"Invalid request: \"x\"","id":4}"#,
            at
        ),
        Ok(Parsed::Error {
            id: Some(4),
            code: 2,
            message: "Invalid request: \"x\"".into()
        })
    );
    assert_eq!(
        parse(Market::Spot, r#"{"e":"serverShutdown","E":1}"#, at),
        Ok(Parsed::ServerShutdown { time_ms: 1 })
    );
    assert_eq!(
        parse(
            Market::Futures,
            r#"{"lastUpdateId":5,"bids":[],"asks":[]}"#,
            at
        ),
        Ok(Parsed::DepthSnapshot { last_update_id: 5 })
    );
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let at = SystemTime::UNIX_EPOCH;
    let bad = [
        "",
        "not json",
        "[1,2,3]",
        "{}",
        r#"{"stream":"btcusdt@trade"}"#,
        r#"{"stream":"btcusdt@forceOrder","data":{}}"#,
        r#"{"stream":"nodelimiter","data":{}}"#,
        r#"{"stream":"btcusdt@trade","data":{"e":"trade"}}"#,
        r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"X","t":1,"p":"abc","q":"1","T":1,"m":true}}"#,
        r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"X","t":-1,"p":"1","q":"1","T":1,"m":true}}"#,
        r#"{"stream":"btcusdt@kline_2m","data":{}}"#,
        r#"{"stream":"x@continuousKline_1m","data":{"E":1,"ps":"X","ct":"WEEKLY","k":{"t":0,"T":0,"i":"1m","f":0,"L":0,"o":"1","c":"1","h":"1","l":"1","v":"1","n":0,"x":true,"q":"1","V":"1","Q":"1"}}}"#,
        r#"{"stream":"btcusdt@depth","data":{"E":1,"s":"X","U":1,"u":2,"b":[["1"]],"a":[]}}"#,
        r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"X","t":1,"p":"99999999999999999999999999999999","q":"1","T":1,"m":true}}"#,
    ];
    for text in bad {
        assert!(
            parse(Market::Spot, text, at).is_err(),
            "{text:?} should be refused"
        );
    }
    // Futures depth must carry `pu`: without it the gap check cannot run.
    assert!(
        parse(
            Market::Futures,
            r#"{"stream":"x@depth","data":{"E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}}"#,
            at
        )
        .is_err()
    );
}

/// rust_decimal parses one byte per (tail) call; where the compiler keeps the frames (debug
/// builds, fuzzing instrumentation) a long number overflowed the stack and killed the process.
/// A number longer than any price Binance sends is refused before it reaches the parser.
#[test]
fn an_overlong_number_is_refused_without_overflowing_the_stack() {
    for digits in [
        format!("{}1", "0".repeat(200_000)),
        format!("1{}", "_0".repeat(100_000)),
        format!("0.{}", "0".repeat(200_000)),
    ] {
        let text = format!(
            r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1,"s":"X","t":1,"p":"{digits}","q":"1","T":1,"m":true}}}}"#
        );
        let error = parse(Market::Spot, &text, SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(error.to_string().contains("too long"), "{error}");
    }
    // The limit leaves room for every exact decimal: leading zeros up to it are fine.
    let longest = format!("{}1", "0".repeat(MAX_DECIMAL_LEN - 1));
    assert_eq!(dec("p", &longest), Ok(d("1")));
    assert!(dec("p", &format!("0{longest}")).is_err());
}

/// `../shared/data/binance`, beside the project.
pub(crate) fn recordings_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/binance")
}

#[test]
fn every_recorded_message_parses() {
    let dir = recordings_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("recordings expected at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name.ends_with(".gz") || name.ends_with(".txt")) && !name.contains("_rest_")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut kinds: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
    let mut total = 0;
    for file in &files {
        for recorded in RecordingReader::open(file).unwrap() {
            let recorded = recorded.unwrap();
            total += 1;
            let parsed =
                parse(recorded.market, &recorded.text, SystemTime::now()).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e}: {}",
                        file.display(),
                        &recorded.text[..recorded.text.len().min(200)]
                    )
                });
            let kind = match parsed {
                Parsed::Event(e) => match e.kind {
                    MarketEventKind::Trade(_) => "trade",
                    MarketEventKind::AggTrade(_) => "aggTrade",
                    MarketEventKind::Kline(_) => "kline",
                    MarketEventKind::BookTicker(_) => "bookTicker",
                    MarketEventKind::Depth(_) => "depth",
                    _ => "other",
                },
                Parsed::DepthSnapshot { .. } => "snapshot",
                _ => "control",
            };
            *kinds.entry((recorded.market.as_str(), kind)).or_default() += 1;
        }
    }
    eprintln!("{total} messages: {kinds:?}");
    for market in ["spot", "futures"] {
        for kind in [
            "trade",
            "aggTrade",
            "kline",
            "bookTicker",
            "depth",
            "snapshot",
        ] {
            assert!(
                kinds.get(&(market, kind)).copied().unwrap_or(0) > 0,
                "no {market} {kind} in the recordings"
            );
        }
    }
    // The exact count of the shared recordings: a reader that drops lines fails here.
    assert_eq!(total, 279_294);
}
