//! Properties over generated input: every parser of outside input answers (an error is an
//! answer) and never panics, and a signal read back from the frame sigcast wrote for it is
//! the signal itself. The fuzz targets (fuzz/, run by scripts/fuzz) search the same parsers
//! for longer with coverage guidance; these run in every `cargo test`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::time::SystemTime;

use proptest::prelude::*;
use sigcast::config::{Config, Overrides};
use sigcast::hub::feed::MarketTopic;
use sigcast::hub::{encode, encode_seq, inbound};
use sigcast::market::binance;
use sigcast::market::recording::RecordingReader;
use sigcast::market::{
    AggTrade, BookTicker, Decimal, DepthUpdate, Interval, Kline, Market, MarketEvent,
    MarketEventKind, Trade,
};
use sigcast::server::command;
use sigcast::server::filter::Topic;
use sigcast::strategy::{Engine, Side, Signal, definition};

const NOW: i64 = 1_720_000_000;

/// Text that looks like what the parser expects often enough to get past its first check.
fn json_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\{\"(type|stream|data|content|e|s|p|q|k|topic|since|signal)\":[ -~]{0,60}\\}",
        "\\{\"stream\":\"[a-z]{3,8}usdt@(trade|aggTrade|kline_1m|bookTicker|depth)\",\"data\":\\{[ -~]{0,120}\\}\\}",
    ]
}

/// A signal as strategies and publishers produce them (the checks `inbound::parse` applies).
fn signal() -> impl Strategy<Value = Signal> {
    (
        prop_oneof![Just(Side::Buy), Just(Side::Sell)],
        "[A-Z0-9]{1,20}",
        // Positive, finite, from tiny to huge, with full f64 precision.
        prop_oneof![
            1e-12f64..1e15,
            any::<f64>().prop_filter("positive finite", |p| p.is_finite() && *p > 0.0),
        ],
        (NOW - 7 * 86_400)..(NOW + 300),
        "[A-Za-z0-9_-]{1,64}",
        "[0-9a-z]{0,8}",
        "[ -~\u{00e9}\u{4e70}]{0,60}",
    )
        .prop_map(
            |(side, symbol, price, timestamp, strategy, interval, reason)| Signal {
                side,
                symbol: symbol.into(),
                price,
                timestamp,
                strategy,
                interval,
                reason,
            },
        )
}

/// One instance of every built-in kind on one futures symbol, both book sources included.
const EVERY_STRATEGY: &str = r#"
[[strategy]]
name = "ma"
kind = "ma_cross"
market = "futures"
symbol = "X"
interval = "1s"
[strategy.params]
fast = 2
slow = 3
[[strategy]]
name = "rsi"
kind = "rsi"
market = "futures"
symbol = "X"
interval = "1s"
[strategy.params]
period = 2
[[strategy]]
name = "bb"
kind = "bollinger"
market = "futures"
symbol = "X"
interval = "1s"
[strategy.params]
period = 2
[[strategy]]
name = "macd"
kind = "macd"
market = "futures"
symbol = "X"
interval = "1s"
[strategy.params]
fast = 2
slow = 3
signal = 2
[[strategy]]
name = "dc"
kind = "donchian"
market = "futures"
symbol = "X"
interval = "1s"
[strategy.params]
period = 2
[[strategy]]
name = "book"
kind = "book_imbalance"
market = "futures"
symbol = "X"
interval = "1s"
[[strategy]]
name = "depth"
kind = "book_imbalance"
market = "futures"
symbol = "X"
interval = "1s"
[strategy.params]
source = "depth"
levels = 3
"#;

/// Decimals upstream could send, the edges of the type among them.
fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::ZERO),
        (any::<i64>(), 0u32..=28).prop_map(|(m, scale)| Decimal::new(m, scale)),
        (1i64..1_000_000).prop_map(|m| Decimal::new(m, 2)),
    ]
}

/// A market event for symbol X at `time` (ms), of any kind the strategies read.
fn market_event(time: i64) -> impl Strategy<Value = MarketEvent> {
    let kind = prop_oneof![
        (any::<u64>(), decimal(), decimal(), any::<bool>()).prop_map(
            move |(id, price, quantity, m)| {
                MarketEventKind::Trade(Trade {
                    id,
                    price,
                    quantity,
                    time_ms: time,
                    buyer_is_maker: m,
                })
            }
        ),
        (
            any::<u64>(),
            decimal(),
            decimal(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                move |(id, price, quantity, first_trade_id, last_trade_id)| {
                    MarketEventKind::AggTrade(AggTrade {
                        id,
                        price,
                        quantity,
                        first_trade_id,
                        last_trade_id,
                        time_ms: time,
                        buyer_is_maker: false,
                    })
                }
            ),
        (decimal(), decimal(), any::<bool>()).prop_map(move |(price, volume, closed)| {
            MarketEventKind::Kline(Kline {
                interval: Interval::S1,
                open_time_ms: time,
                close_time_ms: time.saturating_add(999),
                first_trade_id: 0,
                last_trade_id: 0,
                open: price,
                high: price,
                low: price,
                close: price,
                volume,
                quote_volume: volume,
                trades: 1,
                taker_buy_volume: volume,
                taker_buy_quote_volume: volume,
                closed,
                contract: None,
            })
        }),
        (decimal(), decimal(), decimal(), decimal()).prop_map(move |(bp, bq, ap, aq)| {
            MarketEventKind::BookTicker(BookTicker {
                update_id: time as u64,
                bid_price: bp,
                bid_quantity: bq,
                ask_price: ap,
                ask_quantity: aq,
            })
        }),
        proptest::collection::vec((decimal(), decimal()), 0..4).prop_map(move |levels| {
            MarketEventKind::Depth(DepthUpdate {
                first_update_id: time as u64,
                final_update_id: time as u64,
                previous_final_update_id: None,
                bids: levels.clone(),
                asks: levels,
            })
        }),
    ];
    kind.prop_map(move |kind| MarketEvent {
        market: Market::Futures,
        symbol: "X".into(),
        exchange_time_ms: time,
        received_at: SystemTime::UNIX_EPOCH,
        kind,
    })
}

/// Runs of events a second or so apart, starting anywhere, the ends of i64 included.
fn market_events() -> impl Strategy<Value = Vec<MarketEvent>> {
    (
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX - 60_000),
            Just(0i64),
            any::<i64>()
        ],
        proptest::collection::vec(0i64..2_000, 1..40),
    )
        .prop_flat_map(|(start, steps)| {
            let mut time = start;
            let events: Vec<_> = steps
                .into_iter()
                .map(|step| {
                    time = time.saturating_add(step);
                    market_event(time)
                })
                .collect();
            events
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn client_commands_never_panic(text in json_like()) {
        match command::parse(text.trim()) {
            command::Command::Subscribe(t) | command::Command::Unsubscribe(t) => {
                let _ = MarketTopic::parse(&t);
                let _ = Topic::parse(&t);
            }
            command::Command::Publish { signal: Some(body), .. } => {
                let _ = inbound::parse(&body, NOW);
            }
            _ => {}
        }
        let _ = Topic::parse(&text);
        let _ = MarketTopic::parse(&text);
    }

    #[test]
    fn binance_payloads_never_panic(text in json_like()) {
        for market in [Market::Spot, Market::Futures] {
            let _ = binance::parse(market, &text, SystemTime::now());
        }
    }

    #[test]
    fn replay_files_never_panic(
        name in prop_oneof![Just("r.jsonl"), Just("usdm_r.jsonl"), Just("r.cryptofeed.txt"), Just("r.gz")],
        lines in proptest::collection::vec(json_like(), 0..8),
        prefix in prop_oneof![Just(""), Just("wss://stream.binance.com:9443/ws\n"), Just("1723075200000000000 ")],
    ) {
        let body = format!("{prefix}{}", lines.join("\n"));
        if let Ok(reader) = RecordingReader::from_reader(Path::new(name), Cursor::new(body.into_bytes())) {
            for recorded in reader.take(100).flatten() {
                let _ = binance::parse(recorded.market, &recorded.text, SystemTime::now());
            }
        }
    }

    #[test]
    fn config_and_signal_files_never_panic(
        text in prop_oneof![
            any::<String>(),
            "\\[(server|tls|auth|market|hub|admin|log)\\]\n[a-z_]{1,20} = [ -~]{0,30}\n",
            "\\[\\[strategy\\]\\]\nname = \"[a-z]{1,8}\"\nkind = \"(ma_cross|rsi|macd|bollinger|donchian|x)\"\n[a-z_]{1,10} = [ -~]{0,20}\n",
        ],
    ) {
        let _ = Config::checked(Some((Path::new("/nonexistent/sigcast.toml"), &text)), &BTreeMap::new(), &Overrides::default());
        let _ = sigcast::strategy::definition::from_text(&text);
    }

    #[test]
    fn publish_bodies_never_panic(text in json_like()) {
        if let Ok(body) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = inbound::parse(&body, NOW);
        }
    }

    /// Market events at the edges of their types (the largest decimals, i64's ends for
    /// times) reach every built-in strategy without a panic; signals may or may not come.
    #[test]
    fn strategies_never_panic_on_extreme_market_data(events in market_events()) {
        let mut engine = Engine::new(definition::from_text(EVERY_STRATEGY).unwrap());
        engine.mark_fed(Market::Futures, "X");
        let mut out = Vec::new();
        for event in &events {
            engine.on_event(event, &mut out);
        }
        engine.finish(&mut out);
        prop_assert!(out.iter().all(|s| s.symbol == "X"));
    }

    /// A signal sigcast serializes (test reply or numbered broadcast) reads back as itself.
    #[test]
    fn serialized_signals_parse_back_to_the_original(signal in signal(), seq in any::<u64>()) {
        for frame in [encode(&signal, false), encode_seq(&signal, seq)] {
            let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
            let back = inbound::parse(&value, NOW).map_err(TestCaseError::fail)?;
            prop_assert_eq!(back.side, signal.side);
            prop_assert_eq!(&back.symbol, &signal.symbol);
            prop_assert_eq!(back.price.to_bits(), signal.price.to_bits());
            prop_assert_eq!(back.timestamp, signal.timestamp);
            prop_assert_eq!(&back.strategy, &signal.strategy);
            prop_assert_eq!(&back.interval, &signal.interval);
            prop_assert_eq!(&back.reason, &signal.reason);
        }
    }
}
